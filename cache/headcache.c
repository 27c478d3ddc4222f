#include "cache/headcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache/membudget.h"

struct head {
	char *key;		/* NULL: a free slot */
	char *etag;
	struct membuf mem;	/* the buffer and its reservation */
	size_t got;
	unsigned long long age;	/* larger is newer */
};

struct headcache {
	struct membudget *mb;
	unsigned nslots;
	pthread_mutex_t lock;	/* guards clock, slots and the counts */
	unsigned long long clock;
	unsigned long long hits, misses;	/* takes that found their bytes, or not */
	struct head slots[];
};

struct headcache *headcache_new(struct membudget *mb, unsigned slots)
{
	struct headcache *hc;

	if (!mb || !slots)
		return NULL;
	hc = calloc(1, sizeof(*hc) + slots * sizeof(hc->slots[0]));
	if (!hc)
		return NULL;
	hc->mb = mb;
	hc->nslots = slots;
	pthread_mutex_init(&hc->lock, NULL);
	return hc;
}

static void head_clear(struct headcache *hc, struct head *h)
{
	membudget_put(hc->mb, &h->mem);	/* nothing if taken */
	free(h->key);
	free(h->etag);
	memset(h, 0, sizeof(*h));
}

void headcache_free(struct headcache *hc)
{
	unsigned i;

	if (!hc)
		return;
	for (i = 0; i < hc->nslots; i++)
		if (hc->slots[i].key)
			head_clear(hc, &hc->slots[i]);
	pthread_mutex_destroy(&hc->lock);
	free(hc);
}

char *headcache_buffer(struct headcache *hc, size_t cap)
{
	return membudget_alloc(hc->mb, cap);
}

void headcache_discard(struct headcache *hc, char *buf, size_t cap)
{
	membudget_release(hc->mb, buf, cap);
}

void headcache_put(struct headcache *hc, const char *key, const char *etag, char *buf,
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

int headcache_take(struct headcache *hc, const char *key, const char *etag, struct membuf *out,
		   size_t *got)
{
	struct head *h;
	unsigned i;
	int found = 0;

	pthread_mutex_lock(&hc->lock);
	for (i = 0; i < hc->nslots; i++) {
		h = &hc->slots[i];
		if (!h->key || strcmp(h->key, key))
			continue;
		if (!strcmp(h->etag, etag)) {
			membudget_transfer(out, &h->mem);	/* now the caller's */
			*got = h->got;
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

void headcache_stats(struct headcache *hc, unsigned long long *hits, unsigned long long *misses)
{
	pthread_mutex_lock(&hc->lock);
	*hits = hc->hits;
	*misses = hc->misses;
	pthread_mutex_unlock(&hc->lock);
}
