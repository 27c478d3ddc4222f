/*
 * headcache: a store layer that keeps the first bytes of objects just looked
 * up, for the open that follows.
 *
 * A lookup that misses the listing cache asks for a stat with the object's
 * head (store_stat_head): this layer answers it with one GET of the first
 * bytes instead of a HEAD (the store below's stat_read): the same one
 * request, and for a file that is then read, as cat does, the first read
 * needs no request of its own; a file no larger than those bytes is read
 * whole by its lookup. The bytes wait here, keyed by key and ETag, until an
 * open of the same ETag takes them (so they are never another version's
 * bytes) or a newer lookup pushes them out. A few slots only: the buffers are
 * reserved in the read-ahead budget, and a stat that is never followed by an
 * open should not hold memory for long. The layer handles stat_head and open
 * and forwards every other hook; with no memory for a buffer, stat_head says
 * -ENOSYS and the lookup asks with a plain stat.
 *
 * Ownership: a buffer belongs to the lookup's stat_head, then to its slot,
 * then to the open that takes it, which hands it down with the open (struct
 * store_head) to the layer that opens files (the read-ahead), which releases
 * it into the same budget. Each step moves the buffer; it is released once,
 * by whoever holds it last. Thread-safe; one lock, held only around the
 * slots (never across a call to the store below).
 */
#ifndef IRSAFS_CACHE_HEADCACHE_H
#define IRSAFS_CACHE_HEADCACHE_H

#include <stddef.h>

struct store;
struct membudget;

/*
 * The layer over inner (not owned): slots entries at most, cap bytes each
 * (what a lookup GETs), buffers from and back to mb (not owned; the layer
 * that opens files below must release into the same budget). NULL on ENOMEM.
 */
struct store *headcache_new(struct store *inner, struct membudget *mb, unsigned slots,
			    size_t cap);

/* How many opens found their bytes (hits) and how many did not (misses). */
void headcache_stats(struct store *s, unsigned long long *hits, unsigned long long *misses);

#endif
