/*
 * listorder: one directory's entries, in order, from its ListObjectsV2
 * pages as they come, each handed out as soon as no later page can change it.
 *
 * The order is store_name_cmp's (s3/store.h): names compared as if each ended in '/'.
 * S3 sends keys (CommonPrefixes and Contents, interleaved in key order within
 * a page and across pages) in byte order, a directory `d` at its prefix "d/".
 * So:
 *  - a directory is in place the moment its prefix arrives: any later key is
 *    greater, and so is any later name's position (a file f sorts at "f/",
 *    after its key "f");
 *  - a file `f` is not: the directory "f/" that would hide it may still come
 *    (after "f!x", "f.txt", ..., which sort between them), and it sorts at
 *    "f/". It is held back until a key past "f/" arrives (then it is handed
 *    out), or "f/" itself as a prefix (then the directory hides it, logged
 *    once), or the listing ends.
 * A file held back at key K has f < K < f+"/": f is a prefix of K followed by
 * a byte below '/'. So the files held back at any time are prefixes of the
 * last key, at most 255 of them (names are at most 255 bytes), and they come
 * out last held, first out: bounded lookahead, whatever the directory. The
 * proof that the output is sorted: an entry is handed out only when every
 * later key sorts after its position, and keys only grow.
 *
 * What the server gets wrong is dealt with here too: within a page, entries
 * are sorted (Contents and CommonPrefixes are separate lists in the XML); a
 * key that is not after the previous page's keys is dropped (a repeat
 * silently; an earlier key with one warning per listing: S3 lists in byte
 * order, and an entry already handed out cannot be taken back); keys outside
 * the directory are ignored; hidden names (cache/listing.h) are logged once.
 *
 * Not thread-safe: one listorder per fetch, used by one thread at a time.
 */
#ifndef IRSAFS_CACHE_LISTORDER_H
#define IRSAFS_CACHE_LISTORDER_H

#include <stddef.h>

#include "cache/listing.h"

struct listorder;

/* An order for the directory whose keys start with dir_key. NULL on ENOMEM. */
struct listorder *listorder_new(const char *dir_key);
void listorder_free(struct listorder *o);

/*
 * Take one page (the next in the listing) and add to out the entries that
 * became certain, in order. 0, or -ENOMEM (the order is then unusable).
 */
int listorder_add_page(struct listorder *o, const struct store_page *page,
		       struct listing_batch *out);

/* The listing ended: add the files still held back to out. 0 or -ENOMEM. */
int listorder_finish(struct listorder *o, struct listing_batch *out);

/* Entries held back now, and the bytes they hold. */
size_t listorder_held(const struct listorder *o);
size_t listorder_bytes(const struct listorder *o);

#endif
