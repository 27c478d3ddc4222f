/*
 * diskcache: a store that keeps fixed-size blocks of objects on local disk.
 *
 * Wraps a store (the S3 store). read_range of a key pinned to an ETag is cut
 * into blocks of DISKCACHE_BLOCK bytes at block-aligned offsets; each block
 * lives in one file named by the SHA-256 of (bucket, key, ETag, offset), so
 * data of another ETag is never found. A block file carries a header with
 * that identity, its length and the SHA-256 of its bytes, all checked on
 * every read: a block that fails is a miss, logged once, and removed. Runs of
 * missing blocks are fetched with one ranged GET. Unpinned reads (no ETag)
 * and stat/list pass straight through.
 *
 * The directory is created 0700, locked (flock) so that two mounts never
 * share it, and emptied when the cache is created and when it is freed:
 * cached bytes must not outlive the role's access. Blocks are evicted least
 * recently used first so that the files never total more than max_bytes.
 *
 * Memory: a block that is read whole into the caller's buffer needs no other;
 * a cached block is checked as it streams through a small buffer on the
 * stack. Only a fetch that must also fill bytes the caller did not ask for
 * (the rest of a block, to cache it whole) takes a bounce buffer, and that is
 * reserved in the memory budget (cache/membudget.h); when the budget is short
 * the caller's bytes are fetched alone and not cached.
 *
 * Thread-safe: the index has one lock; file I/O and network I/O run outside it.
 */
#ifndef IRSAFS_CACHE_DISKCACHE_H
#define IRSAFS_CACHE_DISKCACHE_H

#include <stddef.h>

#define DISKCACHE_BLOCK (1u << 20)

struct store;
struct membudget;

struct diskcache_stats {
	unsigned long long hits;	/* blocks served from disk */
	unsigned long long misses;	/* blocks fetched */
	unsigned long long bad;		/* blocks that failed their check */
	unsigned long long evicted;
	unsigned long long bytes;	/* bytes on disk now */
};

/*
 * A caching store over inner (not owned) in dir (created if missing) for
 * bucket, holding at most max_bytes (>= one block), with its bounce buffers
 * reserved in mb (not owned; NULL: none, so every partial block is fetched
 * uncached). NULL with a reason in why when the directory cannot be created,
 * locked or emptied.
 */
struct store *diskcache_new(struct store *inner, struct membudget *mb, const char *bucket,
			    const char *dir, size_t max_bytes, char *why, size_t whylen);
void diskcache_stats(struct store *s, struct diskcache_stats *out);

#endif
