/*
 * Files: open, read, release.
 *
 * Reads are ranged GETs pinned to the ETag seen at open (If-Match), so a
 * changed object gives ESTALE on the old handle, never mixed bytes. Each open
 * file keeps one window of bytes: sequential reads grow it (1 MiB doubling to
 * 8 MiB), other reads fetch just what was asked, rounded up to 64 KiB.
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

void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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
		rc = fs_refresh_attr(fs, &ii);
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
	fs_count(&fs->counters.opens, 1);
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

void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
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
	fs_count(&fs->counters.bytes_read, len);
	fuse_reply_buf(req, fh->win + (off - fh->win_off), len);
	pthread_mutex_unlock(&fh->lock);
}

void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fhandle *fh = (struct fhandle *)(uintptr_t)fi->fh;

	pthread_mutex_destroy(&fh->lock);
	free(fh->win);
	free(fh->key);
	free(fh);
	fuse_reply_err(req, 0);
}

void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* Nothing is ever buffered for writing. */
	fuse_reply_err(req, 0);
}

