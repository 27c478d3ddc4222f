#include "cache/membudget.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

struct membudget {
	size_t limit;
	pthread_mutex_t lock;	/* guards locked */
	struct {
		size_t used;
		size_t peak;
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
	if (!b)
		return;
	pthread_mutex_destroy(&b->lock);
	free(b);
}

void *membudget_alloc(struct membudget *b, size_t n)
{
	void *p;

	if (!n)
		return NULL;
	pthread_mutex_lock(&b->lock);
	if (n > b->limit - b->locked.used) {
		pthread_mutex_unlock(&b->lock);
		return NULL;
	}
	b->locked.used += n;
	if (b->locked.used > b->locked.peak)
		b->locked.peak = b->locked.used;
	pthread_mutex_unlock(&b->lock);
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED) {
		pthread_mutex_lock(&b->lock);
		b->locked.used -= n;
		pthread_mutex_unlock(&b->lock);
		return NULL;
	}
	return p;
}

void membudget_release(struct membudget *b, void *p, size_t n)
{
	if (!p)
		return;
	munmap(p, n);
	pthread_mutex_lock(&b->lock);
	b->locked.used -= n;
	pthread_mutex_unlock(&b->lock);
}

size_t membudget_limit(const struct membudget *b)
{
	return b->limit;
}

size_t membudget_used(struct membudget *b)
{
	size_t n;

	pthread_mutex_lock(&b->lock);
	n = b->locked.used;
	pthread_mutex_unlock(&b->lock);
	return n;
}

size_t membudget_peak(struct membudget *b)
{
	size_t n;

	pthread_mutex_lock(&b->lock);
	n = b->locked.peak;
	pthread_mutex_unlock(&b->lock);
	return n;
}
