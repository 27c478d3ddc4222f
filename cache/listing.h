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
 * Entries are sorted by name (byte order), unique. A listing is a struct
 * store_dir (s3/store.h): immutable once finished and reference-counted, so
 * open directory handles and lookups can share it without locks.
 *
 * Fetching trusts nothing the server says about how long a listing is. A
 * listing ends with EIO and one log line (naming the directory and the bound)
 * at the first of:
 *  - a protocol error: a truncated page without a continuation token, a token
 *    longer than LISTING_MAX_TOKEN, or a token this listing has already been
 *    given (a server that sends the same token again would loop for ever);
 *  - more than listing_max_pages(page_size) pages: ten million keys' worth,
 *    10,000 pages of the default 1,000 keys (a directory of a million keys is
 *    1,000 pages). It stops a server that hands out a new token with every
 *    empty page, faster than the time bound would;
 *  - the time bound (bounds->deadline_ms, from --list-timeout), checked before
 *    each page; each page has its own --operation-timeout, so a listing ends at
 *    most one page's budget after its deadline;
 *  - the memory bound: the listing's bytes (listing->bytes, the same estimate
 *    the metadata cache counts), plus 16 bytes per token kept, are checked as
 *    each page arrives against bounds->max_bytes (--metadata-cache-size) and
 *    charged to bounds->charge (all listings being built share the cache).
 * A page itself is parsed as a stream (s3/s3_xml.c) and holds at most
 * S3_LIST_MAX_ENTRIES entries, so what one fetch holds besides its listing is
 * one reply body (at most XML_MAX_BODY) and one page.
 * bounds->cancelled is polled before each page: when nobody waits for the
 * listing any more (the reader was interrupted), it is abandoned with -EINTR.
 * Entries the parser dropped (a key holding %00, a bad <Size>) are logged
 * once each, like hidden names.
 */
#ifndef IRSAFS_CACHE_LISTING_H
#define IRSAFS_CACHE_LISTING_H

#include <stddef.h>

#include "s3/store.h"

/* Longest continuation token sent back (S3's are ~100-200 bytes, radosgw's a key <= 1,024). */
#define LISTING_MAX_TOKEN 4096
/* Keys' worth of pages one listing may take: pages = this / page size. */
#define LISTING_MAX_PAGE_KEYS 10000000
/* What a kept token costs in the memory bound (a 64-bit hash in a half-full table). */
#define LISTING_TOKEN_BYTES 16

/* How one listing_fetch is bounded. Zeros mean "no such bound". */
struct listing_bounds {
	long long deadline_ms;		/* monotonic ms (clock_mono_ms) */
	size_t max_pages;		/* 0: listing_max_pages(page_size) */
	size_t max_bytes;		/* this listing's bytes (--metadata-cache-size) */
	/*
	 * Called with each growth of the listing's bytes (never a decrease);
	 * anything but 0 ends the listing with EIO. The caller keeps the sum to
	 * return it when the listing is done, whatever its outcome.
	 */
	int (*charge)(void *ctx, size_t bytes);
	/* Polled before each page: nonzero abandons the listing with -EINTR. */
	int (*cancelled)(void *ctx);
	void *ctx;
};

/* The page cap for a page size (LISTING_MAX_PAGE_KEYS / page_size, at least 1,000). */
size_t listing_max_pages(int page_size);

/*
 * Add one page's entries under dir_key (l->bytes grows with them), and log
 * the entries the parser dropped, once each. 0 or -ENOMEM.
 */
int listing_add_page(struct store_dir *l, const char *dir_key, const struct store_page *page);

/* Sort, apply shadowing, drop duplicates (l->bytes shrinks with them). */
void listing_finish(struct store_dir *l, const char *dir_key);

/*
 * Fetch the whole listing of dir_key from the store, page by page, within
 * bounds (NULL: only the page cap and the token checks). Returns 0 with *out
 * set (one reference); -EIO when a bound or a protocol check ended it (logged);
 * -EINTR when bounds->cancelled said so; or the store's negative errno (e
 * filled). Thread-safe: one call per thread, any number at once.
 */
int listing_fetch(struct store *st, const char *dir_key, int page_size,
		  const struct listing_bounds *bounds, struct store_dir **out,
		  struct store_error *e);

#endif
