/*
 * Invariants, under ds->lock:
 *  - l->first <= every attached reader's pin, unless the window rule let a
 *    slower reader's entries go (that reader then reads -ESTALE);
 *  - kept: l->first == 0; nothing is let go;
 *  - reserved <= l->bytes is what the cache still counts for this stream; it
 *    only shrinks once windowed (each byte let go returns one reserved byte
 *    until none is left), and what is left goes back when the stream is freed.
 */
#include "cache/dirstream.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache/listing.h"

struct dirstream {
	pthread_mutex_t lock;		/* guards everything below */
	int refs;			/* atomic */
	struct store_dir *l;
	size_t window;
	int kept, done, rc;
	size_t pages;
	size_t reserved;
	struct dirstream_reader *readers;
	size_t nreaders;
	void (*release)(void *ctx, size_t bytes);
	void *ctx;
};

struct dirstream *dirstream_new(size_t window, void (*release)(void *ctx, size_t bytes),
				void *ctx)
{
	struct dirstream *ds = calloc(1, sizeof(*ds));

	if (!ds)
		return NULL;
	ds->l = store_dir_new();
	if (!ds->l) {
		free(ds);
		return NULL;
	}
	pthread_mutex_init(&ds->lock, NULL);
	ds->refs = 1;
	ds->window = window;
	ds->kept = 1;
	ds->release = release;
	ds->ctx = ctx;
	return ds;
}

struct dirstream *dirstream_of_listing(struct store_dir *l)
{
	struct dirstream *ds = calloc(1, sizeof(*ds));

	if (!ds)
		return NULL;
	pthread_mutex_init(&ds->lock, NULL);
	ds->refs = 1;
	ds->l = store_dir_ref(l);
	ds->kept = 1;
	ds->done = 1;
	return ds;
}

struct dirstream *dirstream_ref(struct dirstream *ds)
{
	__atomic_add_fetch(&ds->refs, 1, __ATOMIC_RELAXED);
	return ds;
}

void dirstream_release(struct dirstream *ds)
{
	if (!ds || __atomic_sub_fetch(&ds->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	if (ds->reserved && ds->release)
		ds->release(ds->ctx, ds->reserved);
	store_dir_release(ds->l);
	pthread_mutex_destroy(&ds->lock);
	free(ds);
}

/* Windowed: let go of what no reader needs, and past the window what the fastest does not. */
static void trim_locked(struct dirstream *ds)
{
	struct dirstream_reader *r;
	size_t lo = ds->l->n, hi = 0, freed, back;

	if (ds->kept)
		return;
	for (r = ds->readers; r; r = r->next) {
		if (r->pin < lo)
			lo = r->pin;
		if (r->pin > hi)
			hi = r->pin;
	}
	freed = store_dir_let_go(ds->l, lo);
	if (ds->l->bytes > ds->window && hi > lo)
		freed += store_dir_let_go(ds->l, hi);
	back = freed < ds->reserved ? freed : ds->reserved;
	if (back) {
		ds->reserved -= back;
		if (ds->release)
			ds->release(ds->ctx, back);
	}
}

void dirstream_attach(struct dirstream *ds, struct dirstream_reader *r, size_t pin)
{
	pthread_mutex_lock(&ds->lock);
	r->pin = pin;
	r->next = ds->readers;
	ds->readers = r;
	ds->nreaders++;
	pthread_mutex_unlock(&ds->lock);
}

void dirstream_detach(struct dirstream *ds, struct dirstream_reader *r)
{
	struct dirstream_reader **p;

	pthread_mutex_lock(&ds->lock);
	for (p = &ds->readers; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			ds->nreaders--;
			break;
		}
	r->next = NULL;
	trim_locked(ds);
	pthread_mutex_unlock(&ds->lock);
}

size_t dirstream_readers(struct dirstream *ds)
{
	size_t n;

	pthread_mutex_lock(&ds->lock);
	n = ds->nreaders;
	pthread_mutex_unlock(&ds->lock);
	return n;
}

int dirstream_append(struct dirstream *ds, struct listing_batch *b)
{
	int rc;

	pthread_mutex_lock(&ds->lock);
	rc = listing_append(ds->l, b);
	if (!rc) {
		ds->pages++;
		trim_locked(ds);
	}
	pthread_mutex_unlock(&ds->lock);
	return rc;
}

void dirstream_reserved(struct dirstream *ds, size_t bytes)
{
	pthread_mutex_lock(&ds->lock);
	ds->reserved += bytes;
	pthread_mutex_unlock(&ds->lock);
}

void dirstream_end(struct dirstream *ds, int rc)
{
	pthread_mutex_lock(&ds->lock);
	ds->done = 1;
	ds->rc = rc;
	pthread_mutex_unlock(&ds->lock);
}

void dirstream_unkeep(struct dirstream *ds)
{
	pthread_mutex_lock(&ds->lock);
	ds->kept = 0;
	trim_locked(ds);
	pthread_mutex_unlock(&ds->lock);
}

int dirstream_over_window(struct dirstream *ds)
{
	int over;

	pthread_mutex_lock(&ds->lock);
	over = !ds->kept && ds->l->bytes > ds->window;
	pthread_mutex_unlock(&ds->lock);
	return over;
}

struct store_dir *dirstream_take_listing(struct dirstream *ds, size_t *reserved)
{
	struct store_dir *l = NULL;

	pthread_mutex_lock(&ds->lock);
	*reserved = 0;
	if (ds->kept && ds->done && !ds->rc) {
		l = store_dir_ref(ds->l);
		*reserved = ds->reserved;
		ds->reserved = 0;
	}
	pthread_mutex_unlock(&ds->lock);
	return l;
}

void dirstream_progress(struct dirstream *ds, struct dirstream_progress *p)
{
	pthread_mutex_lock(&ds->lock);
	p->n = ds->l->n;
	p->first = ds->l->first;
	p->pages = ds->pages;
	p->done = ds->done;
	p->rc = ds->rc;
	p->kept = ds->kept;
	p->bytes = ds->l->bytes;
	pthread_mutex_unlock(&ds->lock);
}

ssize_t dirstream_read(struct dirstream *ds, struct dirstream_reader *r, size_t off,
		       store_dirent_fn fn, void *ctx, int *resume)
{
	ssize_t got = 0;
	size_t i;
	int rc = 0;

	*resume = 0;
	pthread_mutex_lock(&ds->lock);
	if (off < ds->l->first) {
		pthread_mutex_unlock(&ds->lock);
		return -ESTALE;
	}
	r->pin = off;
	for (i = off; i < ds->l->n; i++) {
		rc = fn(ctx, i, store_dir_at(ds->l, i));
		if (rc)
			break;
		got++;
	}
	if (rc < 0 && got == 0)
		got = rc;
	else if (got == 0 && rc == 0 && off >= ds->l->n)
		got = !ds->done ? -EAGAIN : ds->rc ? ds->rc : 0;
	trim_locked(ds);
	/* Half the window is free, or this reader has taken everything: more may come. */
	*resume = !ds->kept && !ds->done &&
		  (ds->l->bytes <= ds->window / 2 || off >= ds->l->n);
	pthread_mutex_unlock(&ds->lock);
	return got;
}
