/*
 * Directories: opendir opens the directory in the store (store_dir_open: in
 * the mount's stack, the metadata cache's, which starts or joins the listing
 * and answers once its first page is in, or at once from a listing kept for
 * the TTL); readdir(plus) hands out the entries as the pages arrive
 * (store_dir_read, store_dir_wait), and readdirplus gives the kernel every
 * entry's attributes from them, so `ls -l` costs the listing's pages and no
 * HEAD per entry. A refused listing is remembered on the directory's node for
 * the TTL: the directory then shows d--x--x--x and opendir answers EACCES
 * without asking S3 again.
 *
 * Neither a bad directory nor a reader waiting for the next page holds a
 * FUSE worker: the store answers the waiting opendir or readdir from its
 * fetch thread; a killed reader is answered EINTR at once (store_dir_cancel).
 * The listing's bounds (pages, time, tokens, memory) are the store's
 * (cache/listing.h, cache/dirfetch.h).
 *
 * Offsets: 0 is ".", 1 "..", 2+k the listing's k-th entry (each entry's d_off
 * is the next one's). They stay valid for seeks back: a listing read in a
 * window that let an entry go is read again (cache/dirfetch.h).
 */
#include "fs/fs_i.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/strutil.h"
#include "fs/inode.h"
#include "s3/store.h"

/* One opendir waiting for the first page of its directory. */
struct dir_open {
	struct store_dir_waiter w;	/* first: the waiter is cast back */
	struct irsafs *fs;
	fuse_req_t req;
	uint64_t ino;
	struct fuse_file_info fi;
	struct store_dir_reader *r;
};

/* An open directory: what fi->fh points to. */
struct dhandle {
	struct fs_handle h;	/* first */
	struct store_dir_reader *r;
};

static void dhandle_close(struct irsafs *fs, struct fs_handle *h)
{
	struct dhandle *dh = (struct dhandle *)h;

	store_dir_close(fs->store, dh->r);
	free(dh);
}

static void reply_open(fuse_req_t req, struct fuse_file_info *fi, struct irsafs *fs,
		       struct store_dir_reader *r)
{
	struct dhandle *dh = malloc(sizeof(*dh));

	if (!dh) {
		store_dir_close(fs->store, r);
		fs_reply_err(req, METRICS_FS_OPENDIR, ENOMEM);
		return;
	}
	dh->h.close = dhandle_close;
	dh->r = r;
	fi->fh = (uint64_t)(uintptr_t)dh;
	fi->cache_readdir = 0;
	fs_handle_add(fs, &dh->h);
	/* -ENOENT: the request was interrupted and is gone; no RELEASEDIR will come. */
	if (fuse_reply_open(req, fi) == -ENOENT)
		fs_handle_close(fs, &dh->h);
}

static void dir_open_done(struct store_dir_waiter *w, int rc, const struct store_error *e)
{
	struct dir_open *o = (struct dir_open *)w;

	/* The directory shows the denial (d--x--x--x) for the TTL. */
	if (rc == -EACCES && e && e->cls == ERR_DENIED)
		fs_note_denial(o->fs, o->ino, e->key, e);
	if (rc)
		fs_reply_err(o->req, METRICS_FS_OPENDIR, -rc);
	else
		reply_open(o->req, &o->fi, o->fs, o->r);
	free(o);
}

/*
 * libfuse calls this when the kernel interrupts an opendir or a readdir that
 * waits for a page: its reader got a signal. A reader that is being killed
 * waits in D state for our answer, so it gets EINTR at once. Any other signal
 * (a handler ran: SIGINT in Python, Go's preemption signal, a profiler's
 * timer) must not turn into an error: no file operation returns EINTR
 * (README, the errno contract). So the request goes on and is answered by the
 * fetch. A reader whose pid we cannot see (pid 0: another PID namespace, as
 * the app container of a Pod) cannot be told apart, so it too waits for the
 * fetch, which its bounds end.
 */
static void dir_interrupted(fuse_req_t req, void *data)
{
	struct irsafs *fs = data;
	pid_t tid = fuse_req_ctx(req)->pid;

	if (tid <= 0 || !fs_reader_dying(tid))
		return;
	store_dir_cancel(fs->store, req);
}

/*
 * The opendir opens its directory and this FUSE thread goes back to the
 * loop: a fresh cached listing answers it at its arm, else the fetch thread
 * does when the first page is in, or the interrupt callback when the reader
 * is killed first.
 */
void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct irsafs *fs = fs_of(req);
	struct inode_info ii;
	struct dir_open *o;
	int rc;

	fs_tune_readahead(fs);
	rc = inode_get(fs->inodes, ino, &ii);
	if (!rc && !ii.is_dir)
		rc = -ENOTDIR;
	if (!rc && ii.denied)
		rc = -EACCES;
	if (rc)
		goto fail;
	o = calloc(1, sizeof(*o));
	if (!o) {
		rc = -ENOMEM;
		goto fail;
	}
	o->w.done = dir_open_done;
	o->w.tag = req;
	o->fs = fs;
	o->req = req;
	o->ino = ino;
	o->fi = *fi;
	rc = store_dir_open(fs->store, ii.key, &o->r, &o->w);
	inode_info_cleanup(&ii);
	if (rc < 0) {
		free(o);
		fs_reply_err(req, METRICS_FS_OPENDIR, -rc);
		return;
	}
	if (rc == 1)
		fs_count(&fs->counters.listings, 1);
	fuse_req_interrupt_func(req, dir_interrupted, fs);
	store_dir_arm(fs->store, &o->w);
	return;
fail:
	inode_info_cleanup(&ii);
	fs_reply_err(req, METRICS_FS_OPENDIR, -rc);
}

/* One readdir(plus): answered now, or by the fetch thread when its entries come. */
struct dir_read {
	struct store_dir_waiter w;	/* first: the waiter is cast back */
	fuse_req_t req;
	struct irsafs *fs;
	struct store_dir_reader *r;
	fuse_ino_t ino;
	char *dir_key;			/* readdirplus: the entries' keys start with it */
	int plus;
	off_t off;			/* the kernel's offset */
	size_t size, used;
	char *out;
};

static void dir_read_free(struct dir_read *rd)
{
	free(rd->out);
	free(rd->dir_key);
	free(rd);
}

/* "." and "..": no lookup count; glibc skips d_ino 0, and the kernel fixes up "..". */
static int add_dots(struct dir_read *rd)
{
	struct fuse_entry_param e;
	off_t i;
	size_t n;

	for (i = rd->off; i < 2; i++) {
		memset(&e, 0, sizeof(e));
		fs_fill_stat(rd->fs, i == 0 ? rd->ino : FUSE_ROOT_ID, 1, NULL, &e.attr);
		e.attr.st_ino = i == 0 ? rd->ino : FUSE_ROOT_ID;
		if (rd->plus)
			n = fuse_add_direntry_plus(rd->req, rd->out + rd->used, rd->size - rd->used,
						   i == 0 ? "." : "..", &e, i + 1);
		else
			n = fuse_add_direntry(rd->req, rd->out + rd->used, rd->size - rd->used,
					      i == 0 ? "." : "..", &e.attr, i + 1);
		if (n > rd->size - rd->used)
			return 1;
		rd->used += n;
	}
	return 0;
}

/* One listing entry into the reply (store_dirent_fn: under the listing's lock). */
static int add_entry(void *ctx, size_t k, const struct store_dirent *ent)
{
	struct dir_read *rd = ctx;
	struct irsafs *fs = rd->fs;
	struct fuse_entry_param e;
	struct store_attr a;
	off_t next = (off_t)k + 3;
	uint64_t eino;
	char *key;
	size_t n;

	memset(&e, 0, sizeof(e));
	if (!rd->plus) {
		/* Only the type counts; glibc skips d_ino 0. */
		e.attr.st_mode = ent->is_dir ? S_IFDIR : S_IFREG;
		e.attr.st_ino = FUSE_ROOT_ID;
		n = fuse_add_direntry(rd->req, rd->out + rd->used, rd->size - rd->used, ent->name,
				      &e.attr, next);
		if (n > rd->size - rd->used)
			return 1;
		rd->used += n;
		return 0;
	}
	store_dirent_attr(ent, &a);
	fs_fill_stat(fs, 0, ent->is_dir, &a, &e.attr);
	key = fs_join(rd->dir_key, ent->name, ent->is_dir ? "/" : "");
	eino = key ? inode_lookup_ref(fs->inodes, key, ent->is_dir, ent->is_dir ? NULL : &a) : 0;
	free(key);
	if (!eino)
		return -ENOMEM;
	e.ino = eino;
	e.attr.st_ino = eino;
	if (inode_is_denied(fs->inodes, eino))
		fs_stat_denied(&e.attr);
	e.attr_timeout = fs->ttl;
	e.entry_timeout = fs->ttl;
	n = fuse_add_direntry_plus(rd->req, rd->out + rd->used, rd->size - rd->used, ent->name,
				   &e, next);
	if (n > rd->size - rd->used) {
		inode_forget(fs->inodes, eino, 1);
		return 1;
	}
	rd->used += n;
	return 0;
}

static void dir_read_done(struct store_dir_waiter *w, int rc, const struct store_error *e);

/* Fill the reply from what has arrived; with nothing yet, wait for the next page. */
static void dir_read_go(struct dir_read *rd)
{
	struct store *st = rd->fs->store;
	size_t k = rd->off > 2 ? (size_t)rd->off - 2 : 0;
	ssize_t got;
	int rc;

	for (;;) {
		got = store_dir_read(st, rd->r, k, add_entry, rd);
		if (got != -EAGAIN || rd->used)
			break;
		rc = store_dir_wait(st, rd->r, k, &rd->w);
		if (rc == 1)
			continue;
		if (rc < 0) {
			got = rc;
			break;
		}
		fuse_req_interrupt_func(rd->req, dir_interrupted, rd->fs);
		store_dir_arm(st, &rd->w);
		return;
	}
	if (got < 0 && got != -EAGAIN && !rd->used)
		fs_reply_err(rd->req, METRICS_FS_READDIR, (int)-got);
	else
		fuse_reply_buf(rd->req, rd->out, rd->used);
	dir_read_free(rd);
}

static void dir_read_done(struct store_dir_waiter *w, int rc, const struct store_error *e)
{
	struct dir_read *rd = (struct dir_read *)w;

	(void)e;

	if (rc) {
		fs_reply_err(rd->req, METRICS_FS_READDIR, -rc);
		dir_read_free(rd);
		return;
	}
	dir_read_go(rd);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, int plus)
{
	struct irsafs *fs = fs_of(req);
	struct dir_read *rd = calloc(1, sizeof(*rd));
	struct inode_info ii;
	int rc = -ENOMEM;

	if (!rd || !(rd->out = malloc(size)))
		goto fail;
	rd->w.done = dir_read_done;
	rd->w.tag = req;
	rd->req = req;
	rd->fs = fs;
	rd->r = ((struct dhandle *)(uintptr_t)fi->fh)->r;
	rd->ino = ino;
	rd->plus = plus;
	rd->off = off;
	rd->size = size;
	if (plus) {
		rc = inode_get(fs->inodes, ino, &ii);
		if (rc)
			goto fail;
		rd->dir_key = ii.key;
		ii.key = NULL;
		inode_info_cleanup(&ii);
	}
	if (add_dots(rd)) {
		fuse_reply_buf(req, rd->out, rd->used);
		dir_read_free(rd);
		return;
	}
	dir_read_go(rd);
	return;
fail:
	if (rd)
		dir_read_free(rd);
	fs_reply_err(req, METRICS_FS_READDIR, -rc);
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
	(void)ino;
	fs_handle_close(fs_of(req), (struct fs_handle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}
