/*
 * stack: the one place the store stack is composed.
 *
 * From the bottom up, each store wrapping the one below (s3/store.h):
 *
 *   S3 store     requests, signing, retries, the one errno table's classes
 *   disk cache   --cache-dir: verified bytes of pinned reads on local disk
 *   read-ahead   open files: a window of parallel ranged GETs per file
 *   head cache   --lookup-read: a lookup's GET of the first bytes, kept for
 *                the open that follows and handed down with it
 *   metadata     what names are: listings by directory and negative
 *   cache        answers for the TTL, lookups, listings fetched off the
 *                FUSE threads
 *   read-ahead   --dir-readahead: when a directory's files are opened in
 *   across files listing order (cp -a, tar, rsync), the next files are
 *                fetched whole ahead, and each open takes its bytes
 *
 * Why this order: the disk cache keeps only bytes the S3 store verified and
 * must see every ranged GET of object bytes, the read-ahead's parts and a
 * seek's own, so it sits right above the S3 store and below the read-ahead,
 * whose parts start on its block boundaries. The head cache hands its bytes
 * to an open, so it sits above the layer that opens files; the lookup's GET
 * it sends passes the read-ahead and the disk cache unchanged (their
 * stat_read forwards) and is not cached on disk, as it never was. The
 * metadata cache is on top: a lookup it cannot answer asks the layers below
 * for a stat with the head (the head cache's) and a one-key listing, and its
 * listing fetches read pages through them (forwarded to S3). The filesystem
 * holds only the top (stack.top) and all reads, stats and listings go
 * through it. The read-ahead across files sits on the metadata cache, whose
 * listings tell it which files come next (store_dir_peek), and sees every
 * open and lookup; the bytes an open takes go down with the open, as the
 * head cache's do, and its GETs go down through every layer (the disk cache
 * sees them).
 *
 * Every buffer of the stack is reserved in one memory budget (--max-memory),
 * which the stack owns. Not thread-safe: built, started and freed by main.
 */
#ifndef IRSAFS_APP_STACK_H
#define IRSAFS_APP_STACK_H

#include <stddef.h>

struct opts;
struct store;
struct membudget;
struct http_client;
struct creds_cache;

struct stack {
	struct store *s3;		/* the bottom */
	struct store *disk;		/* or NULL */
	struct store *ra;
	struct store *head;		/* or NULL (--lookup-read 0) */
	struct store *meta;
	struct store *ahead;		/* or NULL (--dir-readahead 0) */
	struct store *top;		/* what the filesystem holds: ahead or meta, once open */
	int ahead_logged;		/* stack_stop said what the read-ahead across files did */
	struct membudget *mem;		/* --max-memory: every buffer above */
	struct http_client *http;	/* the S3 store's (not owned): stack_stop closes it */
};

/*
 * The S3 store alone (stack.s3 and stack.top), over http and creds (not
 * owned), counting its requests in *requests. 0, or -1 with why filled.
 */
int stack_open_s3(struct stack *st, const struct opts *o, struct http_client *http,
		  struct creds_cache *creds, unsigned long long *requests, char *why,
		  size_t whylen);

/* The caches over it, as o says. 0, or -1 with why filled. */
int stack_open_caches(struct stack *st, const struct opts *o, char *why, size_t whylen);

/* Start the stack's threads (after any fork). 0, or -1 after logging why. */
int stack_start(struct stack *st);

/*
 * Bytes the listings hold now, kept and being read (a nodetrim_others_fn;
 * arg is the struct stack). 0 without a metadata cache.
 */
size_t stack_listing_bytes(void *arg);

/*
 * Stop answering asynchronous waiters (the metadata cache's listings): they
 * are FUSE requests, so this runs before the FUSE session goes. Every S3
 * exchange still running or to come is called off first (http_client_close),
 * so no thread waits out a hung server's time budget. Logs what the
 * read-ahead across files did, once. Idempotent.
 */
void stack_stop(struct stack *st);

/* Free every layer, top down, then the budget. Every file must be closed. */
void stack_free(struct stack *st);

#endif
