/*
 * Directories: opendir lists the directory (all pages) once and keeps the
 * listing on the directory's node for the metadata TTL; readdirplus hands the
 * kernel every entry's attributes from it, so `ls -l` costs the listing's
 * pages and no HEAD per entry. A refused listing is remembered on the node
 * for the TTL: the directory then shows d--x--x--x and opendir answers
 * EACCES without asking S3 again.
 */
#include "fs/fs_i.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/log.h"
#include "core/strutil.h"
#include "fs/inode.h"
#include "fs/listing.h"
#include "s3/store.h"

void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct irsafs *fs = fs_of(req);
	struct inode_info ii;
	struct listing *l;
	struct s3_error e;
	int rc;

	fs_tune_readahead(fs);
	rc = inode_get(fs->inodes, ino, &ii);
	if (!rc && !ii.is_dir)
		rc = -ENOTDIR;
	if (rc) {
		inode_info_cleanup(&ii);
		fs_reply_err(req, METRICS_FS_OPENDIR, -rc);
		return;
	}
	l = ii.denied ? NULL : inode_get_listing(fs->inodes, ino, fs->ttl_ms);
	if (ii.denied) {
		rc = -EACCES;
	} else if (!l) {
		fs_count(&fs->counters.listings, 1);
		rc = listing_fetch(fs->store, ii.key, fs->opts->list_page_size, &l, &e);
		if (!rc)
			inode_set_listing(fs->inodes, ino, l);
		else if (rc == -EACCES)
			fs_note_denial(fs, ino, "s3:ListBucket", ii.key, 1, &e);
	}
	inode_info_cleanup(&ii);
	if (rc) {
		fs_reply_err(req, METRICS_FS_OPENDIR, -rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)l;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) == -ENOENT)
		listing_release(l);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, int plus)
{
	struct listing *l = (struct listing *)(uintptr_t)fi->fh;
	struct irsafs *fs = fs_of(req);
	struct inode_info ii;
	size_t used = 0, n;
	char *out, *key;
	off_t i;
	int rc;

	out = malloc(size);
	if (!out) {
		fs_reply_err(req, METRICS_FS_READDIR, ENOMEM);
		return;
	}
	rc = inode_get(fs->inodes, ino, &ii);
	if (rc) {
		free(out);
		fs_reply_err(req, METRICS_FS_READDIR, -rc);
		return;
	}
	/* Offsets: 0 ".", 1 "..", 2+k the k-th entry; each entry's off is the next one. */
	for (i = off; i < (off_t)l->n + 2; i++) {
		struct fuse_entry_param e;
		struct store_attr a;
		const char *name;
		int is_dir;
		uint64_t eino = 0;

		memset(&e, 0, sizeof(e));
		if (i < 2) {
			name = i == 0 ? "." : "..";
			is_dir = 1;
			fs_fill_stat(fs, i == 0 ? ino : FUSE_ROOT_ID, 1, NULL, &e.attr);
		} else {
			const struct listing_entry *ent = &l->e[i - 2];

			name = ent->name;
			is_dir = ent->is_dir;
			listing_entry_attr(ent, &a);
			fs_fill_stat(fs, 0, is_dir, &a, &e.attr);
		}
		if (!plus) {
			/* glibc skips d_ino 0; the kernel fixes up ".." itself. */
			e.attr.st_ino = i == 0 ? ino : FUSE_ROOT_ID;
			n = fuse_add_direntry(req, out + used, size - used, name, &e.attr, i + 1);
			if (n > size - used)
				break;
			used += n;
			continue;
		}
		if (i >= 2) {
			key = fs_join(ii.key, name, is_dir ? "/" : "");
			eino = key ? inode_lookup_ref(fs->inodes, key, is_dir,
						      is_dir ? NULL : &a) : 0;
			free(key);
			if (!eino) {
				if (!used) {
					rc = -ENOMEM;
				}
				break;
			}
			e.ino = eino;
			e.attr.st_ino = eino;
			if (inode_is_denied(fs->inodes, eino))
				fs_stat_denied(&e.attr);
			e.attr_timeout = fs->ttl;
			e.entry_timeout = fs->ttl;
		} else {
			/* "." and "..": no lookup count; glibc skips d_ino 0. */
			e.attr.st_ino = i == 0 ? ino : FUSE_ROOT_ID;
		}
		n = fuse_add_direntry_plus(req, out + used, size - used, name, &e, i + 1);
		if (n > size - used) {
			if (eino)
				inode_forget(fs->inodes, eino, 1);
			break;
		}
		used += n;
	}
	inode_info_cleanup(&ii);
	if (rc)
		fs_reply_err(req, METRICS_FS_READDIR, -rc);
	else
		fuse_reply_buf(req, out, used);
	free(out);
}

void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	listing_release((struct listing *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

