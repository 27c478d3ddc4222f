/*
 * membudget: the one memory ceiling for read-ahead buffers.
 *
 * Every buffer the prefetcher fills is reserved here first and mapped with
 * mmap(2), so that unmapping it gives its pages back to the kernel (a malloc
 * heap would keep them and RSS would drift above the budget). The mapping is
 * populated up front: one call instead of a page fault per 4 KiB while curl
 * fills it.
 * A reservation that would take the total past the limit fails at once: the
 * caller shrinks its read-ahead instead of waiting, so the budget can never
 * deadlock readers against each other.
 *
 * A released mapping is kept for the next reservation of the same size (up to
 * half the limit): a steady reader then reuses the same few buffers instead of
 * paying the kernel to zero, map and unmap 8 MiB for every part (measured: 12%
 * of the daemon's CPU in a sequential read). Kept mappings still count
 * against the limit and give way to any reservation that needs their room;
 * membudget_trim hands them all back. All functions are thread-safe.
 *
 * A buffer that changes hands (a lookup's first bytes, kept in the head
 * cache, then taken by an open's read-ahead) travels as a struct membuf: the
 * mapping and its reservation in one value. membudget_transfer moves it and
 * leaves the giver empty, and releasing an empty one does nothing, so
 * whichever owner holds it last releases it, once.
 *
 * Invariant: 0 <= used and used + pooled <= limit. Each reservation and
 * release checks it; a release of more than is reserved is a bug in the
 * caller: it aborts where assert(3) is on (every build but -Db_ndebug=true),
 * else it is logged once and used stays at 0 instead of wrapping round,
 * which would lift the ceiling by the difference.
 */
#ifndef IRSAFS_CACHE_MEMBUDGET_H
#define IRSAFS_CACHE_MEMBUDGET_H

#include <stddef.h>

struct membudget;

/* A budget of limit bytes (> 0). NULL on ENOMEM. */
struct membudget *membudget_new(size_t limit);
void membudget_free(struct membudget *b);

/*
 * n bytes of memory (contents undefined), counted against the budget. NULL when the
 * budget would be exceeded or the kernel refused the mapping. Release with
 * membudget_release(b, p, n), the same n.
 */
void *membudget_alloc(struct membudget *b, size_t n);
/*
 * The same in two steps, so that a reader only counts and a fetching thread
 * pays for the mapping: reserve n bytes (0, or -1 when they do not fit), then
 * map them (NULL when the kernel refused; the reservation stands).
 */
int membudget_reserve(struct membudget *b, size_t n);
/*
 * The same, but only while keep more bytes would still fit after it: a
 * reservation that others must not crowd out (the prefetcher keeps room for
 * the direct reads that bypass its window).
 */
int membudget_reserve_leaving(struct membudget *b, size_t n, size_t keep);
void *membudget_map(struct membudget *b, size_t n);
/* End a reservation of n bytes, with its mapping p (or NULL if never mapped). */
void membudget_release(struct membudget *b, void *p, size_t n);

/* A reservation with its mapping; {NULL, 0} is empty. Moved, never copied. */
struct membuf {
	char *p;
	size_t n;
};

#define MEMBUF_EMPTY ((struct membuf){ NULL, 0 })

/* n bytes as a membuf: 0, or -1 (out left empty) when they do not fit. */
int membudget_get(struct membudget *b, size_t n, struct membuf *out);
/* Release m (nothing if empty) and leave it empty. */
void membudget_put(struct membudget *b, struct membuf *m);
/*
 * Hand *from over to *to, which must be empty (a live reservation there
 * would be lost: that aborts where assert(3) is on), and leave *from empty.
 */
void membudget_transfer(struct membuf *to, struct membuf *from);

/* Unmap every kept mapping (when reading stops for a while). */
void membudget_trim(struct membudget *b);

size_t membudget_limit(const struct membudget *b);
/*
 * Bytes reserved now; bytes kept for reuse (reserved + kept never exceed the
 * limit); the most ever reserved at once.
 */
size_t membudget_used(struct membudget *b);
size_t membudget_pooled(struct membudget *b);
size_t membudget_peak(struct membudget *b);

#endif
