/*
 * dirstream: one directory's entries while they are fetched, read by any
 * number of readers (open directory handles), each at its own offset.
 *
 * One producer (a fetch, cache/dirfetch.c) appends the entries in order, a page
 * at a time, and says when the listing ended; readers read them by index as
 * soon as they are in. A stream is in one of two modes:
 *  - kept: it holds every entry since the first, so a reader may start at 0
 *    and, once complete, its listing may become the directory's cached one.
 *    Its bytes are reserved in the metadata cache by the producer
 *    (dirstream_reserved), so --metadata-cache-size bounds it;
 *  - windowed (dirstream_unkeep, when the listing does not fit the cache): it
 *    holds only a window. The entries every reader has passed are let go, and
 *    while the stream holds more than `window` bytes, so are those the most
 *    advanced reader has passed: a reader that needs an entry that was let go
 *    (one that fell behind, or seeks back) is told -ESTALE and must read a
 *    new stream. The producer asks dirstream_over_window before each page and
 *    waits for its readers while the stream holds more than its window. What
 *    the stream still has reserved from its kept days is returned to the
 *    cache as it is let go (the release callback); new pages are not
 *    reserved: their bound is the window.
 * A reader's pin is the offset of its last read, not of its last entry: the
 * kernel asks for a batch again when the reader's buffer took only part of
 * it, so the entries from the pin on are kept for it.
 *
 * Thread-safe: every function takes the stream's lock. Lock order: a caller
 * may hold its own lock (dirfetch's) around these; the read callback and the
 * release callback run under the stream's lock and must not call back into
 * the stream.
 */
#ifndef IRSAFS_CACHE_DIRSTREAM_H
#define IRSAFS_CACHE_DIRSTREAM_H

#include <stddef.h>
#include <sys/types.h>

#include "s3/store.h"

struct listing_batch;

struct dirstream;

/* A reader's place in a stream; the fields are the stream's while attached. */
struct dirstream_reader {
	size_t pin;
	struct dirstream_reader *next;
};

/* Where a stream is, for whoever waits on it. */
struct dirstream_progress {
	size_t n;			/* entries appended so far */
	size_t first;			/* entries below were let go */
	size_t pages;			/* pages appended */
	int done;			/* the listing ended */
	int rc;				/* ... with this (0: complete) */
	int kept;
	size_t bytes;			/* what it holds */
};

/*
 * A new, empty, kept stream. window: the bytes it may hold once windowed.
 * release(ctx, bytes) returns bytes reserved in the cache (called under the
 * stream's lock as they are let go, and when the stream is freed). NULL on
 * ENOMEM.
 */
struct dirstream *dirstream_new(size_t window, void (*release)(void *ctx, size_t bytes),
				void *ctx);
/* A finished stream of a whole listing (takes a new reference to l). NULL on ENOMEM. */
struct dirstream *dirstream_of_listing(struct store_dir *l);
struct dirstream *dirstream_ref(struct dirstream *ds);
void dirstream_release(struct dirstream *ds);

/* Readers: attach at pin (the next offset it will read), detach when it closes. */
void dirstream_attach(struct dirstream *ds, struct dirstream_reader *r, size_t pin);
void dirstream_detach(struct dirstream *ds, struct dirstream_reader *r);
size_t dirstream_readers(struct dirstream *ds);

/* ---- the producer ---- */

/* Append one page's entries (b is left empty). 0 or -ENOMEM. */
int dirstream_append(struct dirstream *ds, struct listing_batch *b);
/* bytes more are reserved in the cache for this stream (kept mode). */
void dirstream_reserved(struct dirstream *ds, size_t bytes);
/* The listing ended with rc (0: complete). */
void dirstream_end(struct dirstream *ds, int rc);
/* From now on a window (see above); lets go of what it may at once. */
void dirstream_unkeep(struct dirstream *ds);
/* Windowed and holding more than its window: the producer waits. */
int dirstream_over_window(struct dirstream *ds);
/*
 * A kept, complete stream's listing, to be cached: a new reference, and its
 * reservation is handed over (*reserved, which the caller returns to the
 * cache before caching it). NULL when not kept or not complete.
 */
struct store_dir *dirstream_take_listing(struct dirstream *ds, size_t *reserved);
void dirstream_progress(struct dirstream *ds, struct dirstream_progress *p);

/* ---- readers ---- */

/*
 * Read from offset off on (r's pin moves to off). Returns how many entries fn
 * took (0 at the end of a complete listing), or: -EAGAIN when the entry at
 * off is not in yet; -ESTALE when it was let go (read a new stream); the
 * listing's error when it ended with one before off; fn's error. *resume is
 * set to 1 when a windowed stream's producer that waits may go on (what it
 * holds fell to half its window), else 0.
 */
ssize_t dirstream_read(struct dirstream *ds, struct dirstream_reader *r, size_t off,
		       store_dirent_fn fn, void *ctx, int *resume);

#endif
