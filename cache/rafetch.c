/*
 * The read-ahead's parts and their fetching: references, the fetch queue,
 * the scheduling of a file's window among the streams (cache/rashare.h),
 * the check of every answer against the pin and the range, the fetch
 * threads, and the memory of a failed read. State and invariants:
 * readahead_i.h.
 */
#include "cache/readahead_i.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/membudget.h"
#include "core/err.h"
#include "core/log.h"
#include "core/strutil.h"

/*
 * A read that failed (EIO, ETIMEDOUT, EAGAIN) spent a whole operation budget.
 * The kernel answers such a failure by asking again at once for the first
 * page of the same range: for this long, a read that overlaps the failed
 * range gets the same error without a new budget, so that the reader sees
 * one budget, not two. Later reads fetch again (the fault may be over).
 */
#define RA_FAIL_MEMORY_MS 2000

void ra_file_put(struct ra_file *f)
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

void ra_part_put_locked(struct ra_part *p)
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

void ra_part_unlink_locked(struct ra_file *f, struct ra_part **link)
{
	struct ra_part *p = *link;

	*link = p->next;
	p->next = NULL;
	p->linked = 0;
	if (p->state == PART_QUEUED)
		p->cancelled = 1;
	ra_part_put_locked(p);
}

/* Take p out of the list if it is still there (a failed part is not kept). */
static void part_forget_locked(struct ra_file *f, struct ra_part *p)
{
	struct ra_part **link;

	for (link = &f->parts; *link; link = &(*link)->next) {
		if (*link == p) {
			ra_part_unlink_locked(f, link);
			return;
		}
	}
}

void ra_note_failure_locked(struct ra_file *f, int rc, long long off, long long end,
				const struct store_error *e)
{
	if (rc != -EIO && rc != -ETIMEDOUT && rc != -EAGAIN)
		return;
	f->fail.rc = rc;
	f->fail.off = off;
	f->fail.end = end;
	f->fail.at_ms = clock_mono_ms();
	free(f->fail.err);
	f->fail.err = store_error_dup(e);
}

int ra_recent_failure_locked(struct ra_file *f, long long off, long long end,
				 struct store_error *e)
{
	if (!f->fail.rc || clock_mono_ms() - f->fail.at_ms > RA_FAIL_MEMORY_MS)
		return 0;
	if (off >= f->fail.end || end <= f->fail.off)
		return 0;
	store_error_give(f->fail.err, e);
	return f->fail.rc;
}

void ra_drop_parts_locked(struct ra_file *f)
{
	while (f->parts)
		ra_part_unlink_locked(f, &f->parts);
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

void ra_queue_promote(struct readahead *ra, struct ra_part *p)
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

int ra_schedule_locked(struct ra_file *f, long long demand_end, long long pos)
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
		 * Only counted here: the fetching thread maps it (ra_fetch_thread).
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

int ra_pin_locked(struct ra_file *f, const struct store_read *rd, struct store_error *e)
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

int ra_check_got(struct ra_file *f, long long off, size_t want, size_t got,
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

void *ra_fetch_thread(void *arg)
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
				rc = ra_check_got(f, p->off, p->len, got, &e);
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
			rc = ra_pin_locked(f, &rd, &e);
		p->rc = rc;
		if (rc)
			p->err = store_error_dup(&e);
		p->got = rc ? 0 : got;
		p->state = PART_DONE;
		f->inflight--;
		rashare_busy(&f->share, f->inflight);
		if (rc == -ESTALE) {
			f->stale = 1;
			ra_drop_parts_locked(f);
		} else if (rc && rc != -EINTR && rc != -ECANCELED) {
			ra_note_failure_locked(f, rc, p->off, p->off + (long long)p->len, &e);
			/* Not kept: a later read asks again, the fault may be over. */
			if (p->linked)
				part_forget_locked(f, p);
		}
		pthread_cond_broadcast(&f->cond);
		ra_part_put_locked(p);
		/*
		 * Keep the pipeline full without waiting for the next read, but
		 * not for a reader that stopped reading: it may never come back.
		 */
		if (f->window && !f->stale && f->sched_end > 0 &&
		    !rashare_idle(ra->share, &f->share, clock_mono_ms()))
			ra_schedule_locked(f, 0, f->hi);
		pthread_mutex_unlock(&f->lock);
		ra_file_put(f);
	}
}
