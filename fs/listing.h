/*
 * listing: one directory's entries, built from ListObjectsV2 pages.
 *
 * This is where S3 keys become POSIX names. Under a directory whose key
 * prefix is D (ending in '/', or "" for the bucket root):
 *  - an object D+name is a file `name`; the object D itself (a folder
 *    marker, "dir/") is not an entry;
 *  - a common prefix D+name+"/" is a directory `name`;
 *  - a name that is empty, "." or "..", longer than 255 bytes, or holds a
 *    '/' is hidden (logged once), never an error: it comes from keys such as
 *    "a//b", "a/./b" or a 300-byte segment;
 *  - a directory shadows a file of the same name (logged once).
 * Entries are sorted by name (byte order), unique. A listing is immutable once
 * finished and reference-counted, so open directory handles and lookups can
 * share it without locks.
 */
#ifndef IRSAFS_FS_LISTING_H
#define IRSAFS_FS_LISTING_H

#include <stddef.h>

#include "s3/store.h"

#define NAME_MAX_BYTES 255

struct listing_entry {
	char *name;
	int is_dir;
	struct store_attr_packed attr;	/* files only; listing_entry_attr unpacks it */
};

struct listing {
	int refs;			/* atomic */
	long long fetched_ms;		/* monotonic time of the first page request */
	size_t n;
	size_t cap;
	struct listing_entry *e;
};

/* The attributes of a listed file (zeros for a directory). */
static inline void listing_entry_attr(const struct listing_entry *ent, struct store_attr *out)
{
	store_attr_unpack(&ent->attr, out);
}

/* Is this a name irsafs shows? (non-empty, not . or .., <= 255 bytes, no '/') */
int listing_name_ok(const char *name, size_t len);

struct listing *listing_new(void);
struct listing *listing_ref(struct listing *l);
void listing_release(struct listing *l);

/* Add one page's entries under dir_key. 0 or -ENOMEM. */
int listing_add_page(struct listing *l, const char *dir_key, const struct s3_list_page *page);

/* Sort, apply shadowing, drop duplicates. */
void listing_finish(struct listing *l, const char *dir_key);

/* Binary search by name; NULL when absent. */
const struct listing_entry *listing_find(const struct listing *l, const char *name);

/*
 * Fetch the whole listing of dir_key from the store, page by page.
 * Returns 0 with *out set (one reference), or a negative errno (e filled).
 */
int listing_fetch(struct store *st, const char *dir_key, int page_size, struct listing **out,
		  struct s3_error *e);

#endif
