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
 *
 * Order. Entries are unique and sorted by store_name_cmp (s3/store.h): byte order of the
 * names as if each ended in '/', so a file sorts where a directory of its name
 * would ("a.txt" < "a" < "a0", since '.' < '/' < '0'). That is the order S3
 * sends the keys in, with every file moved from "f" to "f/", so the entries
 * can be handed out while the pages are still coming (cache/listorder.h says why
 * and how); plain byte order of the names cannot: a directory "file" (sent as
 * "file/") sorts before "file-0000001.txt" (sent before it), so no entry of a
 * directory named like that could be given before its last page.
 *
 * Storage: a listing is a struct store_dir (s3/store.h), in chunks, so a
 * listing grows by appending (listing_append) without copying what it holds
 * and one read while it arrives can let go of what its readers passed.
 *
 * Fetching trusts nothing the server says about how long a listing is. A
 * fetch (listing_fetch_page, one page at a time) ends with EIO and one log
 * line (naming the directory and the bound) at the first of:
 *  - a protocol error: a truncated page without a continuation token, a token
 *    longer than LISTING_MAX_TOKEN, or a token this listing has already been
 *    given (a server that sends the same token again would loop for ever);
 *  - more than listing_max_pages(page_size) pages: ten million keys' worth,
 *    10,000 pages of the default 1,000 keys (a directory of a million keys is
 *    1,000 pages). It stops a server that hands out a new token with every
 *    empty page, faster than the time bound would;
 *  - the time bound (bounds->deadline_ms, from --list-timeout), checked before
 *    each page; each page has its own --operation-timeout, so a listing ends at
 *    most one page's budget after its deadline.
 * Memory is the caller's to bound (cache/dirfetch.h): what a fetch holds of its
 * own is one page, the tokens (LISTING_TOKEN_BYTES each, at most the page
 * cap's worth) and the files held back by the order (at most 255).
 * A page itself is parsed as a stream (s3/s3_xml.c) and holds at most
 * S3_LIST_MAX_ENTRIES entries. bounds->cancelled is polled before each page:
 * nonzero abandons the fetch with -EINTR. Entries the parser dropped (a key
 * holding %00, a bad <Size>) are logged once each, like hidden names.
 */
#ifndef IRSAFS_CACHE_LISTING_H
#define IRSAFS_CACHE_LISTING_H

#include <stddef.h>

#include "s3/store.h"

struct listorder;

/* Entries appended in one go (one page's), before they join a listing. */
struct listing_batch {
	struct store_dirent *e;
	size_t n, cap;
	size_t bytes;			/* names and attributes (what they add besides slots) */
};

/* Longest continuation token sent back (S3's are ~100-200 bytes, radosgw's a key <= 1,024). */
#define LISTING_MAX_TOKEN 4096
/* Keys' worth of pages one listing may take: pages = this / page size. */
#define LISTING_MAX_PAGE_KEYS 10000000
/* What a kept token costs (a 64-bit hash in a half-full table). */
#define LISTING_TOKEN_BYTES 16

/* How one fetch is bounded. Zeros mean "no such bound". */
struct listing_bounds {
	long long deadline_ms;		/* monotonic ms (clock_mono_ms) */
	size_t max_pages;		/* 0: listing_max_pages(page_size) */
	/* Polled before each page: nonzero abandons the listing with -EINTR. */
	int (*cancelled)(void *ctx);
	void *ctx;
};

/* The page cap for a page size (LISTING_MAX_PAGE_KEYS / page_size, at least 1,000). */
size_t listing_max_pages(int page_size);

/*
 * Move b's entries to the end of l (b is left empty; its entries must sort
 * after l's, as listorder hands them out). l->bytes grows by what they hold.
 * 0, or -ENOMEM with the entries that did not fit still in b.
 */
int listing_append(struct store_dir *l, struct listing_batch *b);

/*
 * The whole listing of one page that is the directory's only one (the mount's
 * first page): its entries in order, shadowing applied. NULL on ENOMEM.
 */
struct store_dir *listing_of_page(const char *dir_key, const struct store_page *page);

/* Add one entry to a batch (name: len bytes; attr NULL for a directory). 0 or -ENOMEM. */
int listing_batch_add(struct listing_batch *b, const char *name, size_t len, int is_dir,
		      const struct store_attr_packed *attr);
/* The same, taking name (malloc'd, len bytes) and *attr (left empty) instead of copying. */
int listing_batch_take(struct listing_batch *b, char *name, size_t len, int is_dir,
		       struct store_attr_packed *attr);
void listing_batch_cleanup(struct listing_batch *b);

/* One fetch in progress: private to listing.c, on the caller's stack or heap. */
struct listing_fetch {
	struct store *st;
	char *dir_key;
	int page_size;
	struct listing_bounds b;	/* the caller may move b.deadline_ms between pages */
	size_t max_pages;
	struct listorder *order;
	unsigned long long *tokens;	/* hashes of the tokens given, half full at most */
	size_t tokens_cap, ntokens;
	char *token;			/* the one to send next; NULL: first page or done */
	size_t pages;			/* pages added */
	size_t entries;			/* entries handed out */
	int ended;			/* the last page was added */
};

/* Start fetching dir_key (bounds NULL: only the page cap and the token checks). 0 or -ENOMEM. */
int listing_fetch_init(struct listing_fetch *f, struct store *st, const char *dir_key,
		       int page_size, const struct listing_bounds *bounds);

/*
 * Fetch the next page and add what became certain to out (in order, after
 * everything handed out before). Returns 1 when more pages follow, 0 when
 * that was the last (out then also holds the entries that were held back),
 * -EIO when a bound or a protocol check ended the listing (logged, e says
 * which class), -EINTR when bounds->cancelled said so, or the store's
 * negative errno (e filled). After anything but 1, do not call it again. One
 * thread at a time per fetch.
 */
int listing_fetch_page(struct listing_fetch *f, struct listing_batch *out, struct store_error *e);

/* What the fetch holds besides the pages' entries: tokens and held-back files. */
size_t listing_fetch_bytes(const struct listing_fetch *f);

void listing_fetch_cleanup(struct listing_fetch *f);

#endif
