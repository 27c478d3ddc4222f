/*
 * dirfetch: directory listings fetched off the FUSE threads, and read while
 * they arrive.
 *
 * An opendir that finds no fresh cached listing gets a reader of its
 * directory's stream (cache/dirstream.h): it joins the fetch that fills the
 * stream, or starts one, and is answered once the first page is in. Its
 * readdirs then take the entries as the pages arrive; a readdir that finds
 * none yet waits for the next page without holding its FUSE thread (the fetch
 * thread answers it). So:
 *  - any number of readers of one directory share one fetch (single-flight),
 *    as long as the listing is kept (below);
 *  - a fetch runs on one of a few threads of its own: a slow or endless
 *    directory holds one fetch thread and no FUSE worker, and listings of
 *    other directories go on while fetch threads are free (the rest queue,
 *    inside their time bound);
 *  - a waiter may leave at any time (a FUSE interrupt: its reader was
 *    killed): it is answered -EINTR at once; a fetch nobody reads any more
 *    is abandoned before its next page.
 * Memory. A stream is kept whole while it fits in the metadata cache: its
 * bytes are reserved there as pages arrive (cached listings are evicted
 * first), and once complete it becomes the directory's cached listing. A
 * listing that does not fit is streamed in a window: the fetch goes on while
 * the stream holds at most `window` bytes beyond its most advanced reader,
 * and waits (giving its thread back) while it holds more, until readers take
 * from it. Such a stream takes no new readers: a later opendir, or a reader
 * that seeks back past what was let go, starts a fetch of its own (correct,
 * not fast). It is not cached: lookups in that directory ask S3 by name.
 * The fetch's other bounds (pages, tokens, time) are cache/listing.h's; its time
 * bound (--list-timeout) starts when the fetch is created, so it covers the
 * wait for a thread, and does not count the time it waits for its readers.
 *
 * The readers and waiters are s3/store.h's struct store_dir_reader and
 * struct store_dir_waiter: the metadata cache's dir_open, dir_read,
 * dir_wait, dir_arm, dir_cancel and dir_close are these.
 *
 * A waiter's life. The caller fills w->done and w->tag and calls
 * dirfetch_open or dirfetch_wait, then registers whatever will call
 * dirfetch_cancel(tag) (a FUSE interrupt callback), then calls dirfetch_arm.
 * Until dirfetch_arm the waiter is the caller's: an answer or a cancel that
 * arrives in between is held and delivered by dirfetch_arm. w->done is called
 * exactly once per added waiter, with no lock held, from a fetch thread,
 * dirfetch_cancel, dirfetch_arm, dirfetch_read or dirfetch_free; after that
 * call w belongs to done (which may free it). Every function is thread-safe.
 */
#ifndef IRSAFS_CACHE_DIRFETCH_H
#define IRSAFS_CACHE_DIRFETCH_H

#include <stddef.h>
#include <sys/types.h>

#include "s3/store.h"

/* Fetch threads per mount: at most this many directories are listed at once. */
#define DIRFETCH_THREADS 4
/*
 * What a stream too large for the cache holds beyond its most advanced
 * reader before its fetch waits. It must exceed twice the largest chunk of
 * entries (1,024 entries of at most ~750 bytes), so that a reader that has
 * taken everything always lets the fetch go on.
 */
#define DIRFETCH_WINDOW (2u << 20)

struct dirfetch_config {
	struct store *store;		/* where the pages come from */
	int page_size;
	long long timeout_ms;		/* the whole listing (--list-timeout); 0: none */
	size_t window;			/* 0: DIRFETCH_WINDOW */
	unsigned threads;		/* 0: DIRFETCH_THREADS */
	/*
	 * A stream's bytes are reserved as they grow while it is kept (0, or
	 * nonzero: it does not fit, and is read in a window from then on), and
	 * returned as they are let go or when it ends, before finished.
	 */
	int (*reserve)(void *ctx, size_t bytes);
	void (*unreserve)(void *ctx, size_t bytes);
	/*
	 * Called once per fetch that ended (not for an abandoned one), on the
	 * fetch thread, before the waiters are answered; d is the whole listing
	 * when rc is 0 and it was kept (NULL when it was read in a window): the
	 * callback takes its own reference to keep it.
	 */
	void (*finished)(void *ctx, const char *key, int rc, struct store_dir *d);
	void *ctx;
};

/* NULL on ENOMEM. No thread starts until the first fetch. */
struct dirfetch *dirfetch_new(const struct dirfetch_config *cfg);

/*
 * A reader of a whole listing (a fresh cached one): ready at once, never
 * waits. Takes a new reference to l. NULL on ENOMEM.
 */
struct store_dir_reader *dirfetch_open_listing(struct store_dir *l);

/*
 * w is the open of reader r, answered already (rc): held for dirfetch_arm,
 * as if its first page had come before the arm.
 */
void dirfetch_answered(struct store_dir_waiter *w, struct store_dir_reader *r, int rc);

/*
 * Open directory key: *out is its reader, and w waits for the first page.
 * Returns 1 when a fetch was started, 0 when it joined one, or a negative
 * errno (-ENOMEM, -ESHUTDOWN after dirfetch_free began); on error *out is
 * NULL, w was not added and done will not be called.
 */
int dirfetch_open(struct dirfetch *df, const char *key, struct store_dir_reader **out,
		  struct store_dir_waiter *w);

/*
 * Entries from offset off (0 is the first entry): fn is called for each one
 * there is, under the stream's lock (see dirstream_read). Returns how many fn
 * took, 0 at the end of the directory, the listing's error once it ended with
 * one before off, fn's error, or -EAGAIN: not there (yet): dirfetch_wait. df
 * may be NULL (stopped): what was fetched is still read.
 */
ssize_t dirfetch_read(struct dirfetch *df, struct store_dir_reader *r, size_t off,
		      store_dirent_fn fn, void *ctx);

/*
 * Wait for the entry at off (after dirfetch_read said -EAGAIN). A reader
 * whose stream let go of off reads a new one from here on. Returns 0 when w
 * was added (arm it), 1 when the entry is there already (read again), or a
 * negative errno (w not added).
 */
int dirfetch_wait(struct dirfetch *df, struct store_dir_reader *r, size_t off,
		  struct store_dir_waiter *w);

/*
 * The caller is ready for w->done (see above); it may be called from here.
 * df may be NULL (stopped) for a waiter given to dirfetch_answered.
 */
void dirfetch_arm(struct dirfetch *df, struct store_dir_waiter *w);

/* The waiter with this tag leaves: answered -EINTR now (or at its arm). */
void dirfetch_cancel(struct dirfetch *df, const void *tag);

/* Close a reader (a RELEASEDIR; df may be NULL: a reader of a whole listing, or stopped). */
void dirfetch_close(struct dirfetch *df, struct store_dir_reader *r);

/* Fetches started and abandoned so far, and running or waiting now (tests, counters). */
unsigned long long dirfetch_started(struct dirfetch *df);
unsigned long long dirfetch_abandoned(struct dirfetch *df);
unsigned dirfetch_live(struct dirfetch *df);
/*
 * Bytes the streams of the fetches running or waiting hold now, and (*peak)
 * the most one stream held after a page since the start (SIGUSR1's books).
 */
size_t dirfetch_held(struct dirfetch *df, size_t *peak);

/*
 * Stop: queued and waiting fetches end at once (their waiters are answered
 * -EIO), running ones are abandoned before their next page (this waits for
 * the page in flight, at most one --operation-timeout), and the threads end.
 * Readers still open stay readable (what was fetched, then -EIO). NULL is
 * allowed.
 */
void dirfetch_free(struct dirfetch *df);

#endif
