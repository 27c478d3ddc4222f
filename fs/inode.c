/*
 * Two chained hash tables over the same nodes: by inode number and by
 * (key, is_dir). Negative entries live in a third chained table plus a FIFO
 * list (oldest first), so the oldest is dropped when the table is full.
 * Invariants, all under t->lock:
 *  - every node is in both tables exactly once;
 *  - nlookup > 0 for every node but the root, which is pinned;
 *  - a node's key and is_dir never change, so its place in the key table is
 *    fixed for its life;
 *  - listing_bytes is the sum of the nodes' listing_bytes, each of which is
 *    0 exactly when the node has no listing;
 *  - building is the sum of the reservations of listings being fetched; it
 *    never exceeds max_listing_bytes, and listing_bytes + building does not
 *    either after inode_listing_reserve or inode_set_listing returns (cached
 *    listings are evicted, oldest first, to keep it so);
 *  - neg_count is the length of the FIFO and the number of entries in the
 *    negative table, and never exceeds max_negative.
 */
#include "fs/inode.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/strutil.h"
#include "fs/listing.h"

#define ROOT_INO 1

struct node {
	uint64_t ino;
	uint64_t nlookup;
	char *key;
	int is_dir;
	struct store_attr_packed attr;
	long long attr_ms;
	char *last_open_etag;
	struct listing *listing;
	size_t listing_bytes;		/* estimate of what listing holds */
	long long denied_ms;		/* when a denial was seen; 0: never */
	struct node *next_by_ino;
	struct node *next_by_key;
};

struct neg {
	char *key;
	int err;			/* -ENOENT or -EACCES */
	long long ms;			/* when it was learned */
	struct neg *next_in_bucket;
	struct neg *older, *newer;	/* FIFO */
};

#define NEG_BUCKETS 1024

struct inode_table {
	pthread_mutex_t lock;	/* guards everything below */
	struct node **by_ino;
	struct node **by_key;
	size_t nbuckets;
	unsigned long count;
	uint64_t next_ino;
	struct node *root;
	struct inode_limits lim;
	size_t listing_bytes;
	size_t building;		/* reserved by listings being fetched */
	struct neg *neg_buckets[NEG_BUCKETS];
	struct neg *neg_oldest, *neg_newest;
	unsigned long neg_count;
	char last_denial[512];
};

static size_t hash_key(const char *key, int is_dir)
{
	size_t h = 1469598103934665603ULL;

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 1099511628211ULL;
	return h ^ (size_t)is_dir;
}

static void node_free(struct node *n)
{
	store_attr_packed_clear(&n->attr);
	listing_release(n->listing);
	free(n->last_open_etag);
	free(n->key);
	free(n);
}

static void insert_locked(struct inode_table *t, struct node *n)
{
	size_t bi = n->ino % t->nbuckets, bk = hash_key(n->key, n->is_dir) % t->nbuckets;

	n->next_by_ino = t->by_ino[bi];
	t->by_ino[bi] = n;
	n->next_by_key = t->by_key[bk];
	t->by_key[bk] = n;
	t->count++;
}

/* Double the buckets when the table gets crowded (best effort). */
static void grow_locked(struct inode_table *t)
{
	struct node **bi, **bk, *n, *next;
	size_t nb = t->nbuckets * 2, i;

	bi = calloc(nb, sizeof(*bi));
	bk = calloc(nb, sizeof(*bk));
	if (!bi || !bk) {
		free(bi);
		free(bk);
		return;
	}
	for (i = 0; i < t->nbuckets; i++) {
		for (n = t->by_ino[i]; n; n = next) {
			next = n->next_by_ino;
			n->next_by_ino = bi[n->ino % nb];
			bi[n->ino % nb] = n;
		}
		for (n = t->by_key[i]; n; n = next) {
			size_t h = hash_key(n->key, n->is_dir) % nb;

			next = n->next_by_key;
			n->next_by_key = bk[h];
			bk[h] = n;
		}
	}
	free(t->by_ino);
	free(t->by_key);
	t->by_ino = bi;
	t->by_key = bk;
	t->nbuckets = nb;
}

struct inode_table *inode_table_new(const char *root_key)
{
	struct inode_table *t = calloc(1, sizeof(*t));
	struct node *root;

	if (!t)
		return NULL;
	t->nbuckets = 1024;
	t->by_ino = calloc(t->nbuckets, sizeof(*t->by_ino));
	t->by_key = calloc(t->nbuckets, sizeof(*t->by_key));
	root = calloc(1, sizeof(*root));
	if (root)
		root->key = strdup(root_key);
	if (!t->by_ino || !t->by_key || !root || !root->key) {
		if (root)
			free(root->key);
		free(root);
		free(t->by_ino);
		free(t->by_key);
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->lock, NULL);
	t->lim = (struct inode_limits){
		.ttl_ms = 1000,
		.negative_ttl_ms = 1000,
		.max_listing_bytes = INODE_DEFAULT_LISTING_BYTES,
		.max_negative = INODE_DEFAULT_NEGATIVE,
	};
	root->ino = ROOT_INO;
	root->is_dir = 1;
	root->nlookup = 1;
	t->next_ino = ROOT_INO + 1;
	t->root = root;
	insert_locked(t, root);
	return t;
}

void inode_table_set_first_ino(struct inode_table *t, uint64_t first)
{
	pthread_mutex_lock(&t->lock);
	if (first > t->next_ino)
		t->next_ino = first;
	pthread_mutex_unlock(&t->lock);
}

void inode_table_free(struct inode_table *t)
{
	struct node *n, *next;
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->nbuckets; i++)
		for (n = t->by_ino[i]; n; n = next) {
			next = n->next_by_ino;
			node_free(n);
		}
	free(t->by_ino);
	free(t->by_key);
	inode_neg_clear(t);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static void neg_trim_locked(struct inode_table *t, unsigned long max);

void inode_table_set_limits(struct inode_table *t, const struct inode_limits *lim)
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

static int denied_locked(const struct inode_table *t, const struct node *n)
{
	return n->denied_ms && clock_mono_ms() - n->denied_ms < t->lim.ttl_ms;
}

static struct node *find_ino_locked(struct inode_table *t, uint64_t ino)
{
	struct node *n;

	for (n = t->by_ino[ino % t->nbuckets]; n; n = n->next_by_ino)
		if (n->ino == ino)
			return n;
	return NULL;
}

static struct node *find_key_locked(struct inode_table *t, const char *key, int is_dir)
{
	struct node *n;

	for (n = t->by_key[hash_key(key, is_dir) % t->nbuckets]; n; n = n->next_by_key)
		if (n->is_dir == is_dir && !strcmp(n->key, key))
			return n;
	return NULL;
}

int inode_get(struct inode_table *t, uint64_t ino, struct inode_info *out)
{
	struct node *n;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&t->lock);
	n = find_ino_locked(t, ino);
	if (!n) {
		rc = -ENOENT;
	} else {
		out->ino = n->ino;
		out->key = strdup(n->key);
		out->is_dir = n->is_dir;
		store_attr_unpack(&n->attr, &out->attr);
		out->attr_ms = n->attr_ms;
		out->last_open_etag = n->last_open_etag ? strdup(n->last_open_etag) : NULL;
		out->denied = denied_locked(t, n);
		if (!out->key)
			rc = -ENOMEM;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void inode_info_cleanup(struct inode_info *i)
{
	free(i->key);
	free(i->last_open_etag);
	i->key = NULL;
	i->last_open_etag = NULL;
}

uint64_t inode_lookup_ref(struct inode_table *t, const char *key, int is_dir,
			  const struct store_attr *attr)
{
	struct store_attr_packed packed = { 0 };
	struct node *n;
	uint64_t ino = 0;

	/* Packed outside the lock. Out of memory fails the lookup: no node without its ETag. */
	if (attr && store_attr_pack(&packed, attr) != 0)
		return 0;
	pthread_mutex_lock(&t->lock);
	n = find_key_locked(t, key, is_dir);
	if (!n) {
		n = calloc(1, sizeof(*n));
		if (n)
			n->key = strdup(key);
		if (!n || !n->key) {
			free(n);
			goto out;
		}
		n->ino = t->next_ino++;
		n->is_dir = is_dir;
		if (t->count > t->nbuckets * 2)
			grow_locked(t);
		insert_locked(t, n);
	}
	n->nlookup++;
	if (attr) {
		store_attr_packed_clear(&n->attr);
		n->attr = packed;
		packed.strings = NULL;
		n->attr_ms = clock_mono_ms();
	}
	ino = n->ino;
out:
	pthread_mutex_unlock(&t->lock);
	store_attr_packed_clear(&packed);
	return ino;
}

static void unlink_locked(struct inode_table *t, struct node *n)
{
	struct node **pp;

	for (pp = &t->by_ino[n->ino % t->nbuckets]; *pp; pp = &(*pp)->next_by_ino)
		if (*pp == n) {
			*pp = n->next_by_ino;
			break;
		}
	for (pp = &t->by_key[hash_key(n->key, n->is_dir) % t->nbuckets]; *pp;
	     pp = &(*pp)->next_by_key)
		if (*pp == n) {
			*pp = n->next_by_key;
			break;
		}
	t->count--;
}

void inode_forget(struct inode_table *t, uint64_t ino, uint64_t nl)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = find_ino_locked(t, ino);
	if (!n || n == t->root) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	if (nl > n->nlookup) {
		/* The kernel never forgets more than we gave it. */
		log_msg(LOG_CRIT, "forget of %llu references to inode %llu, which has %llu",
			(unsigned long long)nl, (unsigned long long)ino,
			(unsigned long long)n->nlookup);
		abort();
	}
	n->nlookup -= nl;
	if (n->nlookup == 0) {
		t->listing_bytes -= n->listing_bytes;
		unlink_locked(t, n);
		node_free(n);
	}
	pthread_mutex_unlock(&t->lock);
}

void inode_set_attr(struct inode_table *t, uint64_t ino, const struct store_attr *attr)
{
	inode_set_attr_at(t, ino, attr, clock_mono_ms());
}

void inode_set_attr_at(struct inode_table *t, uint64_t ino, const struct store_attr *attr,
		       long long ms)
{
	struct store_attr_packed packed;
	struct node *n;

	if (store_attr_pack(&packed, attr) != 0)
		return; /* the attributes seen before stay, until their TTL */
	pthread_mutex_lock(&t->lock);
	n = find_ino_locked(t, ino);
	if (n) {
		store_attr_packed_clear(&n->attr);
		n->attr = packed;
		packed.strings = NULL;
		n->attr_ms = ms;
	}
	pthread_mutex_unlock(&t->lock);
	store_attr_packed_clear(&packed);
}

int inode_note_open(struct inode_table *t, uint64_t ino, const char *etag)
{
	struct node *n;
	int same = 0;

	pthread_mutex_lock(&t->lock);
	n = find_ino_locked(t, ino);
	if (n) {
		same = n->last_open_etag && etag[0] && !strcmp(n->last_open_etag, etag);
		if (!same) {
			free(n->last_open_etag);
			n->last_open_etag = strdup(etag);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return same;
}

/* What a listing costs in memory: the entries, their names and their strings. */
static size_t listing_cost(const struct listing *l)
{
	return l->bytes;
}

/* Drop n's listing; the caller releases *old after unlocking. */
static void drop_listing_locked(struct inode_table *t, struct node *n, struct listing **old)
{
	*old = n->listing;
	n->listing = NULL;
	t->listing_bytes -= n->listing_bytes;
	n->listing_bytes = 0;
}

struct listing *inode_get_listing(struct inode_table *t, uint64_t ino, long long max_age_ms)
{
	struct listing *l = NULL;
	struct node *n;
	struct listing *stale = NULL;

	pthread_mutex_lock(&t->lock);
	n = find_ino_locked(t, ino);
	if (n && n->listing) {
		if (clock_mono_ms() - n->listing->fetched_ms < max_age_ms)
			l = listing_ref(n->listing);
		else if (clock_mono_ms() - n->listing->fetched_ms >= t->lim.ttl_ms &&
			 __atomic_load_n(&n->listing->refs, __ATOMIC_ACQUIRE) == 1)
			drop_listing_locked(t, n, &stale); /* no use to anyone: free it */
	}
	pthread_mutex_unlock(&t->lock);
	listing_release(stale);
	return l;
}

struct listing *inode_dir_listing(struct inode_table *t, const char *dir_key)
{
	struct listing *l = NULL;
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = find_key_locked(t, dir_key, 1);
	if (n && n->listing)
		l = listing_ref(n->listing);
	pthread_mutex_unlock(&t->lock);
	return l;
}

/*
 * The node (other than keep) holding the oldest listing, or NULL. A scan of
 * the table: it runs only when the listings are over their bound.
 */
static struct node *oldest_listing_locked(struct inode_table *t, const struct node *keep)
{
	struct node *n, *best = NULL;
	size_t i;

	for (i = 0; i < t->nbuckets; i++)
		for (n = t->by_ino[i]; n; n = n->next_by_ino)
			if (n != keep && n->listing &&
			    (!best || n->listing->fetched_ms < best->listing->fetched_ms))
				best = n;
	return best;
}

/* Evict the oldest listings (but keep's) until `need` more bytes fit beside building. */
static void make_room_locked(struct inode_table *t, const struct node *keep, size_t need)
{
	struct listing *evicted;
	struct node *victim;

	while (t->listing_bytes + t->building + need > t->lim.max_listing_bytes &&
	       (victim = oldest_listing_locked(t, keep))) {
		drop_listing_locked(t, victim, &evicted);
		/* Others may hold references; ours is dropped without sleeping. */
		listing_release(evicted);
	}
}

int inode_listing_reserve(struct inode_table *t, size_t bytes)
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

void inode_listing_unreserve(struct inode_table *t, size_t bytes)
{
	pthread_mutex_lock(&t->lock);
	t->building -= bytes < t->building ? bytes : t->building;
	pthread_mutex_unlock(&t->lock);
}

void inode_set_listing(struct inode_table *t, uint64_t ino, struct listing *l)
{
	struct listing *old = NULL;
	struct node *n;
	size_t cost = listing_cost(l);

	pthread_mutex_lock(&t->lock);
	n = find_ino_locked(t, ino);
	if (!n)
		goto out;
	if (n->listing)
		drop_listing_locked(t, n, &old);
	if (cost > t->lim.max_listing_bytes) {
		/* Larger than the whole cache: serve it, but do not keep it. */
		log_once(LOG_NOTICE, "a listing of %zu entries (%zu bytes) is larger than the "
			 "metadata cache (%zu bytes): it is not cached", l->n, cost,
			 t->lim.max_listing_bytes);
		goto out;
	}
	if (cost > t->lim.max_listing_bytes - t->building)
		goto out; /* no room beside the listings being built: served, not kept */
	make_room_locked(t, n, cost);
	n->listing = listing_ref(l);
	n->listing_bytes = cost;
	t->listing_bytes += cost;
out:
	pthread_mutex_unlock(&t->lock);
	listing_release(old);
}

void inode_set_denied(struct inode_table *t, uint64_t ino)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = find_ino_locked(t, ino);
	if (n) {
		long long now = clock_mono_ms();

		n->denied_ms = now ? now : 1;
	}
	pthread_mutex_unlock(&t->lock);
}

int inode_is_denied(struct inode_table *t, uint64_t ino)
{
	struct node *n;
	int denied = 0;

	pthread_mutex_lock(&t->lock);
	n = find_ino_locked(t, ino);
	if (n)
		denied = denied_locked(t, n);
	pthread_mutex_unlock(&t->lock);
	return denied;
}

static size_t neg_hash(const char *key)
{
	return hash_key(key, 0) % NEG_BUCKETS;
}

static struct neg *neg_find_locked(struct inode_table *t, const char *key)
{
	struct neg *g;

	for (g = t->neg_buckets[neg_hash(key)]; g; g = g->next_in_bucket)
		if (!strcmp(g->key, key))
			return g;
	return NULL;
}

static void neg_remove_locked(struct inode_table *t, struct neg *g)
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

static void neg_trim_locked(struct inode_table *t, unsigned long max)
{
	while (t->neg_count > max && t->neg_oldest)
		neg_remove_locked(t, t->neg_oldest);
}

void inode_neg_put(struct inode_table *t, const char *key, int err)
{
	struct neg *g;

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
	{
		struct neg *old = neg_find_locked(t, key);

		if (old)
			neg_remove_locked(t, old);
	}
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

int inode_neg_get(struct inode_table *t, const char *key)
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

void inode_neg_clear(struct inode_table *t)
{
	pthread_mutex_lock(&t->lock);
	neg_trim_locked(t, 0);
	pthread_mutex_unlock(&t->lock);
}

void inode_set_last_denial(struct inode_table *t, const char *text)
{
	pthread_mutex_lock(&t->lock);
	snprintf(t->last_denial, sizeof(t->last_denial), "%s", text);
	pthread_mutex_unlock(&t->lock);
}

void inode_last_denial(struct inode_table *t, char *out, size_t outlen)
{
	pthread_mutex_lock(&t->lock);
	snprintf(out, outlen, "%s", t->last_denial);
	pthread_mutex_unlock(&t->lock);
}

unsigned long inode_count(struct inode_table *t)
{
	unsigned long c;

	pthread_mutex_lock(&t->lock);
	c = t->count;
	pthread_mutex_unlock(&t->lock);
	return c;
}

unsigned long inode_neg_count(struct inode_table *t)
{
	unsigned long c;

	pthread_mutex_lock(&t->lock);
	c = t->neg_count;
	pthread_mutex_unlock(&t->lock);
	return c;
}

size_t inode_listing_bytes(struct inode_table *t)
{
	size_t b;

	pthread_mutex_lock(&t->lock);
	b = t->listing_bytes;
	pthread_mutex_unlock(&t->lock);
	return b;
}
