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
 */
#ifndef IRSAFS_CACHE_HEADCACHE_H
#define IRSAFS_CACHE_HEADCACHE_H

#include <stddef.h>

struct membudget;
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
 * Take the first bytes of key at etag: 1 with *buf, *cap and *got set (the
 * caller now owns buf, to be released with membudget_release(mb, buf, cap)),
 * or 0 when there are none.
 */
int headcache_take(struct headcache *hc, const char *key, const char *etag, char **buf,
		   size_t *cap, size_t *got);

#endif
