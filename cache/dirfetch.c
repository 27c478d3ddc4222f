/*
 * A flight is one fetch of one directory, filling one stream. It is created
 * by an open (or a reader's restart), queued, run by a fetch thread page by
 * page, set aside while its window is full (F_PAUSED: no thread holds it)
 * and queued again when a reader takes from the window, and freed when the
 * listing ends, fails or is abandoned. Invariants, all under df->lock:
 *  - `live` holds every flight not yet ended; `flights` the joinable ones
 *    (kept streams): at most one per directory key;
 *  - `queue` holds exactly the F_QUEUED flights; a F_RUNNING flight belongs
 *    to the thread running it, which alone ends it; a F_PAUSED one is ended
 *    by whoever finds it without readers (or by dirfetch_free);
 *  - a flight's `waiters` are the waiters it has not answered nor detached;
 *    a waiter is JOINED from dirfetch_open/_wait to dirfetch_arm, ARMED
 *    after; a JOINED waiter that is detached keeps its answer (rc) for its
 *    arm, an ARMED one is answered by whoever detached it, after unlocking;
 *  - every reader of a flight's stream was attached under df->lock, so a
 *    flight that no reader may still join (windowed) and that has none left
 *    is nobody's any more.
 * Lock order: df->lock, then a stream's lock (cache/dirstream.h), then the
 * metadata table's (reservations, through cfg.reserve and cfg.unreserve).
 */
#include "cache/dirfetch.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache/dirstream.h"
#include "cache/listing.h"
#include "core/log.h"
#include "core/strutil.h"
#include "s3/store.h"

#define DIRFETCH_MAX_THREADS 16

enum { W_JOINED = 1, W_ARMED, W_CANCELLED_EARLY };
enum { K_OPEN = 1, K_READ };
enum { F_QUEUED = 1, F_RUNNING, F_PAUSED };

struct flight {
	struct dirfetch *df;
	char *key;
	struct dirstream *ds;
	struct listing_fetch fetch;
	long long deadline_ms;		/* 0: none; moved on by the time spent paused */
	long long paused_ms;
	int state;
	int joinable;			/* in `flights` */
	struct store_error err;		/* why it ended, once it did (the running thread's until then) */
	struct store_dir_waiter *waiters;
	struct flight *next;		/* in `flights` */
	struct flight *next_live;	/* in `live` */
	struct flight *next_queued;	/* in `queue` */
};

/* An open directory (s3/store.h's opaque type is this cache's). */
struct store_dir_reader {
	struct dirstream_reader sr;	/* its place in ds */
	struct dirstream *ds;
	char *key;			/* NULL: a reader of a whole listing */
};

struct dirfetch {
	struct dirfetch_config cfg;
	pthread_mutex_t lock;		/* guards everything below, every flight and waiter */
	pthread_cond_t work;		/* a flight was queued, or stop */
	struct flight *flights, *live;
	struct flight *queue, *queue_tail;
	unsigned nqueued, nlive;
	unsigned nthreads, idle;	/* idle: threads waiting for a flight */
	pthread_t threads[DIRFETCH_MAX_THREADS];
	int stop;
	unsigned long long started, abandoned;
	size_t peak_held;		/* the most one stream held, after a page */
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
	if (!df->cfg.window)
		df->cfg.window = DIRFETCH_WINDOW;
	pthread_mutex_init(&df->lock, NULL);
	pthread_cond_init(&df->work, NULL);
	return df;
}

/* ---- flights: lists ---------------------------------------------------------------------- */

static void unjoin_locked(struct dirfetch *df, struct flight *fl)
{
	struct flight **p;

	if (!fl->joinable)
		return;
	for (p = &df->flights; *p; p = &(*p)->next)
		if (*p == fl) {
			*p = fl->next;
			break;
		}
	fl->next = NULL;
	fl->joinable = 0;
}

static void unlive_locked(struct dirfetch *df, struct flight *fl)
{
	struct flight **p;

	unjoin_locked(df, fl);
	for (p = &df->live; *p; p = &(*p)->next_live)
		if (*p == fl) {
			*p = fl->next_live;
			df->nlive--;
			break;
		}
	fl->next_live = NULL;
}

static struct flight *joinable_locked(struct dirfetch *df, const char *key)
{
	struct flight *fl;

	for (fl = df->flights; fl; fl = fl->next)
		if (!strcmp(fl->key, key))
			return fl;
	return NULL;
}

/* The flight filling ds, if it has not ended. */
static struct flight *producer_locked(struct dirfetch *df, struct dirstream *ds)
{
	struct flight *fl;

	for (fl = df->live; fl; fl = fl->next_live)
		if (fl->ds == ds)
			return fl;
	return NULL;
}

static void *fetch_thread(void *arg);

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
	fl->state = F_QUEUED;
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

static void flight_free(struct flight *fl)
{
	listing_fetch_cleanup(&fl->fetch);
	dirstream_release(fl->ds);
	free(fl->key);
	free(fl);
}

/* A new flight for key, queued, joinable. NULL on failure (*rc says). */
static struct flight *flight_new_locked(struct dirfetch *df, const char *key, int *rc)
{
	struct flight *fl = calloc(1, sizeof(*fl));

	*rc = -ENOMEM;
	if (!fl)
		return NULL;
	fl->df = df;
	fl->key = strdup(key);
	/* The cache's reservation for the stream's bytes is given back as they are let go. */
	fl->ds = dirstream_new(df->cfg.window, df->cfg.unreserve, df->cfg.ctx);
	if (!fl->key || !fl->ds ||
	    listing_fetch_init(&fl->fetch, df->cfg.store, key, df->cfg.page_size, NULL) != 0) {
		flight_free(fl);
		return NULL;
	}
	if (df->cfg.timeout_ms > 0)
		fl->deadline_ms = clock_mono_ms() + df->cfg.timeout_ms;
	*rc = enqueue_locked(df, fl);
	if (*rc) {
		flight_free(fl);
		return NULL;
	}
	fl->joinable = 1;
	fl->next = df->flights;
	df->flights = fl;
	fl->next_live = df->live;
	df->live = fl;
	df->nlive++;
	df->started++;
	return fl;
}

/* ---- waiters ----------------------------------------------------------------------------- */

/* Is w answered by where the stream is? Then *rc is its answer. */
static int satisfied(const struct store_dir_waiter *w, const struct dirstream_progress *p, int *rc)
{
	*rc = 0;
	if (w->kind == K_OPEN) {
		if (p->pages == 0 && p->done)
			*rc = p->rc ? p->rc : -EIO;
		return p->pages > 0 || p->done;
	}
	return p->n > w->off || p->done || w->off < p->first;
}

/*
 * Detach fl's waiters that where the stream is answers (all of them when
 * `all`, with rc_all for those it does not). The ARMED ones are returned, to
 * be answered after unlocking; the JOINED ones keep their answer for arm.
 */
static struct store_dir_waiter *detach_locked(struct flight *fl, int all, int rc_all)
{
	struct store_dir_waiter *w, *next, **p = &fl->waiters, *answer = NULL;
	struct dirstream_progress pr;
	int rc;

	dirstream_progress(fl->ds, &pr);
	for (w = fl->waiters; w; w = next) {
		next = w->next;
		if (!satisfied(w, &pr, &rc)) {
			if (!all) {
				p = &w->next;
				continue;
			}
			rc = rc_all;
		}
		*p = next;
		w->flight = NULL;
		w->next = NULL;
		w->rc = rc;
		w->err = rc && rc != -EINTR ? store_error_dup(&fl->err) : NULL;
		if (w->state == W_ARMED) {
			w->next = answer;
			answer = w;
		}
	}
	return answer;
}

static void answer(struct dirfetch *df, struct store_dir_waiter *w, int rc)
{
	struct store_error *err = w->err;

	if (w->kind == K_OPEN && rc) {
		dirfetch_close(df, w->r);
		w->r = NULL;
	}
	w->err = NULL;
	w->done(w, rc, rc == -EINTR ? NULL : err);
	free(err);
}

static void answer_all(struct dirfetch *df, struct store_dir_waiter *w)
{
	struct store_dir_waiter *next;

	for (; w; w = next) {
		next = w->next;
		answer(df, w, w->rc);
	}
}

static void add_waiter_locked(struct flight *fl, struct store_dir_waiter *w)
{
	w->flight = fl;
	w->next = fl->waiters;
	fl->waiters = w;
}

/* ---- running a flight -------------------------------------------------------------------- */

/* A flight that ends with no thread in it (paused, queued, or at dirfetch_free). */
static void flight_drop(struct dirfetch *df, struct flight *fl, int rc)
{
	struct store_dir_waiter *answer_list;

	dirstream_end(fl->ds, rc);
	pthread_mutex_lock(&df->lock);
	answer_list = detach_locked(fl, 1, rc);
	pthread_mutex_unlock(&df->lock);
	answer_all(df, answer_list);
	flight_free(fl);
}

/* The listing does not fit in the cache: stream it in a window from now on. */
static void flight_unkeep(struct flight *fl)
{
	struct dirfetch *df = fl->df;

	pthread_mutex_lock(&df->lock);
	unjoin_locked(df, fl);
	pthread_mutex_unlock(&df->lock);
	dirstream_unkeep(fl->ds);
	log_once(LOG_NOTICE, "the listing of '%s' does not fit in --metadata-cache-size: it is "
		 "read as it comes and not kept, so lookups in it ask S3 by name", fl->key);
}

/* Append one page's entries; while kept, reserve what they cost. 0 or -ENOMEM. */
static int flight_add(struct flight *fl, struct listing_batch *b)
{
	struct dirstream_progress before, after;
	int rc;

	dirstream_progress(fl->ds, &before);
	rc = dirstream_append(fl->ds, b);
	if (rc)
		return rc;
	dirstream_progress(fl->ds, &after);
	pthread_mutex_lock(&fl->df->lock);
	if (after.bytes > fl->df->peak_held)
		fl->df->peak_held = after.bytes;
	pthread_mutex_unlock(&fl->df->lock);
	if (!before.kept || after.bytes <= before.bytes)
		return 0;
	if (fl->df->cfg.reserve &&
	    fl->df->cfg.reserve(fl->df->cfg.ctx, after.bytes - before.bytes) == 0)
		dirstream_reserved(fl->ds, after.bytes - before.bytes);
	else
		flight_unkeep(fl);
	return 0;
}

/*
 * The fetch ended (rc 0: complete; fl->err says why not): hand a kept
 * listing to the cache, answer everyone, free fl.
 */
static void flight_end(struct flight *fl, int rc)
{
	struct dirfetch *df = fl->df;
	struct store_dir_waiter *answer_list;
	struct store_dir *l = NULL;
	size_t reserved = 0;

	dirstream_end(fl->ds, rc);
	if (!rc)
		l = dirstream_take_listing(fl->ds, &reserved);
	/* The reservation becomes the cached listing's own cost (or nothing). */
	if (reserved && df->cfg.unreserve)
		df->cfg.unreserve(df->cfg.ctx, reserved);
	if (rc != -EINTR && df->cfg.finished)
		df->cfg.finished(df->cfg.ctx, fl->key, rc, l);
	store_dir_release(l);
	pthread_mutex_lock(&df->lock);
	unlive_locked(df, fl);
	answer_list = detach_locked(fl, 1, rc);
	pthread_mutex_unlock(&df->lock);
	answer_all(df, answer_list);
	flight_free(fl);
}

/* Pages until the listing ends or the window is full (then the flight waits, threadless). */
static void flight_run(struct flight *fl)
{
	struct dirfetch *df = fl->df;
	struct listing_batch batch = { 0 };
	struct store_dir_waiter *answer_list;
	int rc;

	store_error_clear(&fl->err);
	for (;;) {
		pthread_mutex_lock(&df->lock);
		if (df->stop || dirstream_readers(fl->ds) == 0) {
			if (!df->stop)
				df->abandoned++;
			pthread_mutex_unlock(&df->lock);
			rc = -EINTR;
			break;
		}
		if (dirstream_over_window(fl->ds)) {
			fl->state = F_PAUSED;
			fl->paused_ms = clock_mono_ms();
			pthread_mutex_unlock(&df->lock);
			return;
		}
		fl->fetch.b.deadline_ms = fl->deadline_ms;
		pthread_mutex_unlock(&df->lock);
		rc = listing_fetch_page(&fl->fetch, &batch, &fl->err);
		if (rc >= 0) {
			int added = flight_add(fl, &batch);

			if (added)
				rc = added;
		}
		listing_batch_cleanup(&batch);
		if (rc <= 0)
			break;
		pthread_mutex_lock(&df->lock);
		answer_list = detach_locked(fl, 0, 0);
		pthread_mutex_unlock(&df->lock);
		answer_all(df, answer_list);
	}
	flight_end(fl, rc);
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
		fl->state = F_RUNNING;
		pthread_mutex_unlock(&df->lock);
		flight_run(fl);
		pthread_mutex_lock(&df->lock);
		df->idle++;
	}
	pthread_mutex_unlock(&df->lock);
	return NULL;
}

/* A paused flight whose stream has no reader left is nobody's: take it out to drop it. */
static struct flight *orphan_locked(struct dirfetch *df, struct dirstream *ds)
{
	struct flight *fl = producer_locked(df, ds);

	if (!fl || fl->state != F_PAUSED || dirstream_readers(ds) != 0)
		return NULL;
	unlive_locked(df, fl);
	df->abandoned++;
	return fl;
}

/* ---- readers ----------------------------------------------------------------------------- */

static struct store_dir_reader *reader_new(struct dirstream *ds, const char *key,
					  size_t pin)
{
	struct store_dir_reader *r = calloc(1, sizeof(*r));

	if (!r || (key && !(r->key = strdup(key)))) {
		free(r);
		return NULL;
	}
	r->ds = dirstream_ref(ds);
	dirstream_attach(ds, &r->sr, pin);
	return r;
}

struct store_dir_reader *dirfetch_open_listing(struct store_dir *l)
{
	struct dirstream *ds = dirstream_of_listing(l);
	struct store_dir_reader *r;

	if (!ds)
		return NULL;
	r = reader_new(ds, NULL, 0);
	dirstream_release(ds);
	return r;
}

void dirfetch_answered(struct store_dir_waiter *w, struct store_dir_reader *r, int rc)
{
	w->next = NULL;
	w->flight = NULL;
	w->kind = K_OPEN;
	w->state = W_JOINED;
	w->rc = rc;
	w->err = NULL;
	w->off = 0;
	w->r = r;
}

int dirfetch_open(struct dirfetch *df, const char *key,
		  struct store_dir_reader **out, struct store_dir_waiter *w)
{
	struct dirstream_progress p;
	struct flight *fl;
	int rc = 0, started = 0;

	*out = NULL;
	w->next = NULL;
	w->flight = NULL;
	w->kind = K_OPEN;
	w->state = W_JOINED;
	w->rc = 0;
	w->err = NULL;
	w->off = 0;
	pthread_mutex_lock(&df->lock);
	if (df->stop) {
		rc = -ESHUTDOWN;
		goto out;
	}
	fl = joinable_locked(df, key);
	if (!fl) {
		fl = flight_new_locked(df, key, &rc);
		if (!fl)
			goto out;
		started = 1;
	}
	w->r = reader_new(fl->ds, key, 0);
	if (!w->r) {
		rc = -ENOMEM;
		goto out; /* a new flight without readers is abandoned at its first page */
	}
	dirstream_progress(fl->ds, &p);
	if (!satisfied(w, &p, &w->rc))
		add_waiter_locked(fl, w);
	*out = w->r;
	rc = started;
out:
	pthread_mutex_unlock(&df->lock);
	return rc;
}

ssize_t dirfetch_read(struct dirfetch *df, struct store_dir_reader *r, size_t off,
		      store_dirent_fn fn, void *ctx)
{
	int resume = 0;
	ssize_t got = dirstream_read(r->ds, &r->sr, off, fn, ctx, &resume);

	if (resume && df) {
		struct flight *fl;

		pthread_mutex_lock(&df->lock);
		fl = producer_locked(df, r->ds);
		if (fl && fl->state == F_PAUSED && !df->stop) {
			long long now = clock_mono_ms();

			/* The time spent waiting for readers is not the server's. */
			if (fl->deadline_ms)
				fl->deadline_ms += now - fl->paused_ms;
			enqueue_locked(df, fl);
		}
		pthread_mutex_unlock(&df->lock);
	}
	return got == -ESTALE ? -EAGAIN : got;
}

/* r's stream let go of what it needs: move r to a fresh stream of its directory, at off. */
static int restart_locked(struct dirfetch *df, struct store_dir_reader *r, size_t off,
			  struct flight **out, struct flight **orphan)
{
	struct dirstream *old = r->ds;
	struct flight *fl;
	int rc = 0;

	if (!r->key)
		return -EIO; /* a whole listing lets nothing go */
	fl = joinable_locked(df, r->key);
	if (!fl)
		fl = flight_new_locked(df, r->key, &rc);
	if (!fl)
		return rc;
	dirstream_detach(old, &r->sr);
	*orphan = orphan_locked(df, old);
	r->ds = dirstream_ref(fl->ds);
	dirstream_attach(r->ds, &r->sr, off);
	dirstream_release(old); /* fl's own reference keeps a live stream */
	*out = fl;
	return 0;
}

int dirfetch_wait(struct dirfetch *df, struct store_dir_reader *r, size_t off,
		  struct store_dir_waiter *w)
{
	struct flight *fl = NULL, *orphan = NULL;
	struct dirstream_progress p;
	int rc = 0, ignored;

	w->next = NULL;
	w->flight = NULL;
	w->kind = K_READ;
	w->state = W_JOINED;
	w->rc = 0;
	w->err = NULL;
	w->off = off;
	w->r = r;
	pthread_mutex_lock(&df->lock);
	if (df->stop) {
		rc = -ESHUTDOWN;
		goto out;
	}
	dirstream_progress(r->ds, &p);
	if (off < p.first) {
		rc = restart_locked(df, r, off, &fl, &orphan);
		if (rc)
			goto out;
		dirstream_progress(r->ds, &p);
	} else {
		fl = producer_locked(df, r->ds);
	}
	if (!fl || satisfied(w, &p, &ignored)) {
		rc = 1; /* there already (or nothing more will come): read again */
		goto out;
	}
	add_waiter_locked(fl, w);
out:
	pthread_mutex_unlock(&df->lock);
	if (orphan)
		flight_drop(df, orphan, -EINTR);
	return rc;
}

/* Take w out of its flight's list. */
static void unlink_waiter_locked(struct store_dir_waiter *w)
{
	struct flight *fl = w->flight;
	struct store_dir_waiter **p;

	for (p = &fl->waiters; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
	w->next = NULL;
	w->flight = NULL;
}

void dirfetch_arm(struct dirfetch *df, struct store_dir_waiter *w)
{
	int rc;

	/* A waiter answered before any fetch (dirfetch_answered) needs no df. */
	if (!df) {
		answer(df, w, w->rc);
		return;
	}
	pthread_mutex_lock(&df->lock);
	if (w->state == W_JOINED && w->flight) {
		w->state = W_ARMED;
		pthread_mutex_unlock(&df->lock);
		return;
	}
	/* Cancelled, or answered, before the caller was ready: answer now. */
	if (w->flight)
		unlink_waiter_locked(w);
	rc = w->state == W_CANCELLED_EARLY ? -EINTR : w->rc;
	w->state = W_ARMED;
	pthread_mutex_unlock(&df->lock);
	answer(df, w, rc);
}

void dirfetch_cancel(struct dirfetch *df, const void *tag)
{
	struct store_dir_waiter *w = NULL;
	struct flight *fl;

	pthread_mutex_lock(&df->lock);
	for (fl = df->live; fl && !w; fl = fl->next_live)
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
		answer(df, w, -EINTR);
}

void dirfetch_close(struct dirfetch *df, struct store_dir_reader *r)
{
	struct flight *orphan = NULL;

	if (!r)
		return;
	if (df) {
		pthread_mutex_lock(&df->lock);
		dirstream_detach(r->ds, &r->sr);
		orphan = orphan_locked(df, r->ds);
		pthread_mutex_unlock(&df->lock);
	} else {
		dirstream_detach(r->ds, &r->sr);
	}
	if (orphan)
		flight_drop(df, orphan, -EINTR);
	dirstream_release(r->ds);
	free(r->key);
	free(r);
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

size_t dirfetch_held(struct dirfetch *df, size_t *peak)
{
	struct dirstream_progress p;
	struct flight *fl;
	size_t sum = 0;

	pthread_mutex_lock(&df->lock);
	for (fl = df->live; fl; fl = fl->next_live) {
		dirstream_progress(fl->ds, &p);
		sum += p.bytes;
	}
	*peak = df->peak_held;
	pthread_mutex_unlock(&df->lock);
	return sum;
}

unsigned dirfetch_live(struct dirfetch *df)
{
	unsigned n;

	pthread_mutex_lock(&df->lock);
	n = df->nlive;
	pthread_mutex_unlock(&df->lock);
	return n;
}

void dirfetch_free(struct dirfetch *df)
{
	struct flight *fl, *next, *drop = NULL;
	unsigned i;

	if (!df)
		return;
	pthread_mutex_lock(&df->lock);
	df->stop = 1;
	/* Flights no thread holds: nobody will run them again. */
	for (fl = df->live; fl; fl = next) {
		next = fl->next_live;
		if (fl->state == F_RUNNING)
			continue;
		unlive_locked(df, fl);
		fl->next_queued = drop;
		drop = fl;
	}
	df->queue = df->queue_tail = NULL;
	df->nqueued = 0;
	pthread_cond_broadcast(&df->work);
	pthread_mutex_unlock(&df->lock);
	for (fl = drop; fl; fl = next) {
		next = fl->next_queued;
		flight_drop(df, fl, -EIO);
	}
	for (i = 0; i < df->nthreads; i++)
		pthread_join(df->threads[i], NULL);
	pthread_cond_destroy(&df->work);
	pthread_mutex_destroy(&df->lock);
	free(df);
}
