/*
 * readahead: a store layer whose open files prefetch, sequentially, over
 * parallel ranged GETs.
 *
 * The layer wraps a store (the disk cache, or the S3 store) and owns a small
 * pool of fetch threads; each thread runs one ranged GET at a time through
 * the store below, and the S3 store gives every concurrent request its own
 * connection. It handles open and the file hooks (s3/store.h) and forwards
 * every other hook. Each open file keeps a read-ahead window of parts:
 * buffers, each filled by one GET pinned to the ETag seen at open (If-Match).
 * A file opened with the object's first bytes (a lookup's, handed down by the
 * head cache: struct store_head) starts with them as its first part.
 *
 * Access pattern, per open file:
 * - A read at offset 0 of a fresh open, or reads after a seek that stay
 *   within 512 KiB of each other and add up to 512 KiB, start streaming with
 *   a window of first_window bytes, from the read that started it (the run's
 *   reads before it were fetched already); its first part ends on a
 *   first_window boundary, and the parts after it start on one.
 * - While streaming, reads within back_tolerance behind the previous read's
 *   end, or ahead of it up to the end of what the window has requested or
 *   fwd_tolerance, whichever is further, count as sequential (the kernel's
 *   asynchronous read-ahead delivers reads slightly out of order, and readers
 *   skip a little); a read further ahead is a random reader's, not a skip.
 *   The window doubles each time the reader passes the end of a part,
 *   up to max_window, and parts are part_size bytes at most, so a grown window
 *   is several GETs in flight at once.
 * - Any other read is a seek: the window is dropped (queued GETs are
 *   cancelled) and only the bytes asked for are fetched, rounded out to 4 KiB,
 *   by the reading thread itself.
 *
 * Memory: every part is reserved in the global membudget before it is
 * fetched. When the budget is full the window stops growing and, if not even
 * the part a reader is waiting for fits, that read is served by a direct GET
 * of just its bytes, into a buffer from the same budget: parts always leave
 * a quarter of it (at most 2 MiB) to such reads, which wait for each other
 * when that is taken (up to 10 s, then -ENOMEM); the budget is never exceeded.
 *
 * Consistency: every GET is pinned to the file's ETag (If-Match) and to its
 * size, and the store checks each answer against both (s3/store.h). A file
 * opened without an ETag (a listing that gave none) is pinned to the first
 * answer's. A GET that answers 412, or an answer of another version, marks
 * the file stale; that read and every later one on the handle fail with
 * -ESTALE, so bytes of two versions are never mixed. A part is never short:
 * only the size given at open ends the object, and fewer bytes are -EIO.
 *
 * Failures: a failed part is not kept (a later read asks again: the fault
 * may be over), but for 2 s a read overlapping it gets the same error at once,
 * so that the kernel's immediate retry of a failed read does not start a
 * second operation budget.
 *
 * Interrupts: a read takes a cancel flag; when it is set and
 * store_file_interrupt called, a reader waiting for a part or for memory
 * gives up with -EINTR, and its own direct GET is aborted.
 *
 * What nobody will read is not fetched:
 * - A part's GET is aborted as soon as the part leaves the window (a close,
 *   a seek, a reader that skipped past it) and no reader waits for it; a
 *   queued one is never started. An aborted GET is not retried, not counted
 *   as a failure, and its bytes are fetched again only if a later read asks.
 * - A reader that has not read for idle_ms has stopped: its window is not
 *   topped up (what it had asked for is at most one window past its last
 *   read), and when it reads again its window is halved for each idle_ms
 *   it was away.
 * - Streams share the fetch threads: with N active streams, each has at
 *   most concurrency/N parts queued or in flight (rounded up; a part a
 *   reader waits for is fetched regardless and goes first) and max_window/N
 *   of window. A part a reader waits for that is still queued moves to the
 *   head of the queue.
 * - Read-ahead stops where another stream of the same key began (open, or
 *   closed less than 30 s ago): those bytes are in the page cache, or past
 *   where this reader stops, as when readers take a quarter of an object
 *   each (cache/rashare.h).
 *
 * Thread rules: readahead_new, readahead_start and store_destroy are not
 * thread-safe; everything else is. Several threads may read one file at once
 * (the kernel sends concurrent reads); the close may come before the last
 * store_span_release (a span keeps its file alive) but after every read has
 * returned. Lock order: a file's lock, then the layer's; rashare's lock is a
 * leaf.
 */
#ifndef IRSAFS_CACHE_READAHEAD_H
#define IRSAFS_CACHE_READAHEAD_H

#include <stddef.h>

struct store;
struct membudget;

struct ra_config {
	size_t part_size;		/* largest single GET (default 8 MiB) */
	unsigned concurrency;		/* fetch threads = GETs in flight, all files (default 8) */
	size_t first_window;		/* window when streaming starts (default 1 MiB) */
	size_t max_window;		/* per file; 0 = part_size * concurrency */
	size_t back_tolerance;		/* default 1 MiB */
	size_t fwd_tolerance;		/* past the window; default 1 MiB */
	long idle_ms;			/* a reader away this long stopped; default 1000 */
};

struct ra_stats {
	unsigned long long gets;	/* read-ahead GETs completed */
	unsigned long long direct_gets;	/* GETs made by readers themselves (seeks) */
	unsigned long long bytes;	/* bytes received by both */
	unsigned long long cancelled;	/* queued GETs dropped before they started */
	unsigned long long aborted;	/* GETs cut short: nobody would read their part */
	unsigned long long budget_short;/* parts not started for want of memory */
};

/*
 * The layer over inner (not owned), reserving buffers in mb (not owned; a
 * head handed to open must be of the same budget, or carry its own release).
 * Zero fields of cfg take their defaults. NULL on ENOMEM. store_destroy stops
 * the threads; every file must be closed first.
 */
struct store *readahead_new(struct store *inner, struct membudget *mb,
			    const struct ra_config *cfg);
/*
 * Start the fetch threads (after any fork: threads do not survive it), before
 * the first read. 0, or -errno when not even one thread could start.
 */
int readahead_start(struct store *s);
void readahead_stats(struct store *s, struct ra_stats *out);

#endif
