/*
 * Names: lookup, forget and getattr.
 *
 * A lookup inside a directory listed within the metadata TTL is answered from
 * that listing. Otherwise it asks S3 directly: one ListObjectsV2 of "name/"
 * with max-keys=1 (a directory shadows a file, so it goes first), then a HEAD
 * of "name". That keeps a path reachable by its full name even under a
 * directory the role may not list.
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

struct irsafs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

void fs_count(unsigned long long *c, unsigned long long n)
{
	__atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

void fs_fill_stat(const struct irsafs *fs, uint64_t ino, int is_dir,
		      const struct store_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = fs->opts->uid;
	st->st_gid = fs->opts->gid;
	st->st_blksize = 1 << 20;
	if (is_dir) {
		st->st_mode = S_IFDIR | fs->opts->dir_mode;
		st->st_nlink = 2;
		st->st_size = 0;
		st->st_mtim = fs->mount_time;
	} else {
		st->st_mode = S_IFREG | fs->opts->file_mode;
		st->st_nlink = 1;
		st->st_size = a->size;
		st->st_blocks = (a->size + 511) / 512;
		st->st_mtim = a->mtime;
	}
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

/* Reply to a lookup with node (key, is_dir, attr), taking one reference. */
void fs_reply_entry(fuse_req_t req, const char *key, int is_dir, const struct store_attr *a)
{
	struct irsafs *fs = fs_of(req);
	struct fuse_entry_param e;
	uint64_t ino;

	ino = inode_lookup_ref(fs->inodes, key, is_dir, a);
	if (!ino) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.attr_timeout = fs->ttl;
	e.entry_timeout = fs->ttl;
	fs_fill_stat(fs, ino, is_dir, a, &e.attr);
	if (fuse_reply_entry(req, &e) == -ENOENT) {
		/* The lookup was interrupted: the kernel never saw the reference. */
		inode_forget(fs->inodes, ino, 1);
	}
}

void fs_reply_negative(fuse_req_t req)
{
	struct fuse_entry_param e;

	/* ino 0 with a timeout lets the kernel cache the miss. */
	memset(&e, 0, sizeof(e));
	e.entry_timeout = fs_of(req)->ttl;
	fuse_reply_entry(req, &e);
}

char *fs_join(const char *a, const char *b, const char *c)
{
	char *s;

	if (asprintf(&s, "%s%s%s", a, b, c) < 0)
		return NULL;
	return s;
}

/* Does anything exist under dir_key? 1 yes, 0 no, or a negative errno. */
static int dir_exists(struct irsafs *fs, const char *dir_key, struct s3_error *e)
{
	struct s3_list_page page;
	int rc, found;

	rc = store_list_page(fs->store, dir_key, NULL, 1, &page, e);
	if (rc)
		return rc;
	found = page.nobjects > 0 || page.nprefixes > 0;
	s3_list_page_cleanup(&page);
	return found;
}

void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct irsafs *fs = fs_of(req);
	const struct listing_entry *ent;
	struct inode_info pi;
	struct listing *l;
	struct store_attr a;
	struct s3_error e;
	char *dir_key = NULL, *file_key = NULL;
	size_t len = strlen(name);
	int rc, list_rc;

	fs_count(&fs->counters.lookups, 1);
	if (len > NAME_MAX_BYTES) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (!listing_name_ok(name, len)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	rc = inode_get(fs->inodes, parent, &pi);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	l = inode_get_listing(fs->inodes, parent, fs->ttl_ms);
	if (l) {
		ent = listing_find(l, name);
		if (!ent) {
			fs_reply_negative(req);
		} else {
			char *key = fs_join(pi.key, name, ent->is_dir ? "/" : "");

			if (key)
				fs_reply_entry(req, key, ent->is_dir, &ent->attr);
			else
				fuse_reply_err(req, ENOMEM);
			free(key);
		}
		listing_release(l);
		goto out;
	}

	dir_key = fs_join(pi.key, name, "/");
	file_key = fs_join(pi.key, name, "");
	if (!dir_key || !file_key) {
		fuse_reply_err(req, ENOMEM);
		goto out;
	}
	/* A directory shadows a file of the same name, so ask about it first. */
	list_rc = dir_exists(fs, dir_key, &e);
	if (list_rc == 1) {
		memset(&a, 0, sizeof(a));
		fs_reply_entry(req, dir_key, 1, &a);
		goto out;
	}
	if (list_rc < 0 && list_rc != -EACCES) {
		fuse_reply_err(req, -list_rc);
		goto out;
	}
	rc = store_stat(fs->store, file_key, &a, &e);
	if (rc == 0) {
		fs_reply_entry(req, file_key, 0, &a);
	} else if (rc == -ENOENT && list_rc == -EACCES) {
		/* Not a file, and we may not look for a directory: it may be one. */
		fuse_reply_err(req, EACCES);
	} else if (rc == -ENOENT) {
		fs_reply_negative(req);
	} else {
		fuse_reply_err(req, -rc);
	}
out:
	free(dir_key);
	free(file_key);
	inode_info_cleanup(&pi);
}

void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	inode_forget(fs_of(req)->inodes, ino, nlookup);
	fuse_reply_none(req);
}

void fs_op_forget_multi(fuse_req_t req, size_t count_, struct fuse_forget_data *forgets)
{
	size_t i;

	for (i = 0; i < count_; i++)
		inode_forget(fs_of(req)->inodes, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

/* Refresh a file's attributes with a HEAD when they are older than the TTL. */
int fs_refresh_attr(struct irsafs *fs, struct inode_info *ii)
{
	struct s3_error e;
	int rc;

	if (ii->is_dir || clock_mono_ms() - ii->attr_ms < fs->ttl_ms)
		return 0;
	rc = store_stat(fs->store, ii->key, &ii->attr, &e);
	if (rc)
		return rc;
	ii->attr_ms = clock_mono_ms();
	inode_set_attr(fs->inodes, ii->ino, &ii->attr);
	return 0;
}

void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct irsafs *fs = fs_of(req);
	struct inode_info ii;
	struct stat st;
	int rc;

	rc = inode_get(fs->inodes, ino, &ii);
	if (!rc)
		rc = fs_refresh_attr(fs, &ii);
	if (rc) {
		fuse_reply_err(req, -rc);
	} else {
		fs_fill_stat(fs, ino, ii.is_dir, &ii.attr, &st);
		fuse_reply_attr(req, &st, fs->ttl);
	}
	inode_info_cleanup(&ii);
}

