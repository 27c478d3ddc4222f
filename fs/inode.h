/*
 * inode: the table of inodes the kernel knows about.
 *
 * Each node is one file or directory, identified by its full S3 key (a
 * directory's key ends in '/'; the root's key is the mount prefix). The kernel
 * holds `nlookup` references to a node (one per lookup reply and per
 * readdirplus entry); FORGET drops them, and a node with none left is freed.
 * The root is never freed. Inode numbers are never reused during a mount.
 *
 * The table is also the metadata cache. A directory node keeps its last
 * listing (reused for lookups and attributes of its entries within the TTL);
 * the listings together are bounded in bytes, and the oldest are dropped
 * first when a new one would go over. A node remembers when a denial of it was
 * seen (a listing refused, a read refused) and shows it for the TTL. Names
 * without a node remember their last "no such key" (kept for the negative
 * TTL) or "denied" answer (kept for the TTL) in a bounded table of negative
 * entries, the oldest dropped first. And the table keeps the text of the last
 * denial for the mount root's xattr.
 *
 * The table has one mutex. Callers never keep a struct node pointer after
 * unlocking: the functions below copy what callers need out of the node.
 * Thread-safe.
 */
#ifndef IRSAFS_FS_INODE_H
#define IRSAFS_FS_INODE_H

#include <stdint.h>

#include "s3/store.h"

struct listing;
struct inode_table;

/* A copy of a node's state, owned by the caller (free key with inode_info_cleanup). */
struct inode_info {
	uint64_t ino;
	char *key;
	int is_dir;
	struct store_attr attr;		/* files */
	long long attr_ms;		/* when attr was learned (monotonic ms) */
	char *last_open_etag;		/* files: ETag of the last open, or NULL */
	int denied;			/* a denial was seen within the TTL */
};

/* What the cache may hold, and for how long. */
struct inode_limits {
	long long ttl_ms;		/* listings, attributes, denials */
	long long negative_ttl_ms;	/* "no such key" answers */
	size_t max_listing_bytes;	/* all cached listings together */
	size_t max_negative;		/* negative entries */
};

#define INODE_DEFAULT_LISTING_BYTES (64u << 20)
#define INODE_DEFAULT_NEGATIVE 4096u

/* Limits start at a 1 s TTL for everything and the defaults above. */
struct inode_table *inode_table_new(const char *root_key);
void inode_table_free(struct inode_table *t);
/* Set the limits (call before serving; a 0 size keeps the default). */
void inode_table_set_limits(struct inode_table *t, const struct inode_limits *lim);

/*
 * Number new nodes from first on (the root stays 1). A server that takes
 * over a FUSE connection from one that died (fs/resume.c) starts above every
 * number its predecessors gave out: the kernel still holds those, and must
 * never see one name a different file. Call before serving.
 */
void inode_table_set_first_ino(struct inode_table *t, uint64_t first);

/* Copy node ino into *out. 0 or -ENOENT (unknown inode: a kernel bug or a race). */
int inode_get(struct inode_table *t, uint64_t ino, struct inode_info *out);
void inode_info_cleanup(struct inode_info *i);

/*
 * Find or create the node for key (is_dir as given), set its attributes when
 * attr is not NULL, and add one lookup reference. Returns the inode number,
 * or 0 on ENOMEM.
 */
uint64_t inode_lookup_ref(struct inode_table *t, const char *key, int is_dir,
			  const struct store_attr *attr);

/* Drop n lookup references; the node is freed when none remain. */
void inode_forget(struct inode_table *t, uint64_t ino, uint64_t n);

/* Update a file's attributes (after a HEAD). */
void inode_set_attr(struct inode_table *t, uint64_t ino, const struct store_attr *attr);
/* The same, learned at ms (monotonic) rather than now: a GET that ended then. */
void inode_set_attr_at(struct inode_table *t, uint64_t ino, const struct store_attr *attr,
		       long long ms);

/* Remember the ETag of an open; returns 1 if it equals the previous open's. */
int inode_note_open(struct inode_table *t, uint64_t ino, const char *etag);

/*
 * The directory's cached listing (a new reference) if younger than
 * max_age_ms. One older than the TTL that nobody else holds is freed; one
 * still held (an open directory handle, the directory read-ahead) stays for
 * inode_dir_listing, as it costs nothing more.
 */
struct listing *inode_get_listing(struct inode_table *t, uint64_t ino, long long max_age_ms);
/*
 * The cached listing of the directory whose key is dir_key (a new
 * reference), whatever its age, or NULL. For plans that every answer is
 * checked against anyway (the directory read-ahead pins each GET to the
 * listed ETag): never for answers that must be fresh.
 */
struct listing *inode_dir_listing(struct inode_table *t, const char *dir_key);
/*
 * Replace the directory's cached listing (takes a new reference to l). A
 * listing that does not fit beside the reservations is not kept.
 */
void inode_set_listing(struct inode_table *t, uint64_t ino, struct listing *l);

/*
 * Listings being fetched share the metadata cache's bytes with the cached
 * ones (so --metadata-cache-size bounds both). Reserve bytes for one: cached
 * listings are evicted, oldest first, to make room. 0, or -ENOSPC when the
 * listings being fetched would hold more than the whole cache. Every
 * reservation is returned with inode_listing_unreserve, before the finished
 * listing is handed to inode_set_listing.
 */
int inode_listing_reserve(struct inode_table *t, size_t bytes);
void inode_listing_unreserve(struct inode_table *t, size_t bytes);

/*
 * A denial of node ino was seen now (its listing or its bytes were refused).
 * inode_get reports it (info.denied) until the TTL has passed.
 */
void inode_set_denied(struct inode_table *t, uint64_t ino);
/* Is node ino denied within the TTL? 0 or 1 (0 for an unknown inode). */
int inode_is_denied(struct inode_table *t, uint64_t ino);

/*
 * Remember the answer for a key that has no node: -ENOENT (kept for the
 * negative TTL) or -EACCES (kept for the TTL). Other values are ignored.
 */
void inode_neg_put(struct inode_table *t, const char *key, int err);
/* The remembered answer for key if still fresh (-ENOENT, -EACCES), else 0. */
int inode_neg_get(struct inode_table *t, const char *key);
/* Forget every negative entry (e.g. after a listing showed new names). */
void inode_neg_clear(struct inode_table *t);

/* Record / copy the text of the last denial ("" when none). */
void inode_set_last_denial(struct inode_table *t, const char *text);
void inode_last_denial(struct inode_table *t, char *out, size_t outlen);

/* Number of live nodes, negative entries, bytes of cached listings (tests, counters). */
unsigned long inode_count(struct inode_table *t);
unsigned long inode_neg_count(struct inode_table *t);
size_t inode_listing_bytes(struct inode_table *t);

#endif
