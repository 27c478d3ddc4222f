/*
 * headcache: the first bytes of objects just looked up, waiting for an open.
 *
 * A lookup that misses the listing cache asks S3 with a GET of the first
 * bytes instead of a HEAD (store_stat_read): the same one request, and for a
 * file that is then read, as cat does, the first read needs no request of its
 * own; a file no larger than those bytes is read whole by its lookup. The
 * bytes wait here, keyed by key and ETag, until open takes them (the open
 * must see the same ETag, so they are never another version's bytes) or a
 * newer lookup pushes them out. A few slots only: the buffers are reserved in
 * the read-ahead budget, and a stat that is never followed by an open should
 * not hold memory for long. Thread-safe.
 *
 * Ownership: a buffer belongs to the lookup (headcache_buffer), then to its
 * slot (headcache_put), then to the open that takes it (headcache_take hands
 * over its reservation as a struct membuf and leaves the slot empty), then to
 * the read-ahead (ra_open_head), which releases it. Each step moves the
 * reservation; it is released once, by whoever holds it last.
 */
#ifndef IRSAFS_CACHE_HEADCACHE_H
#define IRSAFS_CACHE_HEADCACHE_H

#include <stddef.h>

#include "cache/membudget.h"

struct headcache;

/* slots entries at most; buffers come from and go back to mb (not owned). */
struct headcache *headcache_new(struct membudget *mb, unsigned slots);
void headcache_free(struct headcache *hc);

/* A buffer of cap bytes for a lookup to fill, or NULL when the budget is short. */
char *headcache_buffer(struct headcache *hc, size_t cap);
/* Give back a buffer from headcache_buffer that is not kept. */
void headcache_discard(struct headcache *hc, char *buf, size_t cap);

/*
 * Keep buf (from headcache_buffer, cap bytes, the first got of them filled)
 * as the first bytes of key at etag. Takes buf in every case.
 */
void headcache_put(struct headcache *hc, const char *key, const char *etag, char *buf,
		   size_t cap, size_t got);

/*
 * Take the first bytes of key at etag: 1 with *out (empty before the call)
 * holding the buffer and its reservation, the first *got bytes filled; the
 * caller now owns it (ra_open_head takes it, or membudget_put releases it).
 * 0 when there are none (*out stays empty). An entry of another ETag is
 * dropped either way.
 */
int headcache_take(struct headcache *hc, const char *key, const char *etag, struct membuf *out,
		   size_t *got);

/* How many takes found their bytes (hits) and how many did not (misses). */
void headcache_stats(struct headcache *hc, unsigned long long *hits, unsigned long long *misses);

#endif
