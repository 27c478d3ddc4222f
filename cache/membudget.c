#include "cache/membudget.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "core/log.h"

/* Released mappings kept for reuse: at most this many, and half the limit. */
#define POOL_SLOTS 32

struct membudget {
	size_t limit;
	pthread_mutex_t lock;	/* guards locked */
	struct {
		size_t used;	/* handed out and not yet released */
		size_t pooled;	/* released, still mapped, in pool[] */
		size_t peak;	/* most of used ever */
		unsigned npool;
		struct {
			void *p;
			size_t n;
		} pool[POOL_SLOTS];
	} locked;
};

struct membudget *membudget_new(size_t limit)
{
	struct membudget *b;

	if (!limit)
		return NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->limit = limit;
	pthread_mutex_init(&b->lock, NULL);
	return b;
}

void membudget_free(struct membudget *b)
{
	unsigned i;

	if (!b)
		return;
	for (i = 0; i < b->locked.npool; i++)
		munmap(b->locked.pool[i].p, b->locked.pool[i].n);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

/*
 * The ceiling: what is reserved and what is kept never add up past the limit.
 * (That used never goes below 0 is checked where it shrinks: membudget_release.)
 */
static void check_locked(const struct membudget *b)
{
	assert(b->locked.used + b->locked.pooled <= b->limit);
	(void)b; /* without assert(3) */
}

/* Take pooled mapping i (the oldest is 0) out of the pool; it is the caller's. */
static void *pool_take_locked(struct membudget *b, unsigned i)
{
	void *p = b->locked.pool[i].p;

	b->locked.pooled -= b->locked.pool[i].n;
	b->locked.npool--;
	for (; i < b->locked.npool; i++)
		b->locked.pool[i] = b->locked.pool[i + 1];
	return p;
}

/* Unmap pooled mapping i. */
static void pool_drop_locked(struct membudget *b, unsigned i)
{
	size_t n = b->locked.pool[i].n;

	munmap(pool_take_locked(b, i), n);
}

int membudget_reserve_leaving(struct membudget *b, size_t n, size_t keep)
{
	unsigned i;
	int rc = 0;

	if (!n || keep >= b->limit)
		return -1;
	pthread_mutex_lock(&b->lock);
	if (n + keep > b->limit - b->locked.used - b->locked.pooled) {
		/*
		 * Kept mappings give way: smaller ones first (a reader's window
		 * grew past them, they are unlikely to be asked for again), then
		 * the oldest.
		 */
		for (i = b->locked.npool; i-- > 0;)
			if (b->locked.pool[i].n < n)
				pool_drop_locked(b, i);
		while (b->locked.npool && n + keep > b->limit - b->locked.used - b->locked.pooled)
			pool_drop_locked(b, 0);
	}
	if (n + keep > b->limit - b->locked.used - b->locked.pooled) {
		rc = -1;
	} else {
		b->locked.used += n;
		if (b->locked.used > b->locked.peak)
			b->locked.peak = b->locked.used;
	}
	check_locked(b);
	pthread_mutex_unlock(&b->lock);
	return rc;
}

int membudget_reserve(struct membudget *b, size_t n)
{
	return membudget_reserve_leaving(b, n, 0);
}

void *membudget_map(struct membudget *b, size_t n)
{
	void *p;
	unsigned i;

	pthread_mutex_lock(&b->lock);
	/* The newest mapping of the same size: its pages are the warmest. */
	for (i = b->locked.npool; i-- > 0;) {
		if (b->locked.pool[i].n != n)
			continue;
		p = pool_take_locked(b, i);
		pthread_mutex_unlock(&b->lock);
		return p;
	}
	pthread_mutex_unlock(&b->lock);
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void *membudget_alloc(struct membudget *b, size_t n)
{
	void *p;

	if (membudget_reserve(b, n))
		return NULL;
	p = membudget_map(b, n);
	if (!p)
		membudget_release(b, NULL, n);
	return p;
}

void membudget_release(struct membudget *b, void *p, size_t n)
{
	size_t was;

	if (!n)
		return;
	pthread_mutex_lock(&b->lock);
	was = b->locked.used;
	if (n > was) {
		/* Released twice, or more than reserved: keep the ceiling, drop the mapping. */
		b->locked.used = 0;
	} else {
		b->locked.used -= n;
		if (p && b->locked.npool < POOL_SLOTS && b->locked.pooled + n <= b->limit / 2) {
			b->locked.pool[b->locked.npool].p = p;
			b->locked.pool[b->locked.npool].n = n;
			b->locked.npool++;
			b->locked.pooled += n;
			p = NULL;
		}
	}
	check_locked(b);
	pthread_mutex_unlock(&b->lock);
	if (p)
		munmap(p, n);
	if (n > was) {
		log_once(LOG_ERR, "memory budget: %zu bytes released with only %zu reserved "
			 "(a buffer released twice); please report this bug", n, was);
		assert(!"membudget: released more than was reserved");
	}
}

int membudget_get(struct membudget *b, size_t n, struct membuf *out)
{
	*out = MEMBUF_EMPTY;
	out->p = membudget_alloc(b, n);
	if (!out->p)
		return -1;
	out->n = n;
	return 0;
}

void membudget_put(struct membudget *b, struct membuf *m)
{
	if (m->n)
		membudget_release(b, m->p, m->n);
	*m = MEMBUF_EMPTY;
}

void membudget_transfer(struct membuf *to, struct membuf *from)
{
	assert(!to->n && !to->p);
	*to = *from;
	*from = MEMBUF_EMPTY;
}

void membudget_trim(struct membudget *b)
{
	pthread_mutex_lock(&b->lock);
	while (b->locked.npool)
		pool_drop_locked(b, b->locked.npool - 1);
	pthread_mutex_unlock(&b->lock);
}

size_t membudget_limit(const struct membudget *b)
{
	return b->limit;
}

/* One counter, read under the lock. */
static size_t read_locked(struct membudget *b, const size_t *field)
{
	size_t n;

	pthread_mutex_lock(&b->lock);
	n = *field;
	pthread_mutex_unlock(&b->lock);
	return n;
}

size_t membudget_used(struct membudget *b)
{
	return read_locked(b, &b->locked.used);
}

size_t membudget_pooled(struct membudget *b)
{
	return read_locked(b, &b->locked.pooled);
}

size_t membudget_peak(struct membudget *b)
{
	return read_locked(b, &b->locked.peak);
}
