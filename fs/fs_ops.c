/*
 * The FUSE low-level operations.
 *
 * Reading a directory lists it (all pages) once and keeps that listing on
 * the directory's node for the metadata TTL, so `ls -l` costs the listing's
 * pages and no HEAD per entry: readdirplus hands the kernel each entry's
 * attributes from the listing, and a lookup inside a freshly listed directory
 * is answered from it. A lookup without a fresh listing asks S3 directly
 * (one ListObjectsV2 of "name/" with max-keys=1, then a HEAD of "name"), so a
 * path stays reachable by its full name even under a directory the role may
 * not list.
 *
 * Files are read with ranged GETs pinned to the ETag seen at open. Each open
 * file keeps one window of bytes: sequential reads grow it (1 MiB doubling to
 * 8 MiB), other reads fetch just what was asked, rounded up to 64 KiB.
 *
 * Every write-type operation answers EROFS.
 */
#include "fs/irsafs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "core/err.h"
#include "core/log.h"
#include "core/strutil.h"
#include "fs/inode.h"
#include "fs/listing.h"
#include "s3/store.h"

#define RA_FIRST (1u << 20)
#define RA_MAX (8u << 20)
#define RANDOM_ROUND (64u << 10)

struct fhandle {
	char *key;
	char etag[128];
	long long size;
	pthread_mutex_t lock;		/* guards the window */
	char *win;
	long long win_off;
	size_t win_len;
	size_t win_cap;
	long long next_off;		/* where a sequential read would start */
	size_t ra;			/* current read-ahead size */
};

static struct irsafs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void count(unsigned long long *c, unsigned long long n)
{
	__atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

static void fill_stat(const struct irsafs *fs, uint64_t ino, int is_dir,
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
static void reply_entry(fuse_req_t req, const char *key, int is_dir, const struct store_attr *a)
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
	fill_stat(fs, ino, is_dir, a, &e.attr);
	if (fuse_reply_entry(req, &e) == -ENOENT) {
		/* The lookup was interrupted: the kernel never saw the reference. */
		inode_forget(fs->inodes, ino, 1);
	}
}

static void reply_negative(fuse_req_t req)
{
	struct fuse_entry_param e;

	/* ino 0 with a timeout lets the kernel cache the miss. */
	memset(&e, 0, sizeof(e));
	e.entry_timeout = fs_of(req)->ttl;
	fuse_reply_entry(req, &e);
}

static char *join(const char *a, const char *b, const char *c)
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

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
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

	count(&fs->counters.lookups, 1);
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
			reply_negative(req);
		} else {
			char *key = join(pi.key, name, ent->is_dir ? "/" : "");

			if (key)
				reply_entry(req, key, ent->is_dir, &ent->attr);
			else
				fuse_reply_err(req, ENOMEM);
			free(key);
		}
		listing_release(l);
		goto out;
	}

	dir_key = join(pi.key, name, "/");
	file_key = join(pi.key, name, "");
	if (!dir_key || !file_key) {
		fuse_reply_err(req, ENOMEM);
		goto out;
	}
	/* A directory shadows a file of the same name, so ask about it first. */
	list_rc = dir_exists(fs, dir_key, &e);
	if (list_rc == 1) {
		memset(&a, 0, sizeof(a));
		reply_entry(req, dir_key, 1, &a);
		goto out;
	}
	if (list_rc < 0 && list_rc != -EACCES) {
		fuse_reply_err(req, -list_rc);
		goto out;
	}
	rc = store_stat(fs->store, file_key, &a, &e);
	if (rc == 0) {
		reply_entry(req, file_key, 0, &a);
	} else if (rc == -ENOENT && list_rc == -EACCES) {
		/* Not a file, and we may not look for a directory: it may be one. */
		fuse_reply_err(req, EACCES);
	} else if (rc == -ENOENT) {
		reply_negative(req);
	} else {
		fuse_reply_err(req, -rc);
	}
out:
	free(dir_key);
	free(file_key);
	inode_info_cleanup(&pi);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	inode_forget(fs_of(req)->inodes, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count_, struct fuse_forget_data *forgets)
{
	size_t i;

	for (i = 0; i < count_; i++)
		inode_forget(fs_of(req)->inodes, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

/* Refresh a file's attributes with a HEAD when they are older than the TTL. */
static int refresh_attr(struct irsafs *fs, struct inode_info *ii)
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

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct irsafs *fs = fs_of(req);
	struct inode_info ii;
	struct stat st;
	int rc;

	rc = inode_get(fs->inodes, ino, &ii);
	if (!rc)
		rc = refresh_attr(fs, &ii);
	if (rc) {
		fuse_reply_err(req, -rc);
	} else {
		fill_stat(fs, ino, ii.is_dir, &ii.attr, &st);
		fuse_reply_attr(req, &st, fs->ttl);
	}
	inode_info_cleanup(&ii);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct irsafs *fs = fs_of(req);
	struct fhandle *fh = NULL;
	struct inode_info ii;
	int rc;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & (O_TRUNC | O_CREAT))) {
		fuse_reply_err(req, EROFS);
		return;
	}
	rc = inode_get(fs->inodes, ino, &ii);
	if (!rc && ii.is_dir)
		rc = -EISDIR;
	if (!rc)
		rc = refresh_attr(fs, &ii);
	if (rc)
		goto fail;
	fh = calloc(1, sizeof(*fh));
	if (!fh) {
		rc = -ENOMEM;
		goto fail;
	}
	fh->key = ii.key;
	ii.key = NULL;
	snprintf(fh->etag, sizeof(fh->etag), "%s", ii.attr.etag);
	fh->size = ii.attr.size;
	fh->ra = RA_FIRST;
	pthread_mutex_init(&fh->lock, NULL);
	/* Same object as the last open: the page cache may keep its pages. */
	fi->keep_cache = inode_note_open(fs->inodes, ino, fh->etag);
	fi->fh = (uint64_t)(uintptr_t)fh;
	count(&fs->counters.opens, 1);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		pthread_mutex_destroy(&fh->lock);
		free(fh->key);
		free(fh);
	}
	inode_info_cleanup(&ii);
	return;
fail:
	inode_info_cleanup(&ii);
	fuse_reply_err(req, -rc);
}

/* Fill the window so that it covers [off, off+len). Called with fh->lock held. */
static int window_fill_locked(struct irsafs *fs, struct fhandle *fh, long long off, size_t len)
{
	struct s3_error e;
	size_t want, got = 0;
	int rc;

	if (off == fh->next_off) {
		want = fh->ra;
		if (fh->ra < RA_MAX)
			fh->ra *= 2;
	} else {
		want = (len + RANDOM_ROUND - 1) / RANDOM_ROUND * RANDOM_ROUND;
		fh->ra = RA_FIRST;
	}
	if (want < len)
		want = len;
	if ((long long)want > fh->size - off)
		want = (size_t)(fh->size - off);
	if (want > fh->win_cap) {
		char *w = realloc(fh->win, want);

		if (!w)
			return -ENOMEM;
		fh->win = w;
		fh->win_cap = want;
	}
	fh->win_len = 0;
	rc = store_read_range(fs->store, fh->key, fh->etag, off, want, fh->win, &got, &e);
	if (rc)
		return rc;
	fh->win_off = off;
	fh->win_len = got;
	return 0;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fhandle *fh = (struct fhandle *)(uintptr_t)fi->fh;
	struct irsafs *fs = fs_of(req);
	size_t len, avail;
	int rc = 0;

	if (off >= fh->size || size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	len = size;
	if ((long long)len > fh->size - off)
		len = (size_t)(fh->size - off);
	pthread_mutex_lock(&fh->lock);
	if (!(off >= fh->win_off && off + (long long)len <= fh->win_off + (long long)fh->win_len))
		rc = window_fill_locked(fs, fh, off, len);
	if (rc) {
		pthread_mutex_unlock(&fh->lock);
		fuse_reply_err(req, -rc);
		return;
	}
	avail = off >= fh->win_off ? (size_t)(fh->win_off + (long long)fh->win_len - off) : 0;
	if (len > avail)
		len = avail; /* the object is shorter than it was said to be */
	fh->next_off = off + (long long)len;
	count(&fs->counters.bytes_read, len);
	fuse_reply_buf(req, fh->win + (off - fh->win_off), len);
	pthread_mutex_unlock(&fh->lock);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fhandle *fh = (struct fhandle *)(uintptr_t)fi->fh;

	pthread_mutex_destroy(&fh->lock);
	free(fh->win);
	free(fh->key);
	free(fh);
	fuse_reply_err(req, 0);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* Nothing is ever buffered for writing. */
	fuse_reply_err(req, 0);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct irsafs *fs = fs_of(req);
	struct inode_info ii;
	struct listing *l;
	struct s3_error e;
	int rc;

	rc = inode_get(fs->inodes, ino, &ii);
	if (!rc && !ii.is_dir)
		rc = -ENOTDIR;
	if (rc) {
		inode_info_cleanup(&ii);
		fuse_reply_err(req, -rc);
		return;
	}
	l = inode_get_listing(fs->inodes, ino, fs->ttl_ms);
	if (!l) {
		count(&fs->counters.listings, 1);
		rc = listing_fetch(fs->store, ii.key, fs->opts->list_page_size, &l, &e);
		if (!rc)
			inode_set_listing(fs->inodes, ino, l);
	}
	inode_info_cleanup(&ii);
	if (rc) {
		fuse_reply_err(req, -rc);
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
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = inode_get(fs->inodes, ino, &ii);
	if (rc) {
		free(out);
		fuse_reply_err(req, -rc);
		return;
	}
	/* Offsets: 0 ".", 1 "..", 2+k the k-th entry; each entry's off is the next one. */
	for (i = off; i < (off_t)l->n + 2; i++) {
		struct fuse_entry_param e;
		const char *name;
		int is_dir;
		uint64_t eino = 0;

		memset(&e, 0, sizeof(e));
		if (i < 2) {
			name = i == 0 ? "." : "..";
			is_dir = 1;
			fill_stat(fs, i == 0 ? ino : FUSE_ROOT_ID, 1, NULL, &e.attr);
		} else {
			const struct listing_entry *ent = &l->e[i - 2];

			name = ent->name;
			is_dir = ent->is_dir;
			fill_stat(fs, 0, is_dir, &ent->attr, &e.attr);
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
			const struct listing_entry *ent = &l->e[i - 2];

			key = join(ii.key, name, is_dir ? "/" : "");
			eino = key ? inode_lookup_ref(fs->inodes, key, is_dir,
						      is_dir ? NULL : &ent->attr) : 0;
			free(key);
			if (!eino) {
				if (!used) {
					rc = -ENOMEM;
				}
				break;
			}
			e.ino = eino;
			e.attr.st_ino = eino;
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
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, out, used);
	free(out);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	listing_release((struct listing *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	/* A bucket has no size; report a large, constant, read-only file system. */
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 1 << 20;
	sv.f_frsize = 1 << 20;
	sv.f_blocks = 1ULL << 32;
	sv.f_bfree = 1ULL << 32;
	sv.f_bavail = 1ULL << 32;
	sv.f_files = 1ULL << 32;
	sv.f_ffree = 1ULL << 32;
	sv.f_favail = 1ULL << 32;
	sv.f_namemax = NAME_MAX_BYTES;
	sv.f_flag = ST_RDONLY | ST_NOSUID | ST_NODEV;
	fuse_reply_statfs(req, &sv);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	fuse_reply_err(req, ENODATA);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, 0);
	else
		fuse_reply_buf(req, NULL, 0);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* Always readdirplus: ls -l then costs no per-entry lookups. */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

/* Write-type operations: a read-only file system says EROFS to each. */
static void op_erofs_mknod(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, dev_t r)
{
	fuse_reply_err(req, EROFS);
}

static void op_erofs_mkdir(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m)
{
	fuse_reply_err(req, EROFS);
}

static void op_erofs_unlink(fuse_req_t req, fuse_ino_t p, const char *n)
{
	fuse_reply_err(req, EROFS);
}

static void op_erofs_symlink(fuse_req_t req, const char *l, fuse_ino_t p, const char *n)
{
	fuse_reply_err(req, EROFS);
}

static void op_erofs_rename(fuse_req_t req, fuse_ino_t p, const char *n, fuse_ino_t np,
			    const char *nn, unsigned int f)
{
	fuse_reply_err(req, EROFS);
}

static void op_erofs_link(fuse_req_t req, fuse_ino_t i, fuse_ino_t np, const char *nn)
{
	fuse_reply_err(req, EROFS);
}

static void op_erofs_setattr(fuse_req_t req, fuse_ino_t i, struct stat *a, int s,
			     struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void op_erofs_write(fuse_req_t req, fuse_ino_t i, const char *b, size_t s, off_t o,
			   struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void op_erofs_setxattr(fuse_req_t req, fuse_ino_t i, const char *n, const char *v,
			      size_t s, int f)
{
	fuse_reply_err(req, EROFS);
}

static void op_erofs_removexattr(fuse_req_t req, fuse_ino_t i, const char *n)
{
	fuse_reply_err(req, EROFS);
}

static void op_erofs_create(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m,
			    struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void op_erofs_fallocate(fuse_req_t req, fuse_ino_t i, int m, off_t o, off_t l,
			       struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

const struct fuse_lowlevel_ops irsafs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.flush = op_flush,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.mknod = op_erofs_mknod,
	.mkdir = op_erofs_mkdir,
	.unlink = op_erofs_unlink,
	.rmdir = op_erofs_unlink,
	.symlink = op_erofs_symlink,
	.rename = op_erofs_rename,
	.link = op_erofs_link,
	.setattr = op_erofs_setattr,
	.write = op_erofs_write,
	.setxattr = op_erofs_setxattr,
	.removexattr = op_erofs_removexattr,
	.create = op_erofs_create,
	.fallocate = op_erofs_fallocate,
};
