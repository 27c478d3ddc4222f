/*
 * The FUSE low-level operation table, init, statfs, and
 * the EROFS answer to every write-type operation.
 */
#include "fs/fs_i.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mountinfo.h"
#include "fs/initext.h"

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
	sv.f_namemax = STORE_NAME_MAX;
	sv.f_flag = ST_RDONLY | ST_NOSUID | ST_NODEV;
	fuse_reply_statfs(req, &sv);
}

/* The device ("0:57") of the last mount on path, from /proc/self/mountinfo; 0 if found. */
static int mount_device(const char *path, char *dev, size_t devlen)
{
	struct mountinfo_entry e;

	if (mountinfo_find_self(path, &e) != 0)
		return -1;
	snprintf(dev, devlen, "%s", e.dev);
	return 0;
}

void fs_tune_readahead(struct irsafs *fs)
{
	size_t kb = fs->cfg.kernel_readahead >> 10;
	char dev[32], path[96], val[24];
	int fd, n, ok = 0;

	/* Called on every lookup and getattr: a plain load first, no shared write. */
	if (__atomic_load_n(&fs->readahead_tuned, __ATOMIC_RELAXED) ||
	    __atomic_exchange_n(&fs->readahead_tuned, 1, __ATOMIC_ACQ_REL) || !kb ||
	    !fs->mount_path)
		return;
	if (mount_device(fs->mount_path, dev, sizeof(dev)) != 0) {
		log_msg(LOG_INFO, "kernel read-ahead left as it is: %s is not in "
			"/proc/self/mountinfo", fs->mount_path);
		return;
	}
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	n = snprintf(val, sizeof(val), "%zu", kb);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		ok = write(fd, val, (size_t)n) == n;
		close(fd);
	}
	if (ok)
		log_msg(LOG_INFO, "kernel read-ahead for %s set to %zu KiB (%s)", fs->mount_path, kb,
			path);
	else
		log_msg(LOG_INFO, "kernel read-ahead left at its default: cannot write %s (%s); "
			"sequential reads then arrive in smaller requests", path, strerror(errno));
}

/*
 * Is the thread tid dying: a fatal signal (SIGKILL, or one whose default
 * action kills) is pending? The kernel marks that as SIGKILL pending in the
 * thread before it wakes the thread to send us the interrupt. 1 when the
 * thread is gone too; 0 when alive and not dying, or when it cannot be read.
 */
int fs_reader_dying(pid_t tid)
{
	unsigned long long pending, killed = 1ULL << (SIGKILL - 1);
	char path[64], line[256];
	int dying = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT || errno == ESRCH;
	while (fgets(line, sizeof(line), f))
		if ((sscanf(line, "SigPnd: %llx", &pending) == 1 ||
		     sscanf(line, "ShdPnd: %llx", &pending) == 1) && (pending & killed))
			dying = 1;
	fclose(f);
	return dying;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct irsafs *fs = userdata;

	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* Always readdirplus: ls -l then costs no per-entry lookups. */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	/*
	 * O_DIRECT reads as plain requests: the kernel waits for an async one
	 * without letting a signal in, so a killed reader would hang on a
	 * stalled server until the budget ran out. A plain one gets a
	 * FUSE_INTERRUPT, which fs_op_read answers at once (fs_file.c).
	 */
	conn->want &= ~(unsigned)FUSE_CAP_ASYNC_DIO;
	if (fs->cfg.direct_io_size != SIZE_MAX && !fs->cfg.direct_io_given &&
	    !initext_direct_io_mmap())
		log_msg(LOG_INFO, "this kernel cannot map a direct-I/O file shared (Linux 6.6 "
			"can): every object is read through the page cache; --direct-io-size "
			"forces direct I/O for large ones, and their MAP_SHARED mmap then fails");
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

/* Write-type operations: a read-only file system says EROFS to each. */
static void op_erofs_mknod(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, dev_t r)
{
	fs_reply_err(req, METRICS_FS_WRITE, EROFS);
}

static void op_erofs_mkdir(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m)
{
	fs_reply_err(req, METRICS_FS_WRITE, EROFS);
}

static void op_erofs_unlink(fuse_req_t req, fuse_ino_t p, const char *n)
{
	fs_reply_err(req, METRICS_FS_WRITE, EROFS);
}

static void op_erofs_symlink(fuse_req_t req, const char *l, fuse_ino_t p, const char *n)
{
	fs_reply_err(req, METRICS_FS_WRITE, EROFS);
}

static void op_erofs_rename(fuse_req_t req, fuse_ino_t p, const char *n, fuse_ino_t np,
			    const char *nn, unsigned int f)
{
	fs_reply_err(req, METRICS_FS_WRITE, EROFS);
}

static void op_erofs_link(fuse_req_t req, fuse_ino_t i, fuse_ino_t np, const char *nn)
{
	fs_reply_err(req, METRICS_FS_WRITE, EROFS);
}

static void op_erofs_setattr(fuse_req_t req, fuse_ino_t i, struct stat *a, int s,
			     struct fuse_file_info *fi)
{
	fs_reply_err(req, METRICS_FS_WRITE, EROFS);
}

static void op_erofs_write(fuse_req_t req, fuse_ino_t i, const char *b, size_t s, off_t o,
			   struct fuse_file_info *fi)
{
	fs_reply_err(req, METRICS_FS_WRITE, EROFS);
}

static void op_erofs_setxattr(fuse_req_t req, fuse_ino_t i, const char *n, const char *v,
			      size_t s, int f)
{
	fs_reply_err(req, METRICS_FS_WRITE, EROFS);
}

static void op_erofs_removexattr(fuse_req_t req, fuse_ino_t i, const char *n)
{
	fs_reply_err(req, METRICS_FS_WRITE, EROFS);
}

static void op_erofs_create(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m,
			    struct fuse_file_info *fi)
{
	fs_reply_err(req, METRICS_FS_WRITE, EROFS);
}

static void op_erofs_fallocate(fuse_req_t req, fuse_ino_t i, int m, off_t o, off_t l,
			       struct fuse_file_info *fi)
{
	fs_reply_err(req, METRICS_FS_WRITE, EROFS);
}

const struct fuse_lowlevel_ops irsafs_ops = {
	.init = op_init,
	.lookup = fs_op_lookup,
	.forget = fs_op_forget,
	.forget_multi = fs_op_forget_multi,
	.getattr = fs_op_getattr,
	.open = fs_op_open,
	.read = fs_op_read,
	.release = fs_op_release,
	/*
	 * No .flush: nothing is ever buffered for writing, and without it the
	 * kernel's first FLUSH gets ENOSYS and it sends no more, so close(2)
	 * costs no round trip.
	 */
	.opendir = fs_op_opendir,
	.readdir = fs_op_readdir,
	.readdirplus = fs_op_readdirplus,
	.releasedir = fs_op_releasedir,
	.statfs = op_statfs,
	.getxattr = fs_op_getxattr,
	.listxattr = fs_op_listxattr,
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
