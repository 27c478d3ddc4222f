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
#include "core/err.h"
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
	int cancelled;
	int refs;			/* guarded by file->lock */
	struct ra_part *next;		/* the file's list */
	struct ra_part *qnext;		/* the fetch queue (readahead.lock) */
};

struct ra_file {
	struct readahead *ra;
	char *key;
	char etag[128];
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
};

struct readahead {
	struct store *store;
	struct membudget *mb;
	struct ra_config cfg;
	int nfiles;			/* atomic: ra_files allocated */
	pthread_t threads[MAX_THREADS];
	unsigned nthreads;
	pthread_mutex_t lock;		/* guards locked; taken after a file's lock */
	pthread_cond_t cond;		/* work arrived or stop */
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
	free(f->key);
	free(f);
	/* Nothing is being read: buffers kept for reuse go back to the kernel. */
	if (__atomic_sub_fetch(&ra->nfiles, 1, __ATOMIC_ACQ_REL) == 0)
		membudget_trim(ra->mb);
}

static void part_put_locked(struct ra_part *p)
{
	if (--p->refs > 0)
		return;
	membudget_release(p->file->ra->mb, p->buf, p->cap);
	free(p);
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
	if (p->state == PART_QUEUED)
		p->cancelled = 1;
	part_put_locked(p);
}

static void drop_parts_locked(struct ra_file *f)
{
	while (f->parts)
		part_unlink_locked(f, &f->parts);
	f->window = 0;
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
 * Schedule parts from sched_end up to pos + window; those below demand_end
 * are needed by a waiting reader and go first in the queue, past the per-file
 * limit. Read-ahead is topped up only once a part's worth (at most half the
 * window) has been consumed, so that a first small read fetches one window
 * and no more. Returns -ENOMEM when a demanded part did not fit in the budget.
 */
static int schedule_locked(struct ra_file *f, long long demand_end, long long pos)
{
	struct readahead *ra = f->ra;
	/*
	 * The window ends on a first_window boundary, so that a first read
	 * fetches one first window, also when its first bytes came with the
	 * lookup (ra_open_head).
	 */
	long long target = (pos + (long long)f->window) & ~(long long)(ra->cfg.first_window - 1);
	size_t refill = f->window / 2 < ra->cfg.part_size ? f->window / 2 : ra->cfg.part_size;
	struct ra_part *p, **tail;
	int topping = 0;

	if (target > f->size)
		target = f->size;
	for (tail = &f->parts; *tail; tail = &(*tail)->next)
		;
	while (f->sched_end < f->size) {
		int demand = f->sched_end < demand_end;
		size_t len = ra->cfg.part_size;
		size_t misalign = (size_t)(f->sched_end & (long long)(ra->cfg.first_window - 1));

		if (!demand) {
			if (!topping && f->sched_end - pos >= (long long)(f->window - refill))
				break;
			topping = 1;
			if (f->sched_end >= target || f->inflight >= ra->cfg.concurrency)
				break;
		}
		if (len > f->window)
			len = f->window;
		/* Back on the boundaries after a head of odd size (ra_open_head). */
		if (misalign && len > ra->cfg.first_window - misalign)
			len = ra->cfg.first_window - misalign;
		if ((long long)len > f->size - f->sched_end)
			len = (size_t)(f->size - f->sched_end);
		/* Only counted here: the fetching thread maps it (fetch_thread). */
		if (membudget_reserve(ra->mb, len) != 0) {
			/* Shrink rather than wait: a smaller part may still fit. */
			if (len <= ra->cfg.first_window ||
			    membudget_reserve(ra->mb, ra->cfg.first_window) != 0) {
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
		p->refs = 2;		/* the list and the queue */
		*tail = p;
		tail = &p->next;
		f->sched_end += (long long)len;
		f->inflight++;
		__atomic_add_fetch(&f->refs, 1, __ATOMIC_ACQ_REL);
		queue_push(ra, p, demand);
	}
	return 0;
}

static void *fetch_thread(void *arg)
{
	struct readahead *ra = arg;
	struct ra_part *p;
	struct ra_file *f;
	struct s3_error e;
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
		pthread_mutex_unlock(&f->lock);

		got = 0;
		if (cancelled) {
			rc = -ECANCELED;
			stats_add(ra, &ra->locked.stats.cancelled, 1);
		} else if (!(p->buf = membudget_map(ra->mb, p->cap))) {
			rc = -ENOMEM;
		} else {
			rc = store_read_range(ra->store, f->key, f->etag, p->off, p->len, p->buf,
					      &got, &e);
			pthread_mutex_lock(&ra->lock);
			ra->locked.stats.gets++;
			ra->locked.stats.bytes += got;
			pthread_mutex_unlock(&ra->lock);
		}

		pthread_mutex_lock(&f->lock);
		p->rc = rc;
		p->got = rc ? 0 : got;
		p->state = PART_DONE;
		f->inflight--;
		if (rc == -ESTALE) {
			f->stale = 1;
			drop_parts_locked(f);
		}
		pthread_cond_broadcast(&f->cond);
		part_put_locked(p);
		/* Keep the pipeline full without waiting for the next read. */
		if (f->window && !f->stale && f->sched_end > 0)
			schedule_locked(f, 0, f->hi);
		pthread_mutex_unlock(&f->lock);
		file_put(f);
	}
}

struct readahead *readahead_new(struct store *store, struct membudget *mb,
				const struct ra_config *cfg)
{
	struct readahead *ra = calloc(1, sizeof(*ra));

	if (!ra)
		return NULL;
	ra->store = store;
	ra->mb = mb;
	ra->cfg = *cfg;
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
	pthread_mutex_init(&ra->lock, NULL);
	pthread_cond_init(&ra->cond, NULL);
	return ra;
}

int readahead_start(struct readahead *ra)
{
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

void readahead_free(struct readahead *ra)
{
	unsigned i;

	if (!ra)
		return;
	pthread_mutex_lock(&ra->lock);
	ra->locked.stop = 1;
	pthread_cond_broadcast(&ra->cond);
	pthread_mutex_unlock(&ra->lock);
	/* Threads drain the queue (cancelled parts) before they see stop. */
	for (i = 0; i < ra->nthreads; i++)
		pthread_join(ra->threads[i], NULL);
	pthread_cond_destroy(&ra->cond);
	pthread_mutex_destroy(&ra->lock);
	free(ra);
}

void readahead_stats(struct readahead *ra, struct ra_stats *out)
{
	pthread_mutex_lock(&ra->lock);
	*out = ra->locked.stats;
	pthread_mutex_unlock(&ra->lock);
}

struct ra_file *ra_open(struct readahead *ra, const char *key, const char *etag, long long size)
{
	struct ra_file *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->key = strdup(key);
	if (!f->key) {
		free(f);
		return NULL;
	}
	f->ra = ra;
	__atomic_add_fetch(&ra->nfiles, 1, __ATOMIC_ACQ_REL);
	snprintf(f->etag, sizeof(f->etag), "%s", etag ? etag : "");
	f->size = size < 0 ? 0 : size;
	f->refs = 1;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	return f;
}

struct ra_file *ra_open_head(struct readahead *ra, const char *key, const char *etag,
			     long long size, struct membuf *head, size_t got)
{
	struct membuf h = MEMBUF_EMPTY;
	struct ra_file *f;
	struct ra_part *p;

	membudget_transfer(&h, head);
	f = ra_open(ra, key, etag, size);
	p = f && got ? calloc(1, sizeof(*p)) : NULL;
	if (!p) {
		membudget_put(ra->mb, &h);
		return f;
	}
	if ((long long)got > f->size)
		got = (size_t)f->size;
	p->file = f;
	p->off = 0;
	p->len = got;
	p->got = got;
	p->cap = h.n;	/* the part owns the reservation from here (part_put_locked) */
	p->buf = h.p;
	p->state = PART_DONE;
	p->refs = 1;		/* the list */
	f->parts = p;
	f->sched_end = (long long)got;
	return f;
}

void ra_close(struct ra_file *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	drop_parts_locked(f);
	pthread_mutex_unlock(&f->lock);
	file_put(f);
}

static void span_release_locked(struct ra_span *sp)
{
	int i;

	for (i = 0; i < sp->nheld; i++)
		part_put_locked(sp->held[i]);
	sp->nheld = 0;
	sp->niov = 0;
	sp->len = 0;
}

void ra_span_release(struct ra_file *f, struct ra_span *sp)
{
	if (sp->nheld) {
		/* The handle may be closed already: the span's reference keeps f. */
		pthread_mutex_lock(&f->lock);
		span_release_locked(sp);
		pthread_mutex_unlock(&f->lock);
		file_put(f);
	}
	free(sp->owned);
	sp->owned = NULL;
	sp->niov = 0;
	sp->len = 0;
}

/*
 * Collect [off, end) from the parts, waiting for those still in flight.
 * Returns 0 (sp filled; short only where the object ended), 1 when the parts
 * do not cover the range (the caller fetches it directly), or a negative errno.
 * *passed is set when the read reached the end of a part.
 */
static int gather_locked(struct ra_file *f, long long off, long long end, struct ra_span *sp,
			 int *passed)
{
	long long cur = off;
	struct ra_part *p;

	while (cur < end) {
		long long pend;
		size_t n;

		for (p = f->parts; p && p->off + (long long)p->len <= cur; p = p->next)
			;
		if (!p || p->off > cur || sp->niov == RA_IOV_MAX)
			goto hole;
		p->refs++;
		sp->held[sp->nheld++] = p;
		while (p->state != PART_DONE)
			pthread_cond_wait(&f->cond, &f->lock);
		if (p->rc == -ECANCELED)
			goto hole;
		if (p->rc) {
			int rc = p->rc;

			span_release_locked(sp);
			return rc;
		}
		pend = p->off + (long long)p->got;
		if (pend <= cur)
			break; /* the object is shorter than it was said to be */
		n = (size_t)((end < pend ? end : pend) - cur);
		sp->iov[sp->niov].iov_base = p->buf + (cur - p->off);
		sp->iov[sp->niov].iov_len = n;
		sp->niov++;
		sp->len += n;
		cur += (long long)n;
		if (cur >= p->off + (long long)p->len)
			*passed = 1;
		if (p->got < p->len)
			break;
	}
	return 0;
hole:
	span_release_locked(sp);
	return 1;
}

/* Fetch [off, end), rounded out to RA_BLOCK, with one GET by this thread. */
static int read_direct(struct ra_file *f, long long off, long long end, struct ra_span *sp)
{
	struct readahead *ra = f->ra;
	long long a = off & ~(long long)(RA_BLOCK - 1);
	long long b = (end + RA_BLOCK - 1) & ~(long long)(RA_BLOCK - 1);
	struct s3_error e;
	size_t got = 0;
	int rc;

	if (b > f->size)
		b = f->size;
	sp->owned = malloc((size_t)(b - a));
	if (!sp->owned)
		return -ENOMEM;
	rc = store_read_range(ra->store, f->key, f->etag, a, (size_t)(b - a), sp->owned, &got, &e);
	pthread_mutex_lock(&ra->lock);
	ra->locked.stats.direct_gets++;
	ra->locked.stats.bytes += got;
	pthread_mutex_unlock(&ra->lock);
	if (rc) {
		free(sp->owned);
		sp->owned = NULL;
		return rc;
	}
	if (a + (long long)got > off) {
		long long stop = a + (long long)got < end ? a + (long long)got : end;

		sp->iov[0].iov_base = sp->owned + (off - a);
		sp->iov[0].iov_len = (size_t)(stop - off);
		sp->niov = 1;
		sp->len = (size_t)(stop - off);
	}
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

int ra_read(struct ra_file *f, long long off, size_t len, struct ra_span *sp)
{
	const struct ra_config *cfg = &f->ra->cfg;
	long long end;
	int rc, seq, passed = 0;

	memset(sp, 0, sizeof(*sp));
	if (off < 0)
		return -EINVAL;
	if (off >= f->size || len == 0)
		return 0;
	end = (long long)len > f->size - off ? f->size : off + (long long)len;

	pthread_mutex_lock(&f->lock);
	if (f->stale) {
		pthread_mutex_unlock(&f->lock);
		return -ESTALE;
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
		rc = gather_locked(f, off, end, sp, &passed);
		if (rc < 0) {
			pthread_mutex_unlock(&f->lock);
			return rc;
		}
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
			 * aligned down to first_window so that parts stay aligned to
			 * the disk cache's blocks, but never over parts already there.
			 */
			long long start = off & ~(long long)(cfg->first_window - 1);

			if (!f->window)
				f->window = cfg->first_window;
			if (start < f->sched_end && f->parts)
				start = f->sched_end;
			f->sched_end = start;
		}
		rc = schedule_locked(f, end, end > f->hi ? end : f->hi);
		if (rc == 0)
			rc = gather_locked(f, off, end, sp, &passed);
		else
			rc = 1;
		if (rc < 0) {
			pthread_mutex_unlock(&f->lock);
			return rc;
		}
		if (rc == 0)
			goto served;
	}
	pthread_mutex_unlock(&f->lock);

	rc = read_direct(f, off, end, sp);
	pthread_mutex_lock(&f->lock);
	if (rc == -ESTALE) {
		f->stale = 1;
		drop_parts_locked(f);
	}
	if (rc) {
		pthread_mutex_unlock(&f->lock);
		return rc;
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
}
