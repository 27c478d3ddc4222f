/*
 * irsafs: the FUSE side of one mount, built by the application (app/) and
 * handed to FUSE as userdata. Its configuration is immutable after startup;
 * the inode table and the store are thread-safe on their own; counters are
 * updated atomically.
 */
#ifndef IRSAFS_FS_IRSAFS_H
#define IRSAFS_FS_IRSAFS_H

#define FUSE_USE_VERSION 314

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <sys/types.h>
#include <time.h>

struct store;
struct inode_table;
struct fs_handle;

struct irsafs_counters {
	unsigned long long opens;
	unsigned long long bytes_read;
	unsigned long long reads;	/* FUSE reads answered with bytes (or end of file) */
	unsigned long long lookups;
	unsigned long long listings;
	unsigned long long s3_requests;	/* HTTP requests sent to S3, retries included */
	unsigned long long forgotten;	/* names the kernel's FORGETs let go ... */
	unsigned long long forget_messages; /* ... in this many FORGETs and BATCH_FORGETs */
	unsigned long long small_direct_reads; /* fs_file.c: small reads in a row, direct I/O */
};

/* What the FUSE side is told of the command line (the application fills it). */
struct fs_config {
	const char *bucket;		/* for log lines and user.s3.uri */
	const char *region;		/* user.irsafs.region; NULL: us-east-1 */
	uid_t uid;
	gid_t gid;
	mode_t file_mode;
	mode_t dir_mode;
	double negative_ttl;		/* seconds the kernel may keep a "no such entry" */
	size_t kernel_readahead;	/* the mount's read_ahead_kb, in bytes; 0: the kernel's */
	size_t direct_io_size;		/* objects this large are opened FOPEN_DIRECT_IO; SIZE_MAX: none */
	int direct_io_given;		/* even if MAP_SHARED mmap of them then fails (fs/initext.c) */
};

struct irsafs {
	struct fs_config cfg;
	struct store *store;		/* the top of the store stack: every operation's */
	struct inode_table *inodes;
	double ttl;			/* seconds: kernel entry/attr timeouts */
	long long ttl_ms;		/* attributes trusted this long (then a stat) */
	struct timespec mount_time;	/* mtime of directories */
	struct fuse_session *se;	/* for cache invalidations; NULL before mounting */
	char *mount_path;		/* the mountpoint's real path, to find it in mountinfo */
	int readahead_tuned;		/* atomic: fs_tune_readahead ran */
	int small_reads_told;		/* atomic: the small direct reads notice was logged */
	struct irsafs_counters counters;
	pthread_mutex_t handles_lock;	/* fs_handles_init; guards handles */
	struct fs_handle *handles;	/* open files and directories (fs/handles.c) */
};

/* Before the first FUSE request: no file or directory is open. */
void fs_handles_init(struct irsafs *fs);

/*
 * After the loop has returned (no FUSE request runs any more), before the
 * store stack goes: close the files and directories whose RELEASE never
 * came (the kernel drops the ones it had queued when the connection ends).
 * Returns how many.
 */
unsigned fs_handles_close(struct irsafs *fs);

extern const struct fuse_lowlevel_ops irsafs_ops;

struct store_error;
/*
 * The store refused key with EACCES, for the reason e gives. An archived
 * object is not a denial: it is logged as such ("restore it first") and
 * nothing is marked. A denial is remembered as the last denial (the root's
 * user.irsafs.last_denial), and when ino is not 0 shown on that node for the
 * TTL. (The application calls it for the mount-time listing's denial.)
 */
void fs_note_denial(struct irsafs *fs, uint64_t ino, const char *key, const struct store_error *e);

#endif
