/*
 * metatable: what the metadata cache remembers, by key: directory listings
 * and negative answers.
 *
 * A directory's listing (struct store_dir, s3/store.h) is kept under the
 * directory's key, reused within the TTL, for lookups of its entries and for
 * opendir. The listings together are bounded in bytes (--metadata-cache-size),
 * and the oldest are dropped first when a new one would go over; listings
 * being fetched reserve their bytes from the same bound (metatable_reserve),
 * so it covers both. A listing past its TTL is of no use and is freed when
 * it is next looked for (or evicted first when room is needed).
 *
 * Names without a listing to answer them remember their last "no such key"
 * (kept for the negative TTL) or "denied" answer (kept for the TTL) in a
 * bounded table of negative entries, the oldest dropped first.
 *
 * One mutex guards everything; callers get copies (or references) out, never
 * pointers into the table. Thread-safe.
 */
#ifndef IRSAFS_CACHE_METATABLE_H
#define IRSAFS_CACHE_METATABLE_H

#include <stddef.h>

struct store_dir;
struct metatable;

/* What the table may hold, and for how long. */
struct metatable_limits {
	long long ttl_ms;		/* listings and denials */
	long long negative_ttl_ms;	/* "no such key" answers */
	size_t max_listing_bytes;	/* all listings together, 0: the default */
	size_t max_negative;		/* negative entries, 0: the default */
};

#define METATABLE_DEFAULT_LISTING_BYTES (64u << 20)
#define METATABLE_DEFAULT_NEGATIVE 4096u

/* Limits start at a 1 s TTL for everything and the defaults above. NULL on ENOMEM. */
struct metatable *metatable_new(void);
void metatable_free(struct metatable *t);
/* Set the limits (before use; a 0 size keeps the default). */
void metatable_set_limits(struct metatable *t, const struct metatable_limits *lim);

/* The listing of dir_key (a new reference) if younger than max_age_ms, else NULL. */
struct store_dir *metatable_get_dir(struct metatable *t, const char *dir_key,
				    long long max_age_ms);
/*
 * Keep d (a new reference) as dir_key's listing, replacing any older one. A
 * listing that does not fit beside the reservations is not kept.
 */
void metatable_set_dir(struct metatable *t, const char *dir_key, struct store_dir *d);

/*
 * Reserve bytes for a listing being fetched: kept listings are evicted,
 * oldest first, to make room. 0, or -ENOSPC when the listings being fetched
 * would hold more than the whole bound. Every reservation is returned with
 * metatable_unreserve, before the finished listing is handed to
 * metatable_set_dir.
 */
int metatable_reserve(struct metatable *t, size_t bytes);
void metatable_unreserve(struct metatable *t, size_t bytes);

/*
 * Remember the answer for key: -ENOENT (kept for the negative TTL) or
 * -EACCES (kept for the TTL). Other values are ignored.
 */
void metatable_neg_put(struct metatable *t, const char *key, int err);
/* The remembered answer for key if still fresh (-ENOENT, -EACCES), else 0. */
int metatable_neg_get(struct metatable *t, const char *key);
/* Forget every negative entry. */
void metatable_neg_clear(struct metatable *t);

/* Bytes of kept listings, and negative entries (tests, metrics). */
size_t metatable_listing_bytes(struct metatable *t);
unsigned long metatable_neg_count(struct metatable *t);

#endif
