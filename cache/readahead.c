/*
 * The prefetcher. State of one open file:
 *
 *   parts     a list of parts sorted by offset, each [off, off+len), filled by
 *             one GET; the list holds one reference on each.
 *   sched_end where the next read-ahead part would start (the end of the last
 *             part scheduled).
 *   next, hi  the end of the last read served, and the furthest end of any.
 *   window    0 when not streaming, else how far past the current read the
 *             parts should reach.
 *
 * A part is QUEUED (in the fetch queue), FETCHING (a thread runs its GET) or
 * DONE (rc and got are final; readers may use buf). References: the file's
 * list, the queue/fetching thread, and each reader that is waiting for it or
 * replying from it; the last one unmaps the buffer. A part leaves the list
 * when the reader is back_tolerance past its end, or on a seek; a queued part
 * that leaves the list is cancelled (its thread skips the GET).
 *
 * Invariants (under file.lock): parts are sorted by off and do not overlap;
 * sched_end >= the end of every part in the list; inflight counts the file's
 * parts that are QUEUED or FETCHING; a file stays allocated while its handle
 * is open, any of its parts is queued or fetching, or a reader still replies
 * from its parts (refs): the kernel may send RELEASE as soon as a read's reply
 * is out, before the reading thread has let go of the span.
 */
#include "cache/readahead.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/membudget.h"
#include "cache/rashare.h"
#include "core/err.h"
#include "core/log.h"
#include "core/strutil.h"
#include "s3/store.h"

#define RA_BLOCK 4096
/*
 * After a seek, streaming starts again only once reads near each other (each
 * within this distance of the run so far) have asked for this many bytes: a
 * random 256 KiB read arrives as two adjacent 128 KiB kernel reads and must
 * not pull a whole window, while a sequential reader whose kernel reads
 * arrive slightly out of order must still get one.
 */
#define RA_RESTART (512 << 10)
#define MAX_THREADS 64
/*
 * A read that failed (EIO, ETIMEDOUT, EAGAIN) spent a whole operation budget.
 * The kernel answers such a failure by asking again at once for the first
 * page of the same range: for this long, a read that overlaps the failed
 * range gets the same error without a new budget, so that the reader sees
 * one budget, not two. Later reads fetch again (the fault may be over).
 */
#define RA_FAIL_MEMORY_MS 2000
/* How long a direct read waits for buffer memory when the budget is full. */
#define RA_MEM_WAIT_MS 10000
/* The most of the budget kept for direct reads (see schedule_locked). */
#define RA_DIRECT_RESERVE (2u << 20)
/*
 * How long a stream that ended still clips the read-ahead of others of the
 * same object (cache/rashare.h): readers of neighbouring ranges end within
 * seconds of each other.
 */
#define RA_PRINT_MS 30000
/*
 * How far past another stream's start a reader that came from below reads
 * with one first window (cache/rashare.h), in first windows: the kernel's
 * read-ahead past where a reader stops is less.
 */
#define RA_SHADOW 4

enum part_state { PART_QUEUED, PART_FETCHING, PART_DONE };

struct ra_part {
	struct ra_file *file;
	long long off;
	size_t len;
	size_t got;
	size_t cap;			/* bytes reserved for buf */
	char *buf;
	enum part_state state;
	int rc;
	struct store_error *err;	/* rc's detail when there is one (malloc'd), or NULL */
	/* A head's buffer (ra_open with a head) goes back this way, not to the budget. */
	void (*release)(void *ctx, char *buf, size_t cap);
	void *release_ctx;
	int cancelled;
	int linked;			/* in the file's list */
	int abort;			/* atomic: stop the GET, nobody wants it any more */
	int refs;			/* guarded by file->lock */
	struct ra_part *next;		/* the file's list */
	struct ra_part *qnext;		/* the fetch queue (readahead.lock) */
};

struct ra_file {
	struct store_file base;		/* first: the file is cast back */
	struct readahead *ra;
	char *key;
	char etag[128];			/* pinned; "" until the first answer names one */
	long long size;
	int refs;			/* atomic: handle, parts queued or fetching, spans */
	pthread_mutex_t lock;		/* guards everything below */
	pthread_cond_t cond;		/* a part became DONE */
	struct ra_part *parts;
	long long sched_end;
	long long next;
	long long run_start, run_hi;	/* span of the reads since the last seek */
	long long run_bytes;		/* ... and how many bytes they asked for */
	long long hi;
	size_t window;
	unsigned inflight;
	int stale;
	struct rashare_entry share;	/* this file's stream among the others */
	struct {			/* the last failed read (RA_FAIL_MEMORY_MS) */
		int rc;
		long long off, end;
		long long at_ms;
		struct store_error *err;	/* its detail (malloc'd), or NULL */
	} fail;
};

struct readahead {
	struct store_layer layer;	/* first: the store is cast back; reads go to its inner */
	struct membudget *mb;
	struct ra_config cfg;
	size_t direct_reserve;		/* budget bytes parts leave to direct reads */
	struct rashare *share;		/* the streams of all files: shares, clips */
	int nfiles;			/* atomic: ra_files allocated */
	pthread_t threads[MAX_THREADS];
	unsigned nthreads;
	pthread_mutex_t lock;		/* guards locked; taken after a file's lock */
	pthread_cond_t cond;		/* work arrived or stop */
	pthread_cond_t mem_cond;	/* a buffer went back to the budget */
	int mem_waiters;		/* atomic: direct reads waiting for memory */
	struct {
		struct ra_part *head, *tail;
		int stop;
		struct ra_stats stats;
	} locked;
};

static void file_put(struct ra_file *f)
{
	struct readahead *ra = f->ra;

	if (__atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
	free(f->fail.err);
	free(f->key);
	free(f);
	/* Nothing is being read: buffers kept for reuse go back to the kernel. */
	if (__atomic_sub_fetch(&ra->nfiles, 1, __ATOMIC_ACQ_REL) == 0)
		membudget_trim(ra->mb);
}

static void part_put_locked(struct ra_part *p)
{
	struct readahead *ra = p->file->ra;

	if (--p->refs > 0) {
		/* Out of the list, and only its thread holds it: a GET for nobody. */
		if (p->refs == 1 && p->state == PART_FETCHING && !p->linked)
			__atomic_store_n(&p->abort, 1, __ATOMIC_RELEASE);
		return;
	}
	if (p->release)
		p->release(p->release_ctx, p->buf, p->cap);
	else
		membudget_release(ra->mb, p->buf, p->cap);
	free(p->err);
	free(p);
	if (__atomic_load_n(&ra->mem_waiters, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&ra->lock);
		pthread_cond_broadcast(&ra->mem_cond);
		pthread_mutex_unlock(&ra->lock);
	}
}

static void stats_add(struct readahead *ra, unsigned long long *field, unsigned long long n)
{
	pthread_mutex_lock(&ra->lock);
	*field += n;
	pthread_mutex_unlock(&ra->lock);
}

/* Take a part out of the list; cancel it if no thread has started it. */
static void part_unlink_locked(struct ra_file *f, struct ra_part **link)
{
	struct ra_part *p = *link;

	*link = p->next;
	p->next = NULL;
	p->linked = 0;
	if (p->state == PART_QUEUED)
		p->cancelled = 1;
	part_put_locked(p);
}

/* Take p out of the list if it is still there (a failed part is not kept). */
static void part_forget_locked(struct ra_file *f, struct ra_part *p)
{
	struct ra_part **link;

	for (link = &f->parts; *link; link = &(*link)->next) {
		if (*link == p) {
			part_unlink_locked(f, link);
			return;
		}
	}
}

/* A copy of e to keep with a failure (NULL when there is none, or no memory). */
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

/* Hand a kept error's detail (or none) to the caller's e. */
static void error_give(const struct store_error *kept, struct store_error *e)
{
	if (kept)
		*e = *kept;
	else
		store_error_clear(e);
}

/* Remember a failed read of [off, end) and its detail e (RA_FAIL_MEMORY_MS). */
static void note_failure_locked(struct ra_file *f, int rc, long long off, long long end,
				const struct store_error *e)
{
	if (rc != -EIO && rc != -ETIMEDOUT && rc != -EAGAIN)
		return;
	f->fail.rc = rc;
	f->fail.off = off;
	f->fail.end = end;
	f->fail.at_ms = clock_mono_ms();
	free(f->fail.err);
	f->fail.err = error_keep(e);
}

/* The error of a failure just now that overlaps [off, end) (detail in e), else 0. */
static int recent_failure_locked(struct ra_file *f, long long off, long long end,
				 struct store_error *e)
{
	if (!f->fail.rc || clock_mono_ms() - f->fail.at_ms > RA_FAIL_MEMORY_MS)
		return 0;
	if (off >= f->fail.end || end <= f->fail.off)
		return 0;
	error_give(f->fail.err, e);
	return f->fail.rc;
}

/* The window closes: parts nobody will read are cancelled or their GETs aborted. */
static void drop_parts_locked(struct ra_file *f)
{
	while (f->parts)
		part_unlink_locked(f, &f->parts);
	f->window = 0;
	rashare_leave(f->ra->share, &f->share);
}

static void queue_push(struct readahead *ra, struct ra_part *p, int front)
{
	pthread_mutex_lock(&ra->lock);
	if (front) {
		p->qnext = ra->locked.head;
		ra->locked.head = p;
		if (!ra->locked.tail)
			ra->locked.tail = p;
	} else {
		p->qnext = NULL;
		if (ra->locked.tail)
			ra->locked.tail->qnext = p;
		else
			ra->locked.head = p;
		ra->locked.tail = p;
	}
	pthread_cond_signal(&ra->cond);
	pthread_mutex_unlock(&ra->lock);
}

/*
 * A reader waits for p, which no thread has started: it goes to the head of
 * the queue, ahead of parts that are only read-ahead (this file's or
 * another's).
 */
static void queue_promote(struct readahead *ra, struct ra_part *p)
{
	struct ra_part **link, *prev = NULL;

	pthread_mutex_lock(&ra->lock);
	for (link = &ra->locked.head; *link && *link != p; link = &(*link)->qnext)
		prev = *link;
	if (*link && link != &ra->locked.head) {
		*link = p->qnext;
		if (ra->locked.tail == p)
			ra->locked.tail = prev;
		p->qnext = ra->locked.head;
		ra->locked.head = p;
	}
	pthread_mutex_unlock(&ra->lock);
}

/*
 * This file's share of the window when streams active share the fetch
 * threads: max_window split evenly, on first_window boundaries, never below
 * one first window.
 */
static size_t window_share(const struct readahead *ra, size_t window, unsigned streams)
{
	size_t w = ra->cfg.max_window / streams & ~(ra->cfg.first_window - 1);

	if (w < ra->cfg.first_window)
		w = ra->cfg.first_window;
	return window < w ? window : w;
}

/*
 * Schedule parts from sched_end up to pos + window; those below demand_end
 * are needed by a waiting reader and go first in the queue, past the per-file
 * limit. Read-ahead is topped up only once a part's worth (at most half the
 * window) has been consumed, so that a first small read fetches one window
 * and no more. Returns -ENOMEM when a demanded part did not fit in the budget.
 *
 * With other streams active, this one takes its share (cache/rashare.h): of
 * the window, and of the fetch threads (parts queued or in flight at once),
 * so that no stream fills the queue ahead of the others. Read-ahead stops
 * where another stream of the same object began (the clip): those bytes are
 * in the page cache already, or past where this reader will stop; and past
 * it, in that stream's shadow, it is one first window at most.
 */
static int schedule_locked(struct ra_file *f, long long demand_end, long long pos)
{
	struct readahead *ra = f->ra;
	long long clip;
	int shadow;
	unsigned streams = rashare_query(ra->share, &f->share, pos, clock_mono_ms(), &clip, &shadow);
	unsigned cap = (ra->cfg.concurrency + streams - 1) / streams;
	/* In another stream's shadow, only what is read next (cache/rashare.h). */
	size_t window = shadow ? ra->cfg.first_window : window_share(ra, f->window, streams);
	/*
	 * The window ends on a first_window boundary, so that a first read
	 * fetches one first window, also when its first bytes came with the
	 * lookup (ra_open_head).
	 */
	long long target = (pos + (long long)window) & ~(long long)(ra->cfg.first_window - 1);
	size_t refill = window / 2 < ra->cfg.part_size ? window / 2 : ra->cfg.part_size;
	struct ra_part *p, **tail;
	int topping = 0;

	if (target > clip)
		target = clip;
	if (target > f->size)
		target = f->size;
	for (tail = &f->parts; *tail; tail = &(*tail)->next)
		;
	while (f->sched_end < f->size) {
		int demand = f->sched_end < demand_end;
		size_t len = ra->cfg.part_size;
		size_t misalign = (size_t)(f->sched_end & (long long)(ra->cfg.first_window - 1));

		if (!demand) {
			if (!topping && f->sched_end - pos >= (long long)(window - refill))
				break;
			topping = 1;
			if (f->sched_end >= target || f->inflight >= cap)
				break;
			/* A reader waits for memory: let it have what parts give back. */
			if (__atomic_load_n(&ra->mem_waiters, __ATOMIC_ACQUIRE))
				break;
		}
		if (len > window)
			len = window;
		/* Not past the clip either (target is at or before it). */
		if (!demand && (long long)len > clip - f->sched_end)
			len = (size_t)(clip - f->sched_end);
		/* Back on the boundaries after a head of odd size (ra_open_head). */
		if (misalign && len > ra->cfg.first_window - misalign)
			len = ra->cfg.first_window - misalign;
		if ((long long)len > f->size - f->sched_end)
			len = (size_t)(f->size - f->sched_end);
		/*
		 * Only counted here: the fetching thread maps it (fetch_thread).
		 * Parts leave direct_reserve free, so that a direct read waits at
		 * most for other direct reads, whose GETs always end.
		 */
		if (membudget_reserve_leaving(ra->mb, len, ra->direct_reserve) != 0) {
			/* Shrink rather than wait: a smaller part may still fit. */
			if (len <= ra->cfg.first_window ||
			    membudget_reserve_leaving(ra->mb, ra->cfg.first_window,
						      ra->direct_reserve) != 0) {
				stats_add(ra, &ra->locked.stats.budget_short, 1);
				return demand ? -ENOMEM : 0;
			}
			len = ra->cfg.first_window;
		}
		p = calloc(1, sizeof(*p));
		if (!p) {
			membudget_release(ra->mb, NULL, len);
			return demand ? -ENOMEM : 0;
		}
		p->file = f;
		p->off = f->sched_end;
		p->len = len;
		p->cap = len;
		p->state = PART_QUEUED;
		p->linked = 1;
		p->refs = 2;		/* the list and the queue */
		*tail = p;
		tail = &p->next;
		f->sched_end += (long long)len;
		f->inflight++;
		rashare_busy(&f->share, f->inflight);
		__atomic_add_fetch(&f->refs, 1, __ATOMIC_ACQ_REL);
		queue_push(ra, p, demand);
	}
	return 0;
}

/*
 * An answer's ETag against the file's pin, under f->lock: the first answer
 * of an unpinned file pins it; an answer of another version is the object
 * changed (ERR_PRECONDITION: -ESTALE).
 */
static int pin_locked(struct ra_file *f, const struct store_read *rd, struct store_error *e)
{
	if (!rd->etag[0])
		return 0;
	if (!f->etag[0]) {
		snprintf(f->etag, sizeof(f->etag), "%s", rd->etag);
		return 0;
	}
	if (!strcmp(f->etag, rd->etag))
		return 0;
	store_error_clear(e);
	e->cls = ERR_PRECONDITION;
	snprintf(e->what, sizeof(e->what), "the ETag changed from %s to %s", f->etag, rd->etag);
	return -store_error_errno(e);
}

/*
 * The bytes of [off, off + want) arrived: all of them, or it is a malformed
 * answer (ERR_PROTOCOL) the store should not have let through.
 */
static int check_got(struct ra_file *f, long long off, size_t want, size_t got,
		     struct store_error *e)
{
	if (got == want)
		return 0;
	log_msg(LOG_ERR, "read of key %s at %lld: %zu bytes where the object's %lld bytes "
		"promise %zu; failing the read", f->key, off, got, f->size, want);
	store_error_clear(e);
	e->cls = ERR_PROTOCOL;
	snprintf(e->what, sizeof(e->what), "%zu bytes where %zu were asked for", got, want);
	return -store_error_errno(e);
}

static void *fetch_thread(void *arg)
{
	struct readahead *ra = arg;
	struct store_read rd;
	struct ra_part *p;
	struct ra_file *f;
	struct store_error e;
	size_t got;
	int rc, cancelled;

	for (;;) {
		pthread_mutex_lock(&ra->lock);
		while (!ra->locked.head && !ra->locked.stop)
			pthread_cond_wait(&ra->cond, &ra->lock);
		p = ra->locked.head;
		if (!p) {
			pthread_mutex_unlock(&ra->lock);
			return NULL;
		}
		ra->locked.head = p->qnext;
		if (!ra->locked.head)
			ra->locked.tail = NULL;
		pthread_mutex_unlock(&ra->lock);

		f = p->file;
		pthread_mutex_lock(&f->lock);
		cancelled = p->cancelled || f->stale;
		if (!cancelled)
			p->state = PART_FETCHING;
		/* The pin may have been set by another part's answer meanwhile. */
		store_read_init(&rd, f->etag, f->size);
		rd.cancel = &p->abort;
		pthread_mutex_unlock(&f->lock);

		got = 0;
		store_error_clear(&e);
		if (cancelled) {
			rc = -ECANCELED;
			stats_add(ra, &ra->locked.stats.cancelled, 1);
		} else if (!(p->buf = membudget_map(ra->mb, p->cap))) {
			rc = -ENOMEM;
		} else {
			rc = store_read_range(ra->layer.inner, f->key, &rd, p->off, p->len, p->buf,
					      &got, &e);
			if (rc == 0)
				rc = check_got(f, p->off, p->len, got, &e);
			pthread_mutex_lock(&ra->lock);
			if (rc == -EINTR)
				ra->locked.stats.aborted++;
			else
				ra->locked.stats.gets++;
			ra->locked.stats.bytes += got;
			pthread_mutex_unlock(&ra->lock);
		}

		pthread_mutex_lock(&f->lock);
		if (rc == 0)
			rc = pin_locked(f, &rd, &e);
		p->rc = rc;
		if (rc)
			p->err = error_keep(&e);
		p->got = rc ? 0 : got;
		p->state = PART_DONE;
		f->inflight--;
		rashare_busy(&f->share, f->inflight);
		if (rc == -ESTALE) {
			f->stale = 1;
			drop_parts_locked(f);
		} else if (rc && rc != -EINTR && rc != -ECANCELED) {
			note_failure_locked(f, rc, p->off, p->off + (long long)p->len, &e);
			/* Not kept: a later read asks again, the fault may be over. */
			if (p->linked)
				part_forget_locked(f, p);
		}
		pthread_cond_broadcast(&f->cond);
		part_put_locked(p);
		/*
		 * Keep the pipeline full without waiting for the next read, but
		 * not for a reader that stopped reading: it may never come back.
		 */
		if (f->window && !f->stale && f->sched_end > 0 &&
		    !rashare_idle(ra->share, &f->share, clock_mono_ms()))
			schedule_locked(f, 0, f->hi);
		pthread_mutex_unlock(&f->lock);
		file_put(f);
	}
}

static const struct store_ops ra_ops;

struct store *readahead_new(struct store *inner, struct membudget *mb, const struct ra_config *cfg)
{
	struct readahead *ra = calloc(1, sizeof(*ra));

	if (!ra)
		return NULL;
	ra->layer.base.ops = &ra_ops;
	ra->layer.inner = inner;
	ra->mb = mb;
	ra->cfg = *cfg;
	/* A quarter of the budget, at most 2 MiB: a few reads of up to 512 KiB. */
	ra->direct_reserve = membudget_limit(mb) / 4;
	if (ra->direct_reserve > RA_DIRECT_RESERVE)
		ra->direct_reserve = RA_DIRECT_RESERVE;
	if (!ra->cfg.part_size)
		ra->cfg.part_size = 8u << 20;
	if (!ra->cfg.concurrency)
		ra->cfg.concurrency = 8;
	if (ra->cfg.concurrency > MAX_THREADS)
		ra->cfg.concurrency = MAX_THREADS;
	if (!ra->cfg.first_window)
		ra->cfg.first_window = 1u << 20;
	if (ra->cfg.first_window > ra->cfg.part_size)
		ra->cfg.first_window = ra->cfg.part_size;
	/* A power of two: windows and parts then stay aligned to it. */
	while (ra->cfg.first_window & (ra->cfg.first_window - 1))
		ra->cfg.first_window &= ra->cfg.first_window - 1;
	if (!ra->cfg.max_window)
		ra->cfg.max_window = ra->cfg.part_size * ra->cfg.concurrency;
	if (ra->cfg.max_window < ra->cfg.first_window)
		ra->cfg.max_window = ra->cfg.first_window;
	if (!ra->cfg.back_tolerance)
		ra->cfg.back_tolerance = 1u << 20;
	if (!ra->cfg.fwd_tolerance)
		ra->cfg.fwd_tolerance = 1u << 20;
	if (ra->cfg.idle_ms <= 0)
		ra->cfg.idle_ms = 1000;
	ra->share = rashare_new(ra->cfg.idle_ms, RA_PRINT_MS, (long long)ra->cfg.first_window,
				RA_SHADOW * (long long)ra->cfg.first_window);
	if (!ra->share) {
		free(ra);
		return NULL;
	}
	pthread_mutex_init(&ra->lock, NULL);
	pthread_cond_init(&ra->cond, NULL);
	pthread_cond_init(&ra->mem_cond, NULL);
	return &ra->layer.base;
}

int readahead_start(struct store *s)
{
	struct readahead *ra = (struct readahead *)s;
	unsigned i;
	int rc = 0;

	for (i = ra->nthreads; i < ra->cfg.concurrency; i++) {
		rc = pthread_create(&ra->threads[i], NULL, fetch_thread, ra);
		if (rc)
			break;
		ra->nthreads++;
	}
	return ra->nthreads ? 0 : -rc;
}

static void ra_destroy(struct store *s)
{
	struct readahead *ra = (struct readahead *)s;
	unsigned i;

	pthread_mutex_lock(&ra->lock);
	ra->locked.stop = 1;
	pthread_cond_broadcast(&ra->cond);
	pthread_mutex_unlock(&ra->lock);
	/* Threads drain the queue (cancelled parts) before they see stop. */
	for (i = 0; i < ra->nthreads; i++)
		pthread_join(ra->threads[i], NULL);
	pthread_cond_destroy(&ra->cond);
	pthread_cond_destroy(&ra->mem_cond);
	pthread_mutex_destroy(&ra->lock);
	rashare_free(ra->share);
	free(ra);
}

void readahead_stats(struct store *s, struct ra_stats *out)
{
	struct readahead *ra = (struct readahead *)s;

	pthread_mutex_lock(&ra->lock);
	*out = ra->locked.stats;
	pthread_mutex_unlock(&ra->lock);
}

/* The object's first bytes, already here: the file's first part, done. */
static void open_with_head(struct ra_file *f, struct store_head *head)
{
	struct ra_part *p = head->got ? calloc(1, sizeof(*p)) : NULL;
	size_t got = head->got;

	if (!p) {
		store_head_release(head);
		return;
	}
	if ((long long)got > f->size)
		got = (size_t)f->size;
	p->file = f;
	p->off = 0;
	p->len = got;
	p->got = got;
	p->cap = head->cap;	/* the part owns the buffer from here (part_put_locked) */
	p->buf = head->buf;
	p->release = head->release;
	p->release_ctx = head->ctx;
	p->state = PART_DONE;
	p->linked = 1;
	p->refs = 1;		/* the list */
	f->parts = p;
	f->sched_end = (long long)got;
	memset(head, 0, sizeof(*head));
}

/*
 * Open key pinned to a's ETag ("" = unpinned), a->size bytes long; with head,
 * the object's first bytes are the first part already. Takes *head in every
 * case. NULL on ENOMEM.
 */
static struct store_file *ra_open(struct store *s, const char *key, const struct store_attr *a,
				  struct store_head *head)
{
	struct readahead *ra = (struct readahead *)s;
	struct ra_file *f = calloc(1, sizeof(*f));

	if (f)
		f->key = strdup(key);
	if (!f || !f->key) {
		free(f);
		if (head)
			store_head_release(head);
		return NULL;
	}
	f->base.store = s;
	f->ra = ra;
	__atomic_add_fetch(&ra->nfiles, 1, __ATOMIC_ACQ_REL);
	/* An ETag that cannot be sent back pins nothing: the first answer's will. */
	snprintf(f->etag, sizeof(f->etag), "%s", etag_sendable(a->etag) ? a->etag : "");
	/* Bounded, so that offset arithmetic never overflows. */
	f->size = a->size < 0 ? 0 : a->size > STORE_SIZE_MAX ? STORE_SIZE_MAX : a->size;
	f->refs = 1;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	if (head)
		open_with_head(f, head);
	return &f->base;
}

static void ra_close(struct store_file *sf)
{
	struct ra_file *f = (struct ra_file *)sf;

	pthread_mutex_lock(&f->lock);
	drop_parts_locked(f);
	pthread_mutex_unlock(&f->lock);
	file_put(f);
}

static void span_release_locked(struct store_span *sp)
{
	int i;

	for (i = 0; i < sp->nheld; i++)
		part_put_locked(sp->held[i]);
	sp->nheld = 0;
	sp->niov = 0;
	sp->len = 0;
}

static void ra_span_release(struct store_file *sf, struct store_span *sp)
{
	struct ra_file *f = (struct ra_file *)sf;

	if (sp->nheld) {
		/* The handle may be closed already: the span's reference keeps f. */
		pthread_mutex_lock(&f->lock);
		span_release_locked(sp);
		pthread_mutex_unlock(&f->lock);
		file_put(f);
	}
	/* sp->owner, not f->ra: a direct read's span does not keep f alive. */
	if (sp->owned)
		membudget_release(sp->owner, sp->owned, sp->owned_cap);
	sp->owned = NULL;
	sp->owned_cap = 0;
	sp->niov = 0;
	sp->len = 0;
}

static int cancelled(const int *cancel)
{
	return cancel && __atomic_load_n(cancel, __ATOMIC_ACQUIRE);
}

/*
 * Collect [off, end) from the parts, waiting for those still in flight.
 * Returns 0 (sp filled), 1 when the parts do not cover the range (the caller
 * fetches it directly), or a negative errno with the part's detail in e
 * (-EINTR when *cancel was set while waiting). *passed is set when the read
 * reached the end of a part.
 */
static int gather_locked(struct ra_file *f, long long off, long long end, const int *cancel,
			 struct store_span *sp, int *passed, struct store_error *e)
{
	long long cur = off;
	struct ra_part *p;
	int rc;

	while (cur < end) {
		long long pend;
		size_t n;

		for (p = f->parts; p && p->off + (long long)p->len <= cur; p = p->next)
			;
		if (!p || p->off > cur || sp->niov == STORE_IOV_MAX)
			goto hole;
		p->refs++;
		sp->held[sp->nheld++] = p;
		if (p->state == PART_QUEUED)
			queue_promote(f->ra, p);
		while (p->state != PART_DONE) {
			/* ra_interrupt wakes us: the reader is gone, stop waiting. */
			if (cancelled(cancel)) {
				span_release_locked(sp);
				return -EINTR;
			}
			pthread_cond_wait(&f->cond, &f->lock);
		}
		if (p->rc == -ECANCELED || p->rc == -EINTR)
			goto hole;
		rc = p->rc;
		/* Never short: fetch_thread made that an error (check_got). */
		if (!rc && p->got != p->len)
			rc = -err_class_errno(ERR_PROTOCOL);
		if (rc) {
			error_give(p->err, e);
			span_release_locked(sp);
			return rc;
		}
		pend = p->off + (long long)p->got;
		n = (size_t)((end < pend ? end : pend) - cur);
		sp->iov[sp->niov].iov_base = p->buf + (cur - p->off);
		sp->iov[sp->niov].iov_len = n;
		sp->niov++;
		sp->len += n;
		cur += (long long)n;
		if (cur >= p->off + (long long)p->len)
			*passed = 1;
	}
	return 0;
hole:
	span_release_locked(sp);
	return 1;
}

/*
 * Buffer memory for a direct read, from the budget like every read buffer.
 * Parts never take the last direct_reserve bytes, so this waits only for
 * other direct reads (and lookup heads) to finish; meanwhile this file's
 * parts go back and read-ahead stops growing (schedule_locked). Up to
 * RA_MEM_WAIT_MS; NULL when no memory came (or the reader went away).
 */
static char *direct_buffer(struct ra_file *f, size_t n, const int *cancel)
{
	struct readahead *ra = f->ra;
	long long deadline = clock_mono_ms() + RA_MEM_WAIT_MS;
	struct timespec ts;
	char *p = membudget_alloc(ra->mb, n);

	if (p)
		return p;
	/*
	 * First give back what this file holds: when every reader waits here,
	 * the memory they wait for must not be their own read-ahead.
	 */
	pthread_mutex_lock(&f->lock);
	drop_parts_locked(f);
	pthread_mutex_unlock(&f->lock);
	p = membudget_alloc(ra->mb, n);
	if (p)
		return p;
	__atomic_add_fetch(&ra->mem_waiters, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_lock(&ra->lock);
	while (!(p = membudget_alloc(ra->mb, n)) && !cancelled(cancel) &&
	       clock_mono_ms() < deadline) {
		/* Also a poll: a release may come between the alloc and the wait. */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&ra->mem_cond, &ra->lock, &ts);
	}
	pthread_mutex_unlock(&ra->lock);
	__atomic_sub_fetch(&ra->mem_waiters, 1, __ATOMIC_ACQ_REL);
	return p;
}

/* Fetch [off, end), rounded out to RA_BLOCK, with one GET by this thread. */
static int read_direct(struct ra_file *f, long long off, long long end, const int *cancel,
		       struct store_span *sp, struct store_error *e)
{
	struct readahead *ra = f->ra;
	long long a = off & ~(long long)(RA_BLOCK - 1);
	long long b = (end + RA_BLOCK - 1) & ~(long long)(RA_BLOCK - 1);
	struct store_read rd;
	size_t got = 0;
	int rc;

	if (b > f->size)
		b = f->size;
	sp->owned = direct_buffer(f, (size_t)(b - a), cancel);
	if (!sp->owned) {
		if (cancelled(cancel))
			return -EINTR;
		log_once(LOG_ERR, "reads wait for buffer memory for more than %d s: --max-memory "
			 "(%zu bytes) is too small for the files read at once; raise it",
			 RA_MEM_WAIT_MS / 1000, membudget_limit(ra->mb));
		return -ENOMEM;
	}
	sp->owned_cap = (size_t)(b - a);
	sp->owner = ra->mb;
	pthread_mutex_lock(&f->lock);
	store_read_init(&rd, f->etag, f->size);
	pthread_mutex_unlock(&f->lock);
	rd.cancel = cancel;
	rc = store_read_range(ra->layer.inner, f->key, &rd, a, (size_t)(b - a), sp->owned, &got,
			      e);
	if (rc == 0)
		rc = check_got(f, a, (size_t)(b - a), got, e);
	pthread_mutex_lock(&ra->lock);
	ra->locked.stats.direct_gets++;
	ra->locked.stats.bytes += got;
	pthread_mutex_unlock(&ra->lock);
	pthread_mutex_lock(&f->lock);
	if (rc == 0)
		rc = pin_locked(f, &rd, e);
	pthread_mutex_unlock(&f->lock);
	if (rc) {
		membudget_release(ra->mb, sp->owned, sp->owned_cap);
		sp->owned = NULL;
		sp->owned_cap = 0;
		return rc;
	}
	sp->iov[0].iov_base = sp->owned + (off - a);
	sp->iov[0].iov_len = (size_t)(end - off);
	sp->niov = 1;
	sp->len = (size_t)(end - off);
	return 0;
}

/* Do the parts in the list cover [off, end) without a gap? */
static int covered_locked(const struct ra_file *f, long long off, long long end)
{
	const struct ra_part *p;

	for (p = f->parts; p && off < end; p = p->next) {
		if (p->off > off)
			return 0;
		if (p->off + (long long)p->len > off)
			off = p->off + (long long)p->len;
	}
	return off >= end;
}

/* Parts the reader is far enough past leave the list. */
static void retire_locked(struct ra_file *f)
{
	struct ra_part **link = &f->parts;
	long long keep = f->hi - (long long)f->ra->cfg.back_tolerance;

	while (*link) {
		if ((*link)->off + (long long)(*link)->len <= keep)
			part_unlink_locked(f, link);
		else
			link = &(*link)->next;
	}
}

/*
 * A reader that was away (no read on this file) for more than idle_ms comes
 * back to a smaller window: half for each idle_ms it was away. A reader that
 * reads in bursts with pauses between them then keeps a window its bursts
 * need, not one that grew while it read fast once.
 */
static void shrink_after_pause_locked(struct ra_file *f, long long away_ms)
{
	const struct ra_config *cfg = &f->ra->cfg;

	for (; away_ms > cfg->idle_ms && f->window > cfg->first_window; away_ms -= cfg->idle_ms)
		f->window /= 2;
	if (f->window && f->window < cfg->first_window)
		f->window = cfg->first_window;
}

/* ra_read with [off, end) inside the object; away_ms: see shrink_after_pause_locked. */
static int read_range(struct ra_file *f, long long off, long long end, long long away_ms,
		      const int *cancel, struct store_span *sp, struct store_error *e)
{
	const struct ra_config *cfg = &f->ra->cfg;
	int rc, seq, passed = 0;

	pthread_mutex_lock(&f->lock);
	shrink_after_pause_locked(f, away_ms);
	if (f->stale) {
		/* The object changed since open: every read of this handle says so. */
		pthread_mutex_unlock(&f->lock);
		e->cls = ERR_PRECONDITION;
		snprintf(e->what, sizeof(e->what), "the object changed since it was opened");
		return -store_error_errno(e);
	}
	rc = recent_failure_locked(f, off, end, e);
	if (rc) {
		pthread_mutex_unlock(&f->lock);
		return rc;
	}
	if (f->window) {
		/* Ahead: anywhere the window has asked for, or a little past it. */
		long long reach = f->next + (long long)cfg->fwd_tolerance;

		seq = off >= f->next - (long long)cfg->back_tolerance &&
		      off <= (reach > f->sched_end ? reach : f->sched_end);
	} else {
		if (off >= f->run_start - RA_RESTART && off <= f->run_hi + RA_RESTART &&
		    f->run_bytes) {
			f->run_start = off < f->run_start ? off : f->run_start;
			f->run_hi = end > f->run_hi ? end : f->run_hi;
			f->run_bytes += end - off;
		} else {
			f->run_start = off;
			f->run_hi = end;
			f->run_bytes = end - off;
		}
		/* Reading from the start of a fresh open, or a long enough run. */
		seq = (off == 0 && f->hi == 0) || f->run_bytes >= RA_RESTART;
	}
	if (!seq && f->window && covered_locked(f, off, end)) {
		/*
		 * Out of order but already fetched or in flight (the kernel's
		 * parallel read-ahead overtaking itself): serve it, keep the window.
		 */
		rc = gather_locked(f, off, end, cancel, sp, &passed, e);
		if (rc < 0)
			goto failed;
		if (rc == 0) {
			seq = 1;
			goto served;
		}
	}
	if (!seq) {
		if (f->window) {
			f->run_start = off;
			f->run_hi = end;
			f->run_bytes = end - off;
		}
		drop_parts_locked(f);
	} else {
		if (!f->window || off > f->sched_end) {
			/*
			 * Start (or, after a forward skip, restart) the window here,
			 * never over parts already there. Not from the first_window
			 * boundary below: after a seek, the reads that made the run
			 * were fetched directly, and each restart fetched up to 1 MiB
			 * again. The first part ends on a boundary (schedule_locked),
			 * so the next ones are aligned to the disk cache's blocks.
			 */
			long long start = off & ~(long long)(RA_BLOCK - 1);

			if (!f->window) {
				long long lo = f->run_start < off ? f->run_start : off;

				f->window = cfg->first_window;
				rashare_join(f->ra->share, &f->share, f->key,
					     lo & ~(long long)(cfg->first_window - 1));
			}
			if (start < f->sched_end && f->parts)
				start = f->sched_end;
			f->sched_end = start;
		}
		rc = schedule_locked(f, end, end > f->hi ? end : f->hi);
		if (rc == 0)
			rc = gather_locked(f, off, end, cancel, sp, &passed, e);
		else
			rc = 1;
		if (rc < 0)
			goto failed;
		if (rc == 0)
			goto served;
	}
	pthread_mutex_unlock(&f->lock);

	rc = read_direct(f, off, end, cancel, sp, e);
	pthread_mutex_lock(&f->lock);
	if (rc == -ESTALE) {
		f->stale = 1;
		drop_parts_locked(f);
	}
	if (rc) {
		note_failure_locked(f, rc, off, end, e);
		goto failed;
	}
served:
	if (sp->nheld)
		__atomic_add_fetch(&f->refs, 1, __ATOMIC_ACQ_REL);
	f->next = off + (long long)sp->len;
	if (f->next > f->hi || !seq)
		f->hi = f->next;
	if (passed && f->window && f->window < cfg->max_window) {
		f->window *= 2;
		if (f->window > cfg->max_window)
			f->window = cfg->max_window;
	}
	retire_locked(f);
	pthread_mutex_unlock(&f->lock);
	return 0;
failed:
	pthread_mutex_unlock(&f->lock);
	return rc;
}

static int ra_read(struct store_file *sf, long long off, size_t len, const int *cancel,
		   struct store_span *sp, struct store_error *e)
{
	struct ra_file *f = (struct ra_file *)sf;
	long long end, away;
	int rc;

	memset(sp, 0, sizeof(*sp));
	store_error_clear(e);
	if (off < 0)
		return -EINVAL;
	if (off >= f->size || len == 0)
		return 0;
	end = (long long)len > f->size - off ? f->size : off + (long long)len;
	/* While it is inside, the reader counts as active (cache/rashare.h). */
	away = rashare_away_ms(&f->share, clock_mono_ms());
	rashare_enter(&f->share);
	rc = read_range(f, off, end, away, cancel, sp, e);
	rashare_exit(&f->share, rc ? 0 : off + (long long)sp->len, clock_mono_ms());
	return rc;
}

static void ra_interrupt(struct store_file *sf)
{
	struct ra_file *f = (struct ra_file *)sf;
	struct readahead *ra = f->ra;

	/* Under the lock: a reader checks its flag under it before it waits. */
	pthread_mutex_lock(&f->lock);
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	pthread_mutex_lock(&ra->lock);
	pthread_cond_broadcast(&ra->mem_cond);
	pthread_mutex_unlock(&ra->lock);
}

static const struct store_ops ra_ops = {
	.stat = store_fwd_stat,
	.list_page = store_fwd_list_page,
	.read_range = store_fwd_read_range,
	.stat_read = store_fwd_stat_read,
	.stat_head = store_fwd_stat_head,
	.identity = store_fwd_identity,
	.open = ra_open,
	.file_read = ra_read,
	.span_release = ra_span_release,
	.file_interrupt = ra_interrupt,
	.file_close = ra_close,
	.destroy = ra_destroy,
};
