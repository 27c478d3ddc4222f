/*
 * The prefetcher, as a store layer: opens, reads (from the parts, or one
 * direct GET for a read the window does not cover), the reader's side of
 * the window (streaming, seeks, pauses). The parts and their fetching are
 * rafetch.c's; the state both share is described in readahead_i.h.
 */
#include "cache/readahead.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/membudget.h"
#include "cache/rashare.h"
#include "cache/readahead_i.h"
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
/* How long a direct read waits for buffer memory when the budget is full. */
#define RA_MEM_WAIT_MS 10000
/* The most of the budget kept for direct reads (see ra_schedule_locked, rafetch.c). */
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
		rc = pthread_create(&ra->threads[i], NULL, ra_fetch_thread, ra);
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
	p->cap = head->cap;	/* the part owns the buffer from here (ra_part_put_locked) */
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
	store_open_terms(a, f->etag, sizeof(f->etag), &f->size);
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
	ra_drop_parts_locked(f);
	pthread_mutex_unlock(&f->lock);
	ra_file_put(f);
}

static void span_release_locked(struct store_span *sp)
{
	int i;

	for (i = 0; i < sp->nheld; i++)
		ra_part_put_locked(sp->held[i]);
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
		ra_file_put(f);
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
			ra_queue_promote(f->ra, p);
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
		/* Never short: fetch_thread made that an error (ra_check_got). */
		if (!rc && p->got != p->len)
			rc = -err_class_errno(ERR_PROTOCOL);
		if (rc) {
			store_error_give(p->err, e);
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
 * parts go back and read-ahead stops growing (ra_schedule_locked). Up to
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
	ra_drop_parts_locked(f);
	pthread_mutex_unlock(&f->lock);
	p = membudget_alloc(ra->mb, n);
	if (p)
		return p;
	__atomic_add_fetch(&ra->mem_waiters, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_lock(&ra->lock);
	while (!(p = membudget_alloc(ra->mb, n)) && !cancelled(cancel) &&
	       clock_mono_ms() < deadline) {
		/* Also a poll: a release may come between the alloc and the wait. */
		clock_real_in_ms(&ts, 50);
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
		rc = ra_check_got(f, a, (size_t)(b - a), got, e);
	pthread_mutex_lock(&ra->lock);
	ra->locked.stats.direct_gets++;
	ra->locked.stats.bytes += got;
	pthread_mutex_unlock(&ra->lock);
	pthread_mutex_lock(&f->lock);
	if (rc == 0)
		rc = ra_pin_locked(f, &rd, e);
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
			ra_part_unlink_locked(f, link);
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
	rc = ra_recent_failure_locked(f, off, end, e);
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
		ra_drop_parts_locked(f);
	} else {
		if (!f->window || off > f->sched_end) {
			/*
			 * Start (or, after a forward skip, restart) the window here,
			 * never over parts already there. Not from the first_window
			 * boundary below: after a seek, the reads that made the run
			 * were fetched directly, and each restart fetched up to 1 MiB
			 * again. The first part ends on a boundary (ra_schedule_locked),
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
		rc = ra_schedule_locked(f, end, end > f->hi ? end : f->hi);
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
		ra_drop_parts_locked(f);
	}
	if (rc) {
		ra_note_failure_locked(f, rc, off, end, e);
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
