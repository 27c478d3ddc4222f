/*
 * Files: open, read, release.
 *
 * Every open file is a per-open context of the store (store_open): pinned to
 * the ETag seen at open, so every GET carries If-Match and a changed object
 * gives ESTALE on the old handle, never mixed bytes. In the mount's stack
 * the read-ahead opens it (cache/readahead.h): sequential reads are served
 * from a growing window of parallel ranged GETs, a seek fetches just the
 * bytes asked for, and a file the lookup fetched the first bytes of
 * (--lookup-read, cache/headcache.h) starts with them. The reply is sent
 * straight from the store's buffers (fuse_reply_iov), without another copy.
 *
 * A read whose reader is being killed (the kernel sends FUSE_INTERRUPT, and a
 * fatal signal is pending) is answered with EINTR at once: its wait for a
 * part ends and its own GET is aborted (the read's cancel flag), so a killed
 * reader never waits out a stalled server. A live reader's read goes on.
 */
#include "fs/fs_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/strutil.h"
#include "fs/initext.h"
#include "fs/inode.h"
#include "s3/store.h"

struct fhandle {
	struct fs_handle h;	/* first: fi->fh points to both */
	char *key;
	struct store_file *f;
	int direct;		/* opened with direct I/O */
	long long next;		/* atomic: where the last read ended */
	int small_before;	/* atomic: the last read was under SMALL_READ */
	unsigned small;		/* atomic: small reads after small reads, in order */
};

static void fhandle_close(struct irsafs *fs, struct fs_handle *h)
{
	struct fhandle *fh = (struct fhandle *)h;

	(void)fs;
	store_file_close(fh->f);
	free(fh->key);
	free(fh);
}

void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct irsafs *fs = fs_of(req);
	struct fhandle *fh = NULL;
	struct inode_info ii;
	int rc;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & (O_TRUNC | O_CREAT))) {
		fs_reply_err(req, METRICS_FS_OPEN, EROFS);
		return;
	}
	rc = inode_get(fs->inodes, ino, &ii);
	if (!rc && ii.is_dir)
		rc = -EISDIR;
	if (!rc)
		rc = fs_refresh_attr(fs, &ii);
	if (!rc)
		rc = fs_open_check(fs, &ii); /* denied, or archived (fs_node.c) */
	if (rc)
		goto fail;
	fh = calloc(1, sizeof(*fh));
	if (!fh) {
		rc = -ENOMEM;
		goto fail;
	}
	/* The lookup may have brought the first bytes already: the store knows. */
	fh->f = store_open(fs->store, ii.key, &ii.attr, NULL);
	if (!fh->f) {
		free(fh);
		rc = -ENOMEM;
		goto fail;
	}
	fh->key = ii.key;
	ii.key = NULL;
	/* Same object as the last open: the page cache may keep its pages. */
	fi->keep_cache = inode_note_open(fs->inodes, ino, ii.attr.etag);
	/* A big object streams past the page cache (--direct-io-size). */
	if ((unsigned long long)ii.attr.size >= fs->cfg.direct_io_size &&
	    (fs->cfg.direct_io_given || initext_direct_io_mmap()))
		fi->direct_io = fh->direct = 1;
	fh->h.close = fhandle_close;
	fi->fh = (uint64_t)(uintptr_t)fh;
	fs_count(&fs->counters.opens, 1);
	fs_handle_add(fs, &fh->h);
	/* -ENOENT: the request was interrupted and is gone; no RELEASE will come. */
	if (fuse_reply_open(req, fi) == -ENOENT)
		fs_handle_close(fs, &fh->h);
	inode_info_cleanup(&ii);
	return;
fail:
	inode_info_cleanup(&ii);
	fs_reply_err(req, METRICS_FS_OPEN, -rc);
}

/*
 * With direct I/O there is no kernel read-ahead: each read() is a round trip
 * to irsafs, whatever its size. A reader that streams a big object through
 * stdio's or Java's 4-8 KiB buffers then runs at a fraction of what large
 * reads get (measured 2026-12-04, 1 GiB on radosgw: 137-168 MB/s at 4 KiB,
 * 950-1,040 at 128 KiB, 646-681 at 4 KiB through the page cache). Count such
 * reads, and once per mount, when one handle has made SMALL_READS_HINT of
 * them, say what they cost and the way out. Random small reads are not
 * counted (the page cache would not help them), nor the short piece the
 * kernel splits off a large read into an unaligned buffer: a small read
 * counts when the one before it on the handle was small and ended where it
 * starts.
 */
#define SMALL_READ (32u << 10)
#define SMALL_READS_HINT 256u

static void note_direct_read(struct irsafs *fs, struct fhandle *fh, off_t off, size_t size,
			     size_t got)
{
	long long last = __atomic_exchange_n(&fh->next, (long long)off + (long long)got,
					     __ATOMIC_RELAXED);
	int small = size < SMALL_READ && got == size;

	if (!__atomic_exchange_n(&fh->small_before, small, __ATOMIC_RELAXED) || !small ||
	    (long long)off != last)
		return;
	fs_count(&fs->counters.small_direct_reads, 1);
	if (__atomic_add_fetch(&fh->small, 1, __ATOMIC_RELAXED) != SMALL_READS_HINT ||
	    __atomic_exchange_n(&fs->small_reads_told, 1, __ATOMIC_RELAXED))
		return;
	log_op(LOG_NOTICE, &(struct log_fields){ .op = "read", .bucket = fs->cfg.bucket,
	       .key = fh->key },
	       "s3://%s/%s is read %zu bytes at a time with direct I/O (it is "
	       "--direct-io-size or larger): each read is a round trip to irsafs, with no "
	       "kernel read-ahead; read larger blocks, or raise --direct-io-size (off: "
	       "never) to let the page cache gather such reads",
	       fs->cfg.bucket, fh->key, size);
}

/* A read's interrupt state: set from libfuse's thread, read by the reader. */
struct read_intr {
	struct store_file *f;
	int cancel;		/* atomic */
};

/*
 * The kernel interrupts the read: its reader got a signal. A reader that is
 * being killed waits in D state for our answer, so its read ends now (EINTR,
 * its own GET aborted). Any other signal (a handler ran) must not turn into
 * an error: the read goes on (no file operation returns EINTR to a live
 * reader). A reader in another PID namespace (pid 0) cannot be told apart
 * and is answered when its read ends, within its budget (as opendir does).
 */
static void on_read_interrupt(fuse_req_t req, void *data)
{
	struct read_intr *ri = data;
	pid_t tid = fuse_req_ctx(req)->pid;

	if (tid <= 0 || !fs_reader_dying(tid))
		return;
	__atomic_store_n(&ri->cancel, 1, __ATOMIC_RELEASE);
	store_file_interrupt(ri->f);
}

void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	struct fhandle *fh = (struct fhandle *)(uintptr_t)fi->fh;
	struct store_file *f = fh->f;	/* fh may be released once the reply is out */
	struct irsafs *fs = fs_of(req);
	struct read_intr ri = { .f = f };
	struct store_error e;
	struct store_span sp;
	int rc;

	/* Runs on_read_interrupt now if the interrupt came first. */
	fuse_req_interrupt_func(req, on_read_interrupt, &ri);
	rc = store_file_read(f, off, size, &ri.cancel, &sp, &e);
	/* After this no callback runs or will run: ri may go. */
	fuse_req_interrupt_func(req, NULL, NULL);
	if (rc) {
		if (rc == -EACCES) /* show it as "----------" (fs_node.c) */
			fs_note_denial(fs, ino, fh->key, &e);
		if (rc == -ESTALE)
			log_op_once(LOG_WARNING, &(struct log_fields){ .op = "read", .err = ESTALE,
				    .bucket = fs->cfg.bucket, .key = fh->key },
				    "s3://%s/%s changed since it was opened: reads on that handle "
				    "fail with ESTALE; open the file again", fs->cfg.bucket,
				    fh->key);
		fs_reply_err(req, METRICS_FS_READ, -rc);
		return;
	}
	fs_count(&fs->counters.bytes_read, sp.len);
	fs_count(&fs->counters.reads, 1);
	if (fh->direct)
		note_direct_read(fs, fh, off, size, sp.len);
	if (sp.niov)
		fuse_reply_iov(req, sp.iov, sp.niov);
	else
		fuse_reply_buf(req, NULL, 0);
	store_span_release(f, &sp);
}

void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fhandle *fh = (struct fhandle *)(uintptr_t)fi->fh;

	(void)ino;
	fs_handle_close(fs_of(req), &fh->h);
	fuse_reply_err(req, 0);
}
