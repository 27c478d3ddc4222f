/*
 * opts: the command line.
 *
 * Parses `irsafs [OPTIONS] BUCKET MOUNTPOINT` into struct opts, checking every
 * value; a bad value gives one line naming the option and the fix. Strings in
 * struct opts point into argv or the environment and live as long as the
 * process. Not thread-safe (called once from main).
 */
#ifndef IRSAFS_APP_OPTS_H
#define IRSAFS_APP_OPTS_H

#include <stdio.h>
#include <sys/types.h>

struct opts {
	const char *bucket;
	const char *mountpoint;
	char *prefix;			/* "" or ending in '/', malloc'd */
	const char *endpoint;		/* NULL: from the environment, else AWS */
	const char *region;
	int force_path_style;
	uid_t uid;
	gid_t gid;
	mode_t file_mode;
	mode_t dir_mode;
	int allow_other;
	int foreground;
	int debug;
	int log_level;			/* syslog level; -1: default (info, debug with --debug) */
	int log_json;			/* --log-format json */
	const char *metrics_addr;	/* --metrics-addr HOST:PORT (syntax checked); NULL: off */
	double metadata_ttl;		/* seconds */
	double negative_ttl;		/* seconds a "no such key" is trusted */
	size_t metadata_cache_size;	/* bytes of cached listings, all directories */
	int strict;			/* any denial of the mount-time listing fails the mount */
	int unlisted_dirs;		/* neither listed nor readable: a traverse-only directory */
	int list_page_size;
	long long list_timeout_ms;	/* one directory's whole listing */
	long credential_duration;
	int allow_instance_role;	/* IMDS may be the last credential source */
	long budget_ms;
	size_t max_memory;		/* bytes of read-ahead buffers, all files */
	size_t read_part_size;		/* bytes per ranged GET */
	int read_concurrency;		/* ranged GETs in flight, all files */
	size_t lookup_read;		/* bytes a lookup GETs instead of a HEAD; 0: HEAD */
	int dir_readahead;		/* files fetched ahead in listing order; 0: off */
	size_t kernel_readahead;	/* the mount's read_ahead_kb, in bytes; 0: the kernel's */
	size_t direct_io_size;		/* objects this large skip the page cache; SIZE_MAX: none */
	int direct_io_given;		/* --direct-io-size was on the command line */
	const char *cache_dir;		/* NULL: no disk cache */
	size_t max_cache_size;		/* bytes of block files in cache_dir */
	int show_help;
	int show_version;
};

/*
 * Returns 0 and fills o; on a bad command line prints one line to stderr and
 * returns -1 (the caller exits 2).
 */
int opts_parse(int argc, char **argv, struct opts *o);
void opts_usage(FILE *f);
void opts_cleanup(struct opts *o);

#endif
