/*
 * A flight is one fetch of one directory. It is created by the first
 * dirfetch_join for its directory (key), queued, run by a fetch thread, and
 * freed by that thread when the fetch ends. Invariants, all under df->lock:
 *  - `flights` holds every flight that new waiters may join: queued or
 *    running, not yet ended and not abandoned; at most one per key;
 *  - `queue` holds the flights no thread has taken yet (a subset);
 *  - a flight's `waiters` are the joined waiters it has not answered nor
 *    detached; nwaiters counts them;
 *  - a waiter is JOINED from dirfetch_join to dirfetch_arm, ARMED after; a
 *    JOINED waiter that is detached keeps its outcome (rc, d, err) for its arm,
 *    an ARMED one is answered by whoever detached it, after unlocking.
 * A flight with no waiters left is abandoned by its thread before the next
 * page: it leaves `flights` at that moment, so a later join starts afresh.
 */
#include "cache/dirfetch.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache/listing.h"
#include "core/log.h"
#include "core/strutil.h"
#include "s3/store.h"

#define DIRFETCH_MAX_THREADS 16

enum { W_JOINED = 1, W_ARMED, W_CANCELLED_EARLY };

struct flight {
	struct dirfetch *df;
	char *key;
	long long deadline_ms;		/* 0: none */
	size_t reserved;		/* bytes reserved in the metadata cache */
	struct store_dir_waiter *waiters;
	size_t nwaiters;
	int abandoned;
	struct flight *next;		/* in `flights` */
	struct flight *next_queued;	/* in `queue` */
};

struct dirfetch {
	struct dirfetch_config cfg;
	pthread_mutex_t lock;		/* guards everything below, and every flight and waiter */
	pthread_cond_t work;		/* a flight was queued, or stop */
	struct flight *flights;
	struct flight *queue, *queue_tail;
	unsigned nqueued;
	unsigned nthreads, idle;	/* idle: threads waiting for a flight */
	pthread_t threads[DIRFETCH_MAX_THREADS];
	int stop;
	unsigned long long started, abandoned;
};

struct dirfetch *dirfetch_new(const struct dirfetch_config *cfg)
{
	struct dirfetch *df = calloc(1, sizeof(*df));

	if (!df)
		return NULL;
	df->cfg = *cfg;
	if (!df->cfg.threads)
		df->cfg.threads = DIRFETCH_THREADS;
	if (df->cfg.threads > DIRFETCH_MAX_THREADS)
		df->cfg.threads = DIRFETCH_MAX_THREADS;
	pthread_mutex_init(&df->lock, NULL);
	pthread_cond_init(&df->work, NULL);
	return df;
}

static void flight_unlink_locked(struct dirfetch *df, struct flight *fl)
{
	struct flight **p;

	for (p = &df->flights; *p; p = &(*p)->next)
		if (*p == fl) {
			*p = fl->next;
			break;
		}
	fl->next = NULL;
}

/* A copy of e for a waiter to hold until its arm (NULL when none or no memory). */
static struct store_error *error_keep(const struct store_error *e)
{
	struct store_error *k;

	if (!e || e->cls == ERR_OK)
		return NULL;
	k = malloc(sizeof(*k));
	if (k)
		*k = *e;
	return k;
}

/* Detach every waiter of fl; the ARMED ones are returned to be answered after unlocking. */
static struct store_dir_waiter *detach_all_locked(struct flight *fl, int rc, struct store_dir *l,
						  const struct store_error *e)
{
	struct store_dir_waiter *w, *next, *answer = NULL;

	for (w = fl->waiters; w; w = next) {
		next = w->next;
		w->flight = NULL;
		w->next = NULL;
		if (w->state == W_ARMED) {
			w->next = answer;
			answer = w;
		} else {
			/* Held for dirfetch_arm. */
			w->rc = rc;
			w->d = rc ? NULL : store_dir_ref(l);
			w->err = rc ? error_keep(e) : NULL;
		}
	}
	fl->waiters = NULL;
	fl->nwaiters = 0;
	return answer;
}

static void answer_all(struct store_dir_waiter *w, int rc, struct store_dir *l,
		       const struct store_error *e)
{
	struct store_dir_waiter *next;

	for (; w; w = next) {
		next = w->next;
		w->done(w, rc, rc ? NULL : store_dir_ref(l), rc ? e : NULL);
	}
}

/* listing_fetch's memory bound: reserve from the metadata cache as pages arrive. */
static int flight_charge(void *ctx, size_t bytes)
{
	struct flight *fl = ctx;
	int rc = fl->df->cfg.reserve ? fl->df->cfg.reserve(fl->df->cfg.ctx, bytes) : 0;

	if (!rc)
		fl->reserved += bytes;
	return rc;
}

/* Before each page: go on only while somebody waits and the mount is not stopping. */
static int flight_cancelled(void *ctx)
{
	struct flight *fl = ctx;
	struct dirfetch *df = fl->df;
	int gone;

	pthread_mutex_lock(&df->lock);
	gone = df->stop || fl->nwaiters == 0;
	if (fl->nwaiters == 0 && !fl->abandoned) {
		fl->abandoned = 1;
		df->abandoned++;
		flight_unlink_locked(df, fl);
	}
	pthread_mutex_unlock(&df->lock);
	return gone;
}

static void flight_run(struct flight *fl)
{
	struct dirfetch *df = fl->df;
	struct listing_bounds b = {
		.deadline_ms = fl->deadline_ms,
		.max_bytes = df->cfg.max_bytes,
		.charge = flight_charge,
		.cancelled = flight_cancelled,
		.ctx = fl,
	};
	struct store_dir_waiter *answer;
	struct store_dir *l = NULL;
	struct store_error e;
	int rc;

	store_error_clear(&e);
	rc = listing_fetch(df->cfg.store, fl->key, df->cfg.page_size, &b, &l, &e);
	/* The reservation becomes the cached listing's own cost (or nothing). */
	if (df->cfg.unreserve)
		df->cfg.unreserve(df->cfg.ctx, fl->reserved);
	if (rc != -EINTR && df->cfg.finished)
		df->cfg.finished(df->cfg.ctx, fl->key, rc, l);
	pthread_mutex_lock(&df->lock);
	if (!fl->abandoned)
		flight_unlink_locked(df, fl);
	answer = detach_all_locked(fl, rc, l, &e);
	pthread_mutex_unlock(&df->lock);
	answer_all(answer, rc, l, &e);
	store_dir_release(l);
	free(fl->key);
	free(fl);
}

static void *fetch_thread(void *arg)
{
	struct dirfetch *df = arg;
	struct flight *fl;

	pthread_mutex_lock(&df->lock);
	for (;;) {
		while (!df->queue && !df->stop)
			pthread_cond_wait(&df->work, &df->lock);
		fl = df->queue;
		if (!fl)
			break;
		df->queue = fl->next_queued;
		if (!df->queue)
			df->queue_tail = NULL;
		df->nqueued--;
		df->idle--;
		pthread_mutex_unlock(&df->lock);
		flight_run(fl);
		pthread_mutex_lock(&df->lock);
		df->idle++;
	}
	pthread_mutex_unlock(&df->lock);
	return NULL;
}

/* Queue fl, starting a thread when no idle one is left for it and the cap allows. 0 or -errno. */
static int enqueue_locked(struct dirfetch *df, struct flight *fl)
{
	if (df->nqueued >= df->idle && df->nthreads < df->cfg.threads) {
		int rc = pthread_create(&df->threads[df->nthreads], NULL, fetch_thread, df);

		if (rc && df->nthreads == 0)
			return -rc; /* nothing would ever run it */
		if (!rc) {
			df->nthreads++;
			df->idle++;
		}
	}
	fl->next_queued = NULL;
	if (df->queue_tail)
		df->queue_tail->next_queued = fl;
	else
		df->queue = fl;
	df->queue_tail = fl;
	df->nqueued++;
	pthread_cond_signal(&df->work);
	return 0;
}

int dirfetch_join(struct dirfetch *df, const char *key, struct store_dir_waiter *w)
{
	struct flight *fl;
	int rc = 0;

	w->next = NULL;
	w->state = W_JOINED;
	w->rc = 0;
	w->d = NULL;
	w->err = NULL;
	pthread_mutex_lock(&df->lock);
	if (df->stop) {
		rc = -ESHUTDOWN;
		goto out;
	}
	for (fl = df->flights; fl; fl = fl->next)
		if (!strcmp(fl->key, key))
			break;
	if (!fl) {
		fl = calloc(1, sizeof(*fl));
		if (!fl || !(fl->key = strdup(key))) {
			free(fl);
			rc = -ENOMEM;
			goto out;
		}
		fl->df = df;
		if (df->cfg.timeout_ms > 0)
			fl->deadline_ms = clock_mono_ms() + df->cfg.timeout_ms;
		rc = enqueue_locked(df, fl);
		if (rc) {
			free(fl->key);
			free(fl);
			goto out;
		}
		fl->next = df->flights;
		df->flights = fl;
		df->started++;
		rc = 1;
	}
	w->flight = fl;
	w->next = fl->waiters;
	fl->waiters = w;
	fl->nwaiters++;
out:
	pthread_mutex_unlock(&df->lock);
	return rc;
}

void dirfetch_answered(struct store_dir_waiter *w, int rc, struct store_dir *d)
{
	w->next = NULL;
	w->flight = NULL;
	w->state = W_JOINED;
	w->rc = rc;
	w->d = rc ? NULL : d;
	w->err = NULL;
}

/* Take w out of its flight's list. */
static void unlink_waiter_locked(struct store_dir_waiter *w)
{
	struct flight *fl = w->flight;
	struct store_dir_waiter **p;

	for (p = &fl->waiters; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			fl->nwaiters--;
			break;
		}
	w->next = NULL;
	w->flight = NULL;
}

void dirfetch_arm(struct dirfetch *df, struct store_dir_waiter *w)
{
	struct store_error *err;
	struct store_dir *l;
	int rc;

	/* A waiter answered before any fetch (dirfetch_answered) needs no df. */
	if (df)
		pthread_mutex_lock(&df->lock);
	if (df && w->state == W_JOINED && w->flight) {
		w->state = W_ARMED;
		pthread_mutex_unlock(&df->lock);
		return;
	}
	/* Cancelled, or the fetch ended, before the caller was ready: answer now. */
	if (w->flight)
		unlink_waiter_locked(w);
	rc = w->state == W_CANCELLED_EARLY ? -EINTR : w->rc;
	l = w->d;
	w->d = NULL;
	err = w->err;
	w->err = NULL;
	if (df)
		pthread_mutex_unlock(&df->lock);
	if (rc && l) {
		store_dir_release(l);
		l = NULL;
	}
	w->done(w, rc, l, rc == -EINTR ? NULL : err);
	free(err);
}

void dirfetch_cancel(struct dirfetch *df, const void *tag)
{
	struct store_dir_waiter *w = NULL;
	struct flight *fl;

	pthread_mutex_lock(&df->lock);
	for (fl = df->flights; fl && !w; fl = fl->next)
		for (w = fl->waiters; w && w->tag != tag; w = w->next)
			;
	if (w && w->state == W_ARMED) {
		unlink_waiter_locked(w);
	} else if (w) {
		/* Not armed yet (or cancelled twice): its arm answers it. */
		w->state = W_CANCELLED_EARLY;
		w = NULL;
	}
	pthread_mutex_unlock(&df->lock);
	if (w)
		w->done(w, -EINTR, NULL, NULL);
}

unsigned long long dirfetch_started(struct dirfetch *df)
{
	unsigned long long n;

	pthread_mutex_lock(&df->lock);
	n = df->started;
	pthread_mutex_unlock(&df->lock);
	return n;
}

unsigned long long dirfetch_abandoned(struct dirfetch *df)
{
	unsigned long long n;

	pthread_mutex_lock(&df->lock);
	n = df->abandoned;
	pthread_mutex_unlock(&df->lock);
	return n;
}

void dirfetch_free(struct dirfetch *df)
{
	struct store_dir_waiter *answer = NULL, *a;
	struct flight *fl;
	unsigned i;

	if (!df)
		return;
	pthread_mutex_lock(&df->lock);
	df->stop = 1;
	/* Flights no thread took: nobody will run them. */
	while ((fl = df->queue)) {
		df->queue = fl->next_queued;
		flight_unlink_locked(df, fl);
		a = detach_all_locked(fl, -EIO, NULL, NULL);
		while (a) {
			struct store_dir_waiter *next = a->next;

			a->next = answer;
			answer = a;
			a = next;
		}
		free(fl->key);
		free(fl);
	}
	df->queue_tail = NULL;
	df->nqueued = 0;
	pthread_cond_broadcast(&df->work);
	pthread_mutex_unlock(&df->lock);
	answer_all(answer, -EIO, NULL, NULL);
	for (i = 0; i < df->nthreads; i++)
		pthread_join(df->threads[i], NULL);
	pthread_cond_destroy(&df->work);
	pthread_mutex_destroy(&df->lock);
	free(df);
}
