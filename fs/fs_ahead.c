/*
 * The directory read-ahead (cache/dirahead.h) seen from the filesystem.
 *
 * Directories are lent to it as listings (fs/listing.h: sorted by name,
 * immutable, reference-counted), found by the parent's key on the inode
 * table whatever their age: every GET it makes is pinned to the listed ETag
 * and size, and an open takes the bytes only when its node shows the same.
 *
 * A file's bytes fetched ahead also stand for its attributes: the GET was
 * answered for that ETag and size, as a HEAD would have been, when it ended.
 * So an open within the metadata TTL of that answer needs no HEAD of its
 * own, and the answer's content type and version id (which a listing lacks)
 * go on the node, where the xattrs find them without a request (cp -a lists
 * and copies them). An older answer is checked with the usual HEAD, and its
 * bytes are dropped if the object changed meanwhile. Likewise a lookup in a
 * directory whose listing is older than the TTL (the usual case for a copy
 * that takes longer than the TTL: its dentries expire, and every file is
 * looked up again) is answered from the listing when the file's GET was
 * answered within the TTL, instead of probing the name with two requests.
 * Lookups and opens both tell the read-ahead where the reader is.
 */
#include "fs/fs_i.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/dirahead.h"
#include "core/strutil.h"
#include "fs/inode.h"
#include "fs/listing.h"

static size_t dir_count(void *dir)
{
	return ((struct listing *)dir)->n;
}

static void dir_entry(void *dir, size_t i, struct dirahead_entry *out)
{
	const struct listing_entry *e = &((struct listing *)dir)->e[i];

	out->name = e->name;
	out->is_dir = e->is_dir;
	out->size = e->attr.size;
	out->etag = store_attr_packed_etag(&e->attr);
}

static long dir_find(void *dir, const char *name)
{
	struct listing *l = dir;
	const struct listing_entry *e = listing_find(l, name);

	return e ? (long)(e - l->e) : -1;
}

static void dir_release(void *dir)
{
	listing_release(dir);
}

const struct dirahead_dir_ops fs_ahead_dir_ops = {
	.count = dir_count,
	.entry = dir_entry,
	.find = dir_find,
	.release = dir_release,
};

int fs_ahead_take(struct irsafs *fs, struct inode_info *ii, struct membuf *head, size_t *got)
{
	const char *slash = strrchr(ii->key, '/');
	size_t dlen = slash ? (size_t)(slash - ii->key) + 1 : 0;
	struct dirahead_file f;
	char etag[sizeof(ii->attr.etag)];
	long long size = ii->attr.size;
	char *dir_key;

	if (!fs->ahead || ii->is_dir || ii->denied)
		return 0;
	dir_key = strndup(ii->key, dlen);
	if (!dir_key)
		return 0;
	memset(&f, 0, sizeof(f));
	if (!dirahead_open(fs->ahead, dir_key, ii->key + dlen, inode_dir_listing(fs->inodes, dir_key),
			   ii->attr.etag, ii->attr.size, &f)) {
		free(dir_key);
		return 0;
	}
	free(dir_key);
	if (clock_mono_ms() - f.fetched_ms < fs->ttl_ms) {
		/* The GET answered for this ETag and size: a HEAD would say no more. */
		if (f.content_type[0])
			snprintf(ii->attr.content_type, sizeof(ii->attr.content_type), "%s",
				 f.content_type);
		if (f.version_id[0])
			snprintf(ii->attr.version_id, sizeof(ii->attr.version_id), "%s",
				 f.version_id);
		if (f.fetched_ms > ii->attr_ms)
			ii->attr_ms = f.fetched_ms;
		inode_set_attr_at(fs->inodes, ii->ino, &ii->attr, ii->attr_ms);
	} else {
		snprintf(etag, sizeof(etag), "%s", ii->attr.etag);
		if (fs_refresh_attr(fs, ii) || ii->denied || strcmp(etag, ii->attr.etag) ||
		    size != ii->attr.size) {
			membudget_put(fs->mem, &f.buf); /* another version now, or refused */
			return 0;
		}
	}
	membudget_transfer(head, &f.buf);
	*got = f.got;
	return 1;
}

int fs_ahead_lookup(fuse_req_t req, struct irsafs *fs, fuse_ino_t parent, const char *dir_key,
		    const char *name)
{
	/* Whatever its age: a stale one stays on the node while a stream holds it. */
	struct listing *l = fs->ahead ? inode_get_listing(fs->inodes, parent, LLONG_MAX) : NULL;
	const struct listing_entry *ent = l ? listing_find(l, name) : NULL;
	struct dirahead_file info;
	struct store_attr a;
	int fresh, answered = 0;
	char *key;

	if (!ent || ent->is_dir) {
		listing_release(l);
		return 0;
	}
	fresh = clock_mono_ms() - l->fetched_ms < fs->ttl_ms;
	listing_entry_attr(ent, &a);
	memset(&info, 0, sizeof(info));
	/* A fresh listing answers the lookup itself: only note where the reader is. */
	if (!dirahead_lookup(fs->ahead, dir_key, name, listing_ref(l), a.etag, a.size,
			     fresh ? NULL : &info) ||
	    clock_mono_ms() - info.fetched_ms >= fs->ttl_ms)
		goto out;
	/*
	 * The listing is older than the TTL, but a GET pinned to its ETag and
	 * size was answered within it: the file is still what the listing said,
	 * as the probe's own GET would have told (the probe's second question,
	 * whether a directory of that name appeared since, is not asked).
	 */
	if (info.content_type[0])
		snprintf(a.content_type, sizeof(a.content_type), "%s", info.content_type);
	if (info.version_id[0])
		snprintf(a.version_id, sizeof(a.version_id), "%s", info.version_id);
	key = fs_join(dir_key, name, "");
	if (key) {
		fs_count(&fs->counters.lookup_hits, 1);
		fs_reply_entry(req, key, 0, &a);
		answered = 1;
	}
	free(key);
out:
	listing_release(l);
	return answered;
}
