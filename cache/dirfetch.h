/*
 * dirfetch: directory listings fetched off the FUSE threads, one fetch per
 * directory at a time.
 *
 * An opendir that finds no fresh listing joins the fetch of its directory
 * (starting one when none is running) and hands its FUSE thread back to the
 * loop; the fetch runs on one of a few threads of its own, and every waiter
 * is answered when it ends. So:
 *  - any number of readdirs of one directory share one fetch (single-flight);
 *  - a slow or endless directory holds one fetch thread and no FUSE worker:
 *    every other operation goes on, and so do listings of other directories
 *    while fetch threads are free (the rest queue, inside their time bound);
 *  - a waiter may leave at any time (a FUSE interrupt: its reader was killed):
 *    it is answered -EINTR at once, and a fetch nobody waits for any more is
 *    abandoned before its next page.
 * The fetch itself is listing_fetch under the bounds of cache/listing.h: its
 * time bound starts when the fetch is created (so it covers the wait for a
 * thread), and its memory is reserved from the metadata cache as pages arrive.
 * The waiters are struct store_dir_waiter (s3/store.h): the metadata cache's
 * dir_join, dir_arm and dir_cancel are these.
 *
 * A waiter's life. The caller fills w->done and w->tag and calls
 * dirfetch_join (or dirfetch_answered), then registers whatever will call
 * dirfetch_cancel(tag) (a FUSE interrupt callback), then calls
 * dirfetch_arm. Until dirfetch_arm the
 * waiter is the caller's: a result or a cancel arriving in between is held
 * and delivered by dirfetch_arm. w->done is called exactly once per joined
 * waiter, with no lock held, from a fetch thread, dirfetch_cancel,
 * dirfetch_arm or dirfetch_free; after that call w belongs to done (which may
 * free it). Every function is thread-safe.
 */
#ifndef IRSAFS_CACHE_DIRFETCH_H
#define IRSAFS_CACHE_DIRFETCH_H

#include <stddef.h>

struct store;
struct store_dir;
struct store_dir_waiter;

/* Fetch threads per mount: at most this many directories are listed at once. */
#define DIRFETCH_THREADS 4

struct dirfetch_config {
	struct store *store;		/* where the pages come from */
	int page_size;
	long long timeout_ms;		/* the whole listing (--list-timeout); 0: none */
	size_t max_bytes;		/* one listing's bytes (--metadata-cache-size) */
	unsigned threads;		/* 0: DIRFETCH_THREADS */
	/*
	 * The bytes of listings being built are reserved as they grow (0, or
	 * nonzero to end the listing: listing.h's charge) and returned when it
	 * ends, before finished.
	 */
	int (*reserve)(void *ctx, size_t bytes);
	void (*unreserve)(void *ctx, size_t bytes);
	/*
	 * Called once per fetch that ended (not for an abandoned one), on the
	 * fetch thread, before the waiters are answered; d is the listing when
	 * rc is 0 (the callback takes its own reference to keep it).
	 */
	void (*finished)(void *ctx, const char *key, int rc, struct store_dir *d);
	void *ctx;
};

/* NULL on ENOMEM. No thread starts until the first fetch. */
struct dirfetch *dirfetch_new(const struct dirfetch_config *cfg);

/*
 * Add w to the fetch of directory key and start that fetch if none is
 * running. Returns 1 when a fetch was started, 0 when w joined one, or a
 * negative errno (-ENOMEM, -ESHUTDOWN after dirfetch_free began); on error w
 * was not added and done will not be called.
 */
int dirfetch_join(struct dirfetch *df, const char *key, struct store_dir_waiter *w);

/*
 * w is answered already (rc, and d when rc is 0: a reference w takes): held
 * for dirfetch_arm, as if its fetch had ended before the arm.
 */
void dirfetch_answered(struct store_dir_waiter *w, int rc, struct store_dir *d);

/*
 * The caller is ready for w->done (see above); it may be called from here.
 * df may be NULL (stopped) for a waiter given to dirfetch_answered.
 */
void dirfetch_arm(struct dirfetch *df, struct store_dir_waiter *w);

/* The waiter with this tag leaves: answered -EINTR now (or at its arm). */
void dirfetch_cancel(struct dirfetch *df, const void *tag);

/* Fetches started and abandoned so far (tests, counters). */
unsigned long long dirfetch_started(struct dirfetch *df);
unsigned long long dirfetch_abandoned(struct dirfetch *df);

/*
 * Stop: waiters of queued fetches are answered -EIO, running fetches are
 * abandoned before their next page (this waits for the page in flight, at
 * most one --operation-timeout), and the threads end. NULL is allowed.
 */
void dirfetch_free(struct dirfetch *df);

#endif
