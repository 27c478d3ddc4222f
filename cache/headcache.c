/*
 * The head cache: a few slots, each the first bytes of one (key, ETag), the
 * oldest pushed out first. Invariants, under lock: a slot with a key holds a
 * buffer reserved in the budget (mem), got <= mem.n; a slot without one holds
 * nothing; clock grows with every slot filled (age).
 */
#include "cache/headcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache/membudget.h"
#include "s3/store.h"

struct head {
	char *key;		/* NULL: a free slot */
	char *etag;
	struct membuf mem;	/* the buffer and its reservation */
	size_t got;
	unsigned long long age;	/* larger is newer */
};

struct headcache {
	struct store_layer layer;	/* first: the store is cast back */
	struct membudget *mb;
	size_t cap;
	unsigned nslots;
	pthread_mutex_t lock;	/* guards clock, slots and the counts */
	unsigned long long clock;
	unsigned long long hits, misses;	/* opens that found their bytes, or not */
	struct head slots[];
};

static void head_clear(struct headcache *hc, struct head *h)
{
	membudget_put(hc->mb, &h->mem);	/* nothing if taken */
	free(h->key);
	free(h->etag);
	memset(h, 0, sizeof(*h));
}

/* Keep buf (cap bytes, the first got filled) as the first bytes of key at etag. Takes buf. */
static void head_put(struct headcache *hc, const char *key, const char *etag, char *buf,
		     size_t cap, size_t got)
{
	struct head *h, *victim = &hc->slots[0];
	char *k = strdup(key), *t = strdup(etag);
	unsigned i;

	if (!k || !t || !*etag) {
		free(k);
		free(t);
		membudget_release(hc->mb, buf, cap);
		return;
	}
	pthread_mutex_lock(&hc->lock);
	/* The same key again replaces its entry; else a free slot, else the oldest. */
	for (i = 0; i < hc->nslots; i++) {
		h = &hc->slots[i];
		if (h->key && !strcmp(h->key, key)) {
			victim = h;
			break;
		}
		if (victim->key && (!h->key || h->age < victim->age))
			victim = h;
	}
	if (victim->key)
		head_clear(hc, victim);
	victim->key = k;
	victim->etag = t;
	victim->mem = (struct membuf){ buf, cap };
	victim->got = got;
	victim->age = ++hc->clock;
	pthread_mutex_unlock(&hc->lock);
}

/* How a head handed down is given back: into the budget it came from. */
static void head_release(void *mb, char *buf, size_t cap)
{
	membudget_release(mb, buf, cap);
}

/*
 * Take the first bytes of key at etag into *out: 1, or 0 when there are none.
 * An entry of another ETag is dropped either way.
 */
static int head_take(struct headcache *hc, const char *key, const char *etag,
		     struct store_head *out)
{
	struct membuf m = MEMBUF_EMPTY;
	struct head *h;
	unsigned i;
	int found = 0;

	pthread_mutex_lock(&hc->lock);
	for (i = 0; i < hc->nslots; i++) {
		h = &hc->slots[i];
		if (!h->key || strcmp(h->key, key))
			continue;
		if (!strcmp(h->etag, etag)) {
			membudget_transfer(&m, &h->mem);	/* now the open's */
			*out = (struct store_head){ m.p, m.n, h->got, head_release, hc->mb };
			found = 1;
		}
		/* Taken, or another version's: either way it is done. */
		head_clear(hc, h);
		break;
	}
	if (found)
		hc->hits++;
	else
		hc->misses++;
	pthread_mutex_unlock(&hc->lock);
	return found;
}

/* A lookup's stat: one GET of the first cap bytes, kept when it answered. */
static int hc_stat_head(struct store *s, const char *key, struct store_attr *out,
			struct store_error *e)
{
	struct headcache *hc = (struct headcache *)s;
	size_t got = 0;
	char *buf = membudget_alloc(hc->mb, hc->cap);
	int rc;

	if (!buf)
		return -ENOSYS;	/* the budget is short: the lookup asks with a HEAD */
	rc = store_stat_read(hc->layer.inner, key, hc->cap, buf, &got, out, e);
	if (rc == 0)
		head_put(hc, key, out->etag, buf, hc->cap, got);
	else
		membudget_release(hc->mb, buf, hc->cap);
	return rc;
}

/* An open of what a lookup fetched the head of: the bytes go down with it. */
static struct store_file *hc_open(struct store *s, const char *key, const struct store_attr *a,
				  struct store_head *head)
{
	struct headcache *hc = (struct headcache *)s;
	struct store_head h = { 0 };

	if (head && head->buf)
		return store_open(hc->layer.inner, key, a, head);
	if (head_take(hc, key, a->etag, &h))
		return store_open(hc->layer.inner, key, a, &h);
	return store_open(hc->layer.inner, key, a, NULL);
}

static void hc_destroy(struct store *s)
{
	struct headcache *hc = (struct headcache *)s;
	unsigned i;

	for (i = 0; i < hc->nslots; i++)
		if (hc->slots[i].key)
			head_clear(hc, &hc->slots[i]);
	pthread_mutex_destroy(&hc->lock);
	free(hc);
}

static const struct store_ops hc_ops = {
	.stat = store_fwd_stat,
	.list_page = store_fwd_list_page,
	.read_range = store_fwd_read_range,
	.stat_read = store_fwd_stat_read,
	.stat_head = hc_stat_head,
	.identity = store_fwd_identity,
	.open = hc_open,
	.destroy = hc_destroy,
};

struct store *headcache_new(struct store *inner, struct membudget *mb, unsigned slots,
			    size_t cap)
{
	struct headcache *hc;

	if (!mb || !slots || !cap)
		return NULL;
	hc = calloc(1, sizeof(*hc) + slots * sizeof(hc->slots[0]));
	if (!hc)
		return NULL;
	hc->layer.base.ops = &hc_ops;
	hc->layer.inner = inner;
	hc->mb = mb;
	hc->cap = cap;
	hc->nslots = slots;
	pthread_mutex_init(&hc->lock, NULL);
	return &hc->layer.base;
}

void headcache_stats(struct store *s, unsigned long long *hits, unsigned long long *misses)
{
	struct headcache *hc = (struct headcache *)s;

	pthread_mutex_lock(&hc->lock);
	*hits = hc->hits;
	*misses = hc->misses;
	pthread_mutex_unlock(&hc->lock);
}
