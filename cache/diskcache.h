/*
 * diskcache: a store that keeps the bytes of objects on local disk.
 *
 * Wraps a store (the S3 store). A key pinned to an ETag is cut into blocks of
 * DISKCACHE_BLOCK bytes at block-aligned offsets, and each block into
 * granules of DISKCACHE_GRANULE bytes. A block lives in one file named by the
 * SHA-256 of (bucket, key, ETag, offset), so data of another ETag is never
 * found; the file holds whichever of its granules have been read, each with
 * its own length and SHA-256. The file's header carries the block's identity;
 * the identity and each granule's SHA-256 are checked on every read, and a
 * block that fails is a miss, logged once, and removed.
 *
 * A miss fetches the granules the read touches that are not cached, and no
 * more: a random reader's 4 KiB read costs one granule, not a block. Missing
 * granules next to each other are one ranged GET, and so are missing granules
 * separated by less than DISKCACHE_COALESCE cached bytes. A sequential reader
 * still leaves whole blocks behind, because the read-ahead's parts start and
 * end on block boundaries; the one exception is its first part after the
 * bytes a lookup fetched (those never pass through here), so a read of at
 * least DISKCACHE_HEAD_PART bytes that starts inside the first block is
 * fetched from offset 0. Unpinned reads (no ETag) and stat/list pass straight
 * through.
 *
 * The directory is created 0700, locked (flock) so that two mounts never
 * share it, and emptied when the cache is created and when it is freed:
 * cached bytes must not outlive the role's access. Block files are evicted
 * least recently used first so that the header and granule bytes they hold
 * never total more than max_bytes (block files are sparse: a granule that was
 * never fetched takes no space).
 *
 * Memory: bytes the caller asked for go straight into its buffer; a cached
 * granule is checked as it streams (the bytes outside the caller's range pass
 * through one granule on the stack). Only a fetch that also fills bytes the
 * caller did not ask for (the rest of a granule, or the start of the first
 * block, to cache them whole) takes a bounce buffer, and that is reserved in the memory budget
 * (cache/membudget.h); when the budget is short the caller's bytes are
 * fetched alone and only the granules they cover whole are cached.
 *
 * Thread-safe: the index has one lock, under which block files are opened,
 * created and removed; reading, writing, hashing and network I/O run outside it.
 */
#ifndef IRSAFS_CACHE_DISKCACHE_H
#define IRSAFS_CACHE_DISKCACHE_H

#include <stddef.h>

#define DISKCACHE_BLOCK (1u << 20)
#define DISKCACHE_GRANULE (16u << 10)
/* A read this long from inside the first block is the read-ahead's first part. */
#define DISKCACHE_HEAD_PART (256u << 10)
/* Cached bytes between two missing runs that are fetched again rather than split the GET. */
#define DISKCACHE_COALESCE (256u << 10)

struct store;
struct membudget;

struct diskcache_stats {
	unsigned long long hits;	/* granules served from disk */
	unsigned long long misses;	/* granules fetched */
	unsigned long long gets;	/* reads sent to the wrapped store */
	unsigned long long bad;		/* blocks that failed their check */
	unsigned long long evicted;	/* block files evicted */
	unsigned long long bytes;	/* bytes on disk now */
};

/*
 * A caching store over inner (not owned) in dir (created if missing) for
 * bucket, holding at most max_bytes (>= one whole block file), with its
 * bounce buffers reserved in mb (not owned; NULL: none, so only the caller's
 * bytes are fetched). NULL with a reason in why when the directory cannot be
 * created, locked or emptied.
 */
struct store *diskcache_new(struct store *inner, struct membudget *mb, const char *bucket,
			    const char *dir, size_t max_bytes, char *why, size_t whylen);
void diskcache_stats(struct store *s, struct diskcache_stats *out);

#endif
