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
 * The fetch itself is listing_fetch under the bounds of fs/listing.h: its
 * time bound starts when the fetch is created (so it covers the wait for a
 * thread), and its memory is reserved from the metadata cache as pages arrive.
 *
 * A waiter's life. The caller fills w->done and w->tag and calls
 * dirfetch_join, then registers whatever will call dirfetch_cancel(tag) (a
 * FUSE interrupt callback), then calls dirfetch_arm. Until dirfetch_arm the
 * waiter is the caller's: a result or a cancel arriving in between is held
 * and delivered by dirfetch_arm. w->done is called exactly once per joined
 * waiter, with no lock held, from a fetch thread, dirfetch_cancel,
 * dirfetch_arm or dirfetch_free; after that call w belongs to done (which may
 * free it). Every function is thread-safe.
 */
#ifndef IRSAFS_FS_DIRFETCH_H
#define IRSAFS_FS_DIRFETCH_H

#include <stddef.h>
#include <stdint.h>

struct listing;
struct store;
struct inode_table;
struct store_error;

/* Fetch threads per mount: at most this many directories are listed at once. */
#define DIRFETCH_THREADS 4

struct dirfetch_config {
	struct store *store;
	struct inode_table *inodes;	/* reservations, and the finished listing's cache */
	int page_size;
	long long timeout_ms;		/* the whole listing (--list-timeout); 0: none */
	size_t max_bytes;		/* one listing's bytes (--metadata-cache-size) */
	unsigned threads;		/* 0: DIRFETCH_THREADS */
	/*
	 * Called once per fetch that ended (not for an abandoned one), on the
	 * fetch thread, before the waiters are answered; rc 0 or a negative errno.
	 */
	void (*finished)(void *ctx, uint64_t ino, const char *key, int rc, const struct store_error *e);
	void *ctx;
};

struct dirfetch_waiter {
	/* rc 0: l is a new reference for the waiter; else l is NULL. */
	void (*done)(struct dirfetch_waiter *w, int rc, struct listing *l);
	const void *tag;		/* what dirfetch_cancel finds it by (a fuse_req_t) */
	/* Private to dirfetch.c. */
	struct dirfetch_waiter *next;
	struct flight *flight;		/* NULL once detached */
	int state;
	int rc;
	struct listing *l;
};

/* NULL on ENOMEM. No thread starts until the first fetch. */
struct dirfetch *dirfetch_new(const struct dirfetch_config *cfg);

/*
 * Add w to the fetch of directory ino (key) and start that fetch if none is
 * running. Returns 1 when a fetch was started, 0 when w joined one, or a
 * negative errno (-ENOMEM, -ESHUTDOWN after dirfetch_free began); on error w
 * was not added and done will not be called.
 */
int dirfetch_join(struct dirfetch *df, uint64_t ino, const char *key, struct dirfetch_waiter *w);

/* The caller is ready for w->done (see above); it may be called from here. */
void dirfetch_arm(struct dirfetch *df, struct dirfetch_waiter *w);

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
