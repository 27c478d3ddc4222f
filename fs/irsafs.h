/*
 * irsafs: the state of one mount, built in main and handed to FUSE as
 * userdata. Options are immutable after startup; the inode table and the
 * store are thread-safe on their own; counters are updated atomically.
 */
#ifndef IRSAFS_FS_IRSAFS_H
#define IRSAFS_FS_IRSAFS_H

#define FUSE_USE_VERSION 314

#include <fuse_lowlevel.h>
#include <time.h>

#include "fs/opts.h"

struct store;
struct readahead;
struct dirahead;
struct membudget;
struct inode_table;
struct creds_cache;
struct workq;
struct dirfetch;
struct metrics_http;

struct irsafs_counters {
	unsigned long long opens;
	unsigned long long bytes_read;
	unsigned long long reads;	/* FUSE reads answered with bytes (or end of file) */
	unsigned long long lookups;
	unsigned long long listings;
	unsigned long long s3_requests;	/* HTTP requests sent to S3, retries included */
	unsigned long long lookup_hits;	/* lookups answered from a cached listing or a
					   remembered "no such key", without S3 */
	unsigned long long lookup_misses;	/* lookups that asked S3 */
};

struct irsafs {
	const struct opts *opts;
	struct store *store;
	struct store *disk;		/* --cache-dir: wraps store, or NULL */
	struct membudget *mem;		/* --max-memory: read-ahead buffers */
	struct readahead *ra;		/* the read path (cache/readahead.h) */
	struct headcache *heads;	/* first bytes fetched by lookups, or NULL */
	struct dirahead *ahead;		/* files fetched ahead of a directory's reader, or NULL */
	struct workq *helpers;		/* run a lookup's directory probe beside its GET */
	struct inode_table *inodes;
	struct dirfetch *dirs;		/* listings being fetched (fs_dir.c) */
	struct creds_cache *creds;
	double ttl;			/* seconds: kernel entry/attr timeouts */
	long long ttl_ms;		/* listings and attributes trusted this long */
	struct timespec mount_time;	/* mtime of directories */
	struct fuse_session *se;	/* for cache invalidations; NULL before mounting */
	char *mount_path;		/* the mountpoint's real path, to find it in mountinfo */
	int readahead_tuned;		/* atomic: fs_tune_readahead ran */
	struct metrics_http *metrics;	/* --metrics-addr endpoint, or NULL */
	struct irsafs_counters counters;
};

extern const struct fuse_lowlevel_ops irsafs_ops;

#endif
