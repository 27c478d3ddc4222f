/*
 * metacache: the metadata cache, a store layer that answers what names are.
 *
 * It turns the flat keyspace of the store below into directories: it handles
 * lookup (what is this name in this directory) and the directories, read
 * while their listings arrive (dir_open, dir_read, dir_wait, dir_arm,
 * dir_cancel, dir_close), and forwards every other hook. What it remembers
 * is in its table (cache/metatable.h): listings by directory key for the
 * metadata TTL, and negative answers ("no such key" for the negative TTL,
 * "denied" for the TTL).
 *
 * A lookup inside a directory listed within the TTL is answered from that
 * listing, and a name with a fresh negative entry from that. Otherwise it
 * asks the store below two questions at once: a listing of "name/" with
 * max-keys=1 (a directory shadows a file of the same name, so its answer
 * wins), run on one of the layer's helper threads, and, for the file, a
 * stat_head (the head cache's GET of the first bytes, kept for the open that
 * follows), or a HEAD when that is not offered. An empty or archived object
 * is asked again with a HEAD; a GET that failed for throttling or a server
 * fault is not (that would be a second budget). The GET's denial is logged
 * only once the probe has said the name is no directory, so a prefix-scoped
 * role walking into its prefix sees no warning about the directory's own
 * name. This keeps a path reachable by its full name even under a directory
 * the role may not list.
 *
 * What the answers mean, for a role without s3:ListBucket on the prefix: S3
 * answers 403, not 404, for a key that does not exist (so as not to reveal
 * that it does not), and that is EACCES; a denial is never taken for ENOENT.
 * When the directory probe is denied and the HEAD says 404, the name may
 * still be a directory: EACCES too. With --unlisted-dirs such a name, and one
 * whose GET is denied too, is a directory that can be traversed, not listed.
 * A name the role may list but not read is a file shown as refused.
 *
 * Listings are fetched off the caller's thread (cache/dirfetch.h) and read
 * as their pages arrive: any number of readers of one directory share one
 * fetch, a finished listing is kept in the table (its bytes were reserved
 * there while it was fetched), one too large for --metadata-cache-size is
 * read in a window and not kept, and a waiter may leave at any time.
 * Thread-safe; the layer's own locks are its table's and its fetches' (never
 * held across a call to the store below).
 */
#ifndef IRSAFS_CACHE_METACACHE_H
#define IRSAFS_CACHE_METACACHE_H

#include <stddef.h>

struct store;
struct store_dir;

struct metacache_config {
	const char *bucket;		/* for log lines (copied) */
	long long ttl_ms;		/* listings, attributes, denials */
	long long negative_ttl_ms;	/* "no such key" answers */
	size_t max_listing_bytes;	/* all listings (--metadata-cache-size) */
	int page_size;			/* keys per list page */
	long long list_timeout_ms;	/* one directory's whole listing; 0: none */
	int unlisted_dirs;		/* neither listed nor readable: a traverse-only directory */
};

struct metacache_stats {
	unsigned long long lookup_hits;	/* answered from a listing or a negative entry */
	unsigned long long lookup_misses;	/* lookups that asked the store below */
	size_t listing_bytes;		/* bytes of kept listings */
	size_t listing_held;		/* bytes held by listings being read as they arrive */
	size_t listing_held_peak;	/* the most one of them held after a page */
	unsigned listings_live;		/* listings being fetched (or waiting for readers) */
};

/* The layer over inner (not owned). NULL on ENOMEM. No thread starts yet. */
struct store *metacache_new(struct store *inner, const struct metacache_config *cfg);

/*
 * Start the lookup helpers (after any fork). Best effort: without them a
 * lookup asks its two questions in turn. 0, or -errno.
 */
int metacache_start(struct store *s);

/*
 * Stop the listing fetches: every waiter is answered (running fetches are
 * abandoned before their next page) and no new one is taken. Waiters are
 * FUSE requests: call this before the FUSE session goes. Idempotent.
 */
void metacache_stop(struct store *s);

/* Keep d as dir_key's listing (the mount-time listing of the root). */
void metacache_set_dir(struct store *s, const char *dir_key, struct store_dir *d);

void metacache_stats(struct store *s, struct metacache_stats *out);

#endif
