/*
 * inode: the table of inodes the kernel knows about.
 *
 * Each node is one file or directory, identified by its full S3 key (a
 * directory's key ends in '/'; the root's key is the mount prefix). The kernel
 * holds `nlookup` references to a node (one per lookup reply and per
 * readdirplus entry); FORGET drops them, and a node with none left is freed.
 * The root is never freed. Inode numbers are never reused during a mount.
 *
 * The table has one mutex. Callers never keep a struct node pointer after
 * unlocking: the functions below copy what callers need out of the node.
 * Thread-safe.
 */
#ifndef IRSAFS_FS_INODE_H
#define IRSAFS_FS_INODE_H

#include <stdint.h>

#include "s3/store.h"

struct listing;
struct inode_table;

/* A copy of a node's state, owned by the caller (free key with inode_info_cleanup). */
struct inode_info {
	uint64_t ino;
	char *key;
	int is_dir;
	struct store_attr attr;		/* files */
	long long attr_ms;		/* when attr was learned (monotonic ms) */
	char *last_open_etag;		/* files: ETag of the last open, or NULL */
};

struct inode_table *inode_table_new(const char *root_key);
void inode_table_free(struct inode_table *t);

/* Copy node ino into *out. 0 or -ENOENT (unknown inode: a kernel bug or a race). */
int inode_get(struct inode_table *t, uint64_t ino, struct inode_info *out);
void inode_info_cleanup(struct inode_info *i);

/*
 * Find or create the node for key (is_dir as given), set its attributes when
 * attr is not NULL, and add one lookup reference. Returns the inode number,
 * or 0 on ENOMEM.
 */
uint64_t inode_lookup_ref(struct inode_table *t, const char *key, int is_dir,
			  const struct store_attr *attr);

/* Drop n lookup references; the node is freed when none remain. */
void inode_forget(struct inode_table *t, uint64_t ino, uint64_t n);

/* Update a file's attributes (after a HEAD). */
void inode_set_attr(struct inode_table *t, uint64_t ino, const struct store_attr *attr);

/* Remember the ETag of an open; returns 1 if it equals the previous open's. */
int inode_note_open(struct inode_table *t, uint64_t ino, const char *etag);

/* The directory's cached listing (a new reference) if younger than max_age_ms. */
struct listing *inode_get_listing(struct inode_table *t, uint64_t ino, long long max_age_ms);
/* Replace the directory's cached listing (takes a new reference to l). */
void inode_set_listing(struct inode_table *t, uint64_t ino, struct listing *l);

/* Number of live nodes (tests, counters). */
unsigned long inode_count(struct inode_table *t);

#endif
