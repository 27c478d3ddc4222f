/*
 * membudget: the one memory ceiling for read-ahead buffers.
 *
 * Every buffer the prefetcher fills is reserved here first and mapped with
 * mmap(2), so that it goes back to the kernel the moment it is released (a
 * malloc heap would keep its pages and RSS would drift above the budget). The
 * mapping is populated up front: one call instead of a page fault per 4 KiB
 * while curl fills it, which measurably lowers CPU per GiB.
 * A reservation that would take the total past the limit fails at once: the
 * caller shrinks its read-ahead instead of waiting, so the budget can never
 * deadlock readers against each other. All functions are thread-safe.
 */
#ifndef IRSAFS_CACHE_MEMBUDGET_H
#define IRSAFS_CACHE_MEMBUDGET_H

#include <stddef.h>

struct membudget;

/* A budget of limit bytes (> 0). NULL on ENOMEM. */
struct membudget *membudget_new(size_t limit);
void membudget_free(struct membudget *b);

/*
 * n bytes of zero-filled memory, counted against the budget. NULL when the
 * budget would be exceeded or the kernel refused the mapping. Release with
 * membudget_release(b, p, n), the same n.
 */
void *membudget_alloc(struct membudget *b, size_t n);
void membudget_release(struct membudget *b, void *p, size_t n);

size_t membudget_limit(const struct membudget *b);
/* Bytes reserved now, and the most ever reserved at once. */
size_t membudget_used(struct membudget *b);
size_t membudget_peak(struct membudget *b);

#endif
