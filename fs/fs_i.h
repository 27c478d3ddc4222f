/*
 * fs_i: what the FUSE operation files share. Private to fs/.
 *
 * The operations are split by what they touch: fs_node.c (lookup, forget,
 * getattr), fs_file.c (open, read, release), fs_dir.c (opendir, readdir),
 * fs_xattr.c (getxattr, listxattr), fs_ops.c (the table, init, statfs and
 * the EROFS answers), handles.c (what is open, closed at exit if the kernel
 * never released it).
 */
#ifndef IRSAFS_FS_FS_I_H
#define IRSAFS_FS_FS_I_H

#include "fs/irsafs.h"

#include <sys/stat.h>

#include "core/metrics.h"
#include "s3/store.h"

struct irsafs *fs_of(fuse_req_t req);

/*
 * An open file or directory: on fs->handles from the open to its release
 * (fs/handles.c). Embedded first in what fi->fh points to.
 */
struct fs_handle {
	struct fs_handle *prev, *next;	/* under fs->handles_lock */
	void (*close)(struct irsafs *fs, struct fs_handle *h);	/* closes and frees h */
};
void fs_handle_add(struct irsafs *fs, struct fs_handle *h);
/* Off the list, then h->close. */
void fs_handle_close(struct irsafs *fs, struct fs_handle *h);
void fs_count(unsigned long long *c, unsigned long long n);
/* Attributes of a file (from a) or a directory (a may be NULL). */
void fs_fill_stat(const struct irsafs *fs, uint64_t ino, int is_dir, const struct store_attr *a,
		  struct stat *st);
/* A cacheable "no such entry" (counted as lookup ENOENT). */
void fs_reply_negative(fuse_req_t req);
/* Answer req with errno err (positive), counted under fs_op (enum metrics_fs_op). */
void fs_reply_err(fuse_req_t req, int fs_op, int err);
struct inode_info;
/* Refresh a file's attributes with a HEAD when older than the TTL. 0 or -errno. */
int fs_refresh_attr(struct irsafs *fs, struct inode_info *ii);
/* a+b+c, malloc'd; NULL on ENOMEM. */
char *fs_join(const char *a, const char *b, const char *c);
/* Strip what a denial takes away: a directory keeps its x bits, a file none. */
void fs_stat_denied(struct stat *st);
/* May this file be opened? 0, or -EACCES (denied, or archived and not restored). */
int fs_open_check(struct irsafs *fs, const struct inode_info *ii);

/*
 * Once per mount, from the first request after INIT (which sets the kernel's
 * read-ahead, and each open copies it): raise the mount's read_ahead_kb to
 * --kernel-readahead, so that sequential reads arrive as fewer, larger
 * requests (measured: 772 -> 851 MB/s median on a cold 1 GiB read, 128 KiB
 * -> 512 KiB). Best effort: a read-only /sys only leaves it as it was.
 */
void fs_tune_readahead(struct irsafs *fs);


/*
 * Is the thread tid dying: a fatal signal (SIGKILL, or one whose default
 * action kills) pending? For FUSE interrupt callbacks: only a dying reader's
 * request is cut short (EINTR); a handled signal (Go's preemption, a
 * profiler's timer, Python's SIGINT) must not become an error. 1 also when
 * the thread is gone; 0 when alive and not dying, or when it cannot be read.
 */
int fs_reader_dying(pid_t tid);

void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void fs_op_forget_multi(fuse_req_t req, size_t count_, struct fuse_forget_data *forgets);
void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi);
void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi);
void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);

#endif
