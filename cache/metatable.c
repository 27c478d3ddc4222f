/*
 * Two chained hash tables under one lock: listings by directory key, and
 * negative entries by key, the latter also on a FIFO list (oldest first) so
 * that the oldest is dropped when the table is full. Invariants, under lock:
 *  - listing_bytes is the sum of the kept listings' bytes (store_dir.bytes);
 *  - building is the sum of the reservations of listings being fetched; it
 *    never exceeds max_listing_bytes, and listing_bytes + building does not
 *    either after metatable_reserve or metatable_set_dir returns (kept
 *    listings are evicted, oldest first, to keep it so);
 *  - a key has at most one listing and at most one negative entry;
 *  - neg_count is the length of the FIFO and the number of negative entries,
 *    and never exceeds max_negative.
 */
#include "cache/metatable.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/strutil.h"
#include "s3/store.h"

#define DIR_BUCKETS 4096
#define NEG_BUCKETS 1024

struct dir_slot {
	char *key;
	struct store_dir *d;
	size_t bytes;			/* what d counts for: d->bytes when kept */
	struct dir_slot *next;
};

struct neg {
	char *key;
	int err;			/* -ENOENT or -EACCES */
	long long ms;			/* when it was learned */
	struct neg *next_in_bucket;
	struct neg *older, *newer;	/* FIFO */
};

struct metatable {
	pthread_mutex_t lock;		/* guards everything below */
	struct metatable_limits lim;
	struct dir_slot *dirs[DIR_BUCKETS];
	size_t listing_bytes;
	size_t building;		/* reserved by listings being fetched */
	struct neg *neg_buckets[NEG_BUCKETS];
	struct neg *neg_oldest, *neg_newest;
	unsigned long neg_count;
};

static size_t hash_key(const char *key)
{
	size_t h = 1469598103934665603ULL;

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 1099511628211ULL;
	return h;
}

struct metatable *metatable_new(void)
{
	struct metatable *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	pthread_mutex_init(&t->lock, NULL);
	t->lim = (struct metatable_limits){
		.ttl_ms = 1000,
		.negative_ttl_ms = 1000,
		.max_listing_bytes = METATABLE_DEFAULT_LISTING_BYTES,
		.max_negative = METATABLE_DEFAULT_NEGATIVE,
	};
	return t;
}

static void neg_trim_locked(struct metatable *t, unsigned long max);

void metatable_free(struct metatable *t)
{
	struct dir_slot *s, *next;
	size_t i;

	if (!t)
		return;
	for (i = 0; i < DIR_BUCKETS; i++)
		for (s = t->dirs[i]; s; s = next) {
			next = s->next;
			store_dir_release(s->d);
			free(s->key);
			free(s);
		}
	metatable_neg_clear(t);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

void metatable_set_limits(struct metatable *t, const struct metatable_limits *lim)
{
	pthread_mutex_lock(&t->lock);
	t->lim.ttl_ms = lim->ttl_ms;
	t->lim.negative_ttl_ms = lim->negative_ttl_ms;
	if (lim->max_listing_bytes)
		t->lim.max_listing_bytes = lim->max_listing_bytes;
	if (lim->max_negative)
		t->lim.max_negative = lim->max_negative;
	neg_trim_locked(t, t->lim.max_negative);
	pthread_mutex_unlock(&t->lock);
}

/* Unlink the slot at *link; the caller releases its listing after unlocking. */
static struct store_dir *dir_unlink_locked(struct metatable *t, struct dir_slot **link)
{
	struct dir_slot *s = *link;
	struct store_dir *d = s->d;

	*link = s->next;
	t->listing_bytes -= s->bytes;
	free(s->key);
	free(s);
	return d;
}

static struct dir_slot **dir_find_locked(struct metatable *t, const char *key)
{
	struct dir_slot **link;

	for (link = &t->dirs[hash_key(key) % DIR_BUCKETS]; *link; link = &(*link)->next)
		if (!strcmp((*link)->key, key))
			return link;
	return NULL;
}

struct store_dir *metatable_get_dir(struct metatable *t, const char *dir_key,
				    long long max_age_ms)
{
	struct store_dir *d = NULL, *stale = NULL;
	struct dir_slot **link;
	long long age;

	pthread_mutex_lock(&t->lock);
	link = dir_find_locked(t, dir_key);
	if (link) {
		age = clock_mono_ms() - (*link)->d->fetched_ms;
		if (age < max_age_ms)
			d = store_dir_ref((*link)->d);
		else if (age >= t->lim.ttl_ms)
			stale = dir_unlink_locked(t, link); /* no use to anyone: free it */
	}
	pthread_mutex_unlock(&t->lock);
	store_dir_release(stale);
	return d;
}

/*
 * The link of the oldest kept listing (other than keep), or NULL. A scan of
 * the table: it runs only when the listings are over their bound.
 */
static struct dir_slot **oldest_locked(struct metatable *t, const char *keep)
{
	struct dir_slot **link, **best = NULL;
	size_t i;

	for (i = 0; i < DIR_BUCKETS; i++)
		for (link = &t->dirs[i]; *link; link = &(*link)->next)
			if ((!keep || strcmp((*link)->key, keep)) &&
			    (!best || (*link)->d->fetched_ms < (*best)->d->fetched_ms))
				best = link;
	return best;
}

/* Evict the oldest listings (but keep's) until `need` more bytes fit beside building. */
static void make_room_locked(struct metatable *t, const char *keep, size_t need)
{
	struct dir_slot **victim;

	while (t->listing_bytes + t->building + need > t->lim.max_listing_bytes &&
	       (victim = oldest_locked(t, keep))) {
		/* Others may hold references; ours is dropped without sleeping. */
		store_dir_release(dir_unlink_locked(t, victim));
	}
}

int metatable_reserve(struct metatable *t, size_t bytes)
{
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	if (bytes > t->lim.max_listing_bytes - t->building) {
		rc = -ENOSPC;
	} else {
		t->building += bytes;
		make_room_locked(t, NULL, 0);
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void metatable_unreserve(struct metatable *t, size_t bytes)
{
	pthread_mutex_lock(&t->lock);
	t->building -= bytes < t->building ? bytes : t->building;
	pthread_mutex_unlock(&t->lock);
}

void metatable_set_dir(struct metatable *t, const char *dir_key, struct store_dir *d)
{
	struct store_dir *old = NULL;
	struct dir_slot **link, *s;
	size_t cost = d->bytes;
	char *key = strdup(dir_key);

	s = calloc(1, sizeof(*s));
	pthread_mutex_lock(&t->lock);
	link = dir_find_locked(t, dir_key);
	if (link)
		old = dir_unlink_locked(t, link);
	if (!s || !key)
		goto out;
	if (cost > t->lim.max_listing_bytes) {
		/* Larger than the whole cache: serve it, but do not keep it. */
		log_once(LOG_NOTICE, "a listing of %zu entries (%zu bytes) is larger than the "
			 "metadata cache (%zu bytes): it is not cached", d->n, cost,
			 t->lim.max_listing_bytes);
		goto out;
	}
	if (cost > t->lim.max_listing_bytes - t->building)
		goto out; /* no room beside the listings being built: served, not kept */
	make_room_locked(t, dir_key, cost);
	s->key = key;
	s->d = store_dir_ref(d);
	s->bytes = cost;
	s->next = t->dirs[hash_key(dir_key) % DIR_BUCKETS];
	t->dirs[hash_key(dir_key) % DIR_BUCKETS] = s;
	t->listing_bytes += cost;
	s = NULL;
	key = NULL;
out:
	pthread_mutex_unlock(&t->lock);
	free(s);
	free(key);
	store_dir_release(old);
}

static size_t neg_hash(const char *key)
{
	return hash_key(key) % NEG_BUCKETS;
}

static struct neg *neg_find_locked(struct metatable *t, const char *key)
{
	struct neg *g;

	for (g = t->neg_buckets[neg_hash(key)]; g; g = g->next_in_bucket)
		if (!strcmp(g->key, key))
			return g;
	return NULL;
}

static void neg_remove_locked(struct metatable *t, struct neg *g)
{
	struct neg **pp;

	for (pp = &t->neg_buckets[neg_hash(g->key)]; *pp; pp = &(*pp)->next_in_bucket)
		if (*pp == g) {
			*pp = g->next_in_bucket;
			break;
		}
	if (g->older)
		g->older->newer = g->newer;
	else
		t->neg_oldest = g->newer;
	if (g->newer)
		g->newer->older = g->older;
	else
		t->neg_newest = g->older;
	t->neg_count--;
	free(g->key);
	free(g);
}

static void neg_trim_locked(struct metatable *t, unsigned long max)
{
	while (t->neg_count > max && t->neg_oldest)
		neg_remove_locked(t, t->neg_oldest);
}

void metatable_neg_put(struct metatable *t, const char *key, int err)
{
	struct neg *g, *old;

	if (err != -ENOENT && err != -EACCES)
		return;
	g = calloc(1, sizeof(*g));
	if (g)
		g->key = strdup(key);
	if (!g || !g->key) {
		free(g);
		return;
	}
	g->err = err;
	g->ms = clock_mono_ms();
	pthread_mutex_lock(&t->lock);
	old = neg_find_locked(t, key);
	if (old)
		neg_remove_locked(t, old);
	neg_trim_locked(t, t->lim.max_negative - 1);
	g->next_in_bucket = t->neg_buckets[neg_hash(key)];
	t->neg_buckets[neg_hash(key)] = g;
	g->older = t->neg_newest;
	if (t->neg_newest)
		t->neg_newest->newer = g;
	else
		t->neg_oldest = g;
	t->neg_newest = g;
	t->neg_count++;
	pthread_mutex_unlock(&t->lock);
}

int metatable_neg_get(struct metatable *t, const char *key)
{
	struct neg *g;
	int err = 0;

	pthread_mutex_lock(&t->lock);
	g = neg_find_locked(t, key);
	if (g) {
		long long ttl = g->err == -ENOENT ? t->lim.negative_ttl_ms : t->lim.ttl_ms;

		if (clock_mono_ms() - g->ms < ttl)
			err = g->err;
		else
			neg_remove_locked(t, g);
	}
	pthread_mutex_unlock(&t->lock);
	return err;
}

void metatable_neg_clear(struct metatable *t)
{
	pthread_mutex_lock(&t->lock);
	neg_trim_locked(t, 0);
	pthread_mutex_unlock(&t->lock);
}

size_t metatable_listing_bytes(struct metatable *t)
{
	size_t b;

	pthread_mutex_lock(&t->lock);
	b = t->listing_bytes;
	pthread_mutex_unlock(&t->lock);
	return b;
}

unsigned long metatable_neg_count(struct metatable *t)
{
	unsigned long c;

	pthread_mutex_lock(&t->lock);
	c = t->neg_count;
	pthread_mutex_unlock(&t->lock);
	return c;
}
