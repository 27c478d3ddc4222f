/*
 * Directories: opendir gets the directory's listing from the store
 * (store_dir_join: in the mount's stack, the metadata cache's, kept for the
 * TTL, or fetched whole off the FUSE threads, one fetch shared by every
 * opendir of the directory, within the bounds of cache/listing.h), and
 * readdirplus hands the kernel every entry's attributes from it, so `ls -l`
 * costs the listing's pages and no HEAD per entry. A refused listing is
 * remembered on the directory's node for the TTL: the directory then shows
 * d--x--x--x and opendir answers EACCES without asking S3 again. An
 * interrupted opendir whose reader is being killed is answered EINTR at once
 * (store_dir_cancel).
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

/* One opendir waiting for its directory's listing. */
struct dir_open {
	struct store_dir_waiter w;	/* first: the waiter is cast back */
	struct irsafs *fs;
	fuse_req_t req;
	uint64_t ino;
	struct fuse_file_info fi;
};

static void reply_open(fuse_req_t req, struct fuse_file_info *fi, struct store_dir *l)
{
	fi->fh = (uint64_t)(uintptr_t)l;
	fi->cache_readdir = 0;
	/* -ENOENT: the request was interrupted and is gone; no RELEASEDIR will come. */
	if (fuse_reply_open(req, fi) == -ENOENT)
		store_dir_release(l);
}

static void dir_open_done(struct store_dir_waiter *w, int rc, struct store_dir *l,
			  const struct store_error *e)
{
	struct dir_open *o = (struct dir_open *)w;

	/* The directory shows the denial (d--x--x--x) for the TTL. */
	if (rc == -EACCES && e && e->cls == ERR_DENIED)
		fs_note_denial(o->fs, o->ino, e->key, e);
	if (rc)
		fs_reply_err(o->req, METRICS_FS_OPENDIR, -rc);
	else
		reply_open(o->req, &o->fi, l);
	free(o);
}

/*
 * libfuse calls this when the kernel interrupts the opendir: its reader got a
 * signal. A reader that is being killed waits in D state for our answer, so
 * it gets EINTR at once. Any other signal (a handler ran: SIGINT in Python,
 * Go's preemption signal, a profiler's timer) must not turn into an error:
 * no file operation returns EINTR (README, the errno contract). So the
 * opendir goes on and is answered by the fetch. A reader whose pid we cannot
 * see (pid 0: another PID namespace, as the app container of a Pod) cannot be
 * told apart, so it too waits for the fetch, which its bounds end.
 */
static void dir_open_interrupted(fuse_req_t req, void *data)
{
	struct irsafs *fs = data;
	pid_t tid = fuse_req_ctx(req)->pid;

	if (tid <= 0 || !fs_reader_dying(tid))
		return;
	store_dir_cancel(fs->store, req);
}

/*
 * The opendir joins its directory's listing and this FUSE thread goes back
 * to the loop: a fresh cached one answers it at its arm, else the fetch
 * thread does when the listing is in, or the interrupt callback when the
 * reader is killed first.
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
	rc = store_dir_join(fs->store, ii.key, &o->w);
	inode_info_cleanup(&ii);
	if (rc < 0) {
		free(o);
		fs_reply_err(req, METRICS_FS_OPENDIR, -rc);
		return;
	}
	if (rc == 1)
		fs_count(&fs->counters.listings, 1);
	fuse_req_interrupt_func(req, dir_open_interrupted, fs);
	store_dir_arm(fs->store, &o->w);
	return;
fail:
	inode_info_cleanup(&ii);
	fs_reply_err(req, METRICS_FS_OPENDIR, -rc);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, int plus)
{
	struct store_dir *l = (struct store_dir *)(uintptr_t)fi->fh;
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
			const struct store_dirent *ent = &l->e[i - 2];

			name = ent->name;
			is_dir = ent->is_dir;
			store_dirent_attr(ent, &a);
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
	store_dir_release((struct store_dir *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

