/*
 * The read-ahead's insides, shared by its two files: readahead.c (the store
 * layer: opens, reads, direct reads, the reader's side of the window) and
 * rafetch.c (parts, the fetch queue, the scheduling of the window among the
 * streams, the fetch threads, the memory of a failed read). Nothing outside
 * cache/readahead*.c and cache/rafetch.c includes it.
 *
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
#ifndef IRSAFS_CACHE_READAHEAD_I_H
#define IRSAFS_CACHE_READAHEAD_I_H

#include <pthread.h>
#include <stddef.h>

#include "cache/readahead.h"
#include "cache/rashare.h"
#include "s3/store.h"

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

/* Drop a reference to f; the last one frees it. */
void ra_file_put(struct ra_file *f);

/* Drop a reference to p (f->lock held); the last one gives its buffer back. */
void ra_part_put_locked(struct ra_part *p);

/* Take a part out of the list; cancel it if no thread has started it. */
void ra_part_unlink_locked(struct ra_file *f, struct ra_part **link);

/* Remember a failed read of [off, end) and its detail e (RA_FAIL_MEMORY_MS). */
void ra_note_failure_locked(struct ra_file *f, int rc, long long off, long long end,
			    const struct store_error *e);

/* The error of a failure just now that overlaps [off, end) (detail in e), else 0. */
int ra_recent_failure_locked(struct ra_file *f, long long off, long long end,
			     struct store_error *e);

/* The window closes: parts nobody will read are cancelled or their GETs aborted. */
void ra_drop_parts_locked(struct ra_file *f);

/*
 * A reader waits for p, which no thread has started: it goes to the head of
 * the queue, ahead of parts that are only read-ahead (this file's or
 * another's).
 */
void ra_queue_promote(struct readahead *ra, struct ra_part *p);

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
int ra_schedule_locked(struct ra_file *f, long long demand_end, long long pos);

/*
 * An answer's ETag against the file's pin, under f->lock: the first answer
 * of an unpinned file pins it; an answer of another version is the object
 * changed (ERR_PRECONDITION: -ESTALE).
 */
int ra_pin_locked(struct ra_file *f, const struct store_read *rd, struct store_error *e);

/*
 * The bytes of [off, off + want) arrived: all of them, or it is a malformed
 * answer (ERR_PROTOCOL) the store should not have let through.
 */
int ra_check_got(struct ra_file *f, long long off, size_t want, size_t got,
		 struct store_error *e);

/* A fetch thread of ra (arg): runs queued parts' GETs until stopped. */
void *ra_fetch_thread(void *arg);

#endif
