/*
 * inode: the table of inodes the kernel knows about.
 *
 * Each node is one file or directory, identified by its full S3 key (a
 * directory's key ends in '/'; the root's key is the mount prefix). The kernel
 * holds `nlookup` references to a node (one per lookup reply and per
 * readdirplus entry); FORGET drops them, and a node with none left is freed.
 * The root is never freed. Inode numbers are never reused during a mount.
 *
 * A node keeps what the kernel was told about it: its attributes and when
 * they were learned (refreshed with a stat once older than the TTL), the ETag
 * of its last open, and when a denial of it was seen (a listing refused, a
 * read refused), shown for the TTL. The table keeps the text of the last
 * denial for the mount root's xattr. What S3 said about names (listings,
 * negative answers) is the metadata cache's (cache/metacache.h), below the
 * store interface.
 *
 * What the nodes cost in memory is counted (inode_bytes). The kernel keeps
 * a name until it runs short of memory, so a daemon that only waited for
 * FORGETs would hold a node for every name ever listed; inode_pick_unused
 * names those least recently used, for fs/nodetrim.c to ask the kernel to
 * forget (a lookup of one of them later makes it anew): files, and, where
 * the kernel prunes, directories once it holds no name in them (it pins a
 * directory while it does, so `ls -l` of 200,000 prefixes lets them go, and
 * `find` lets a directory go after its files).
 *
 * The table has one mutex. Callers never keep a struct node pointer after
 * unlocking: the functions below copy what callers need out of the node.
 * Thread-safe.
 */
#ifndef IRSAFS_FS_INODE_H
#define IRSAFS_FS_INODE_H

#include <stddef.h>
#include <stdint.h>

#include "s3/store.h"

struct inode_table;

/* A copy of a node's state, owned by the caller (free key with inode_info_cleanup). */
struct inode_info {
	uint64_t ino;
	char *key;
	int is_dir;
	struct store_attr attr;		/* files */
	long long attr_ms;		/* when attr was learned (monotonic ms) */
	char *last_open_etag;		/* files: ETag of the last open, or NULL */
	int denied;			/* a denial was seen within the TTL */
};

/* The table, rooted at root_key, showing a denial for 1 s. NULL on ENOMEM. */
struct inode_table *inode_table_new(const char *root_key);
void inode_table_free(struct inode_table *t);
/* How long a denial seen is shown (call before serving). */
void inode_table_set_ttl(struct inode_table *t, long long ttl_ms);

/*
 * Number new nodes from first on (the root stays 1). A server that takes
 * over a FUSE connection from one that died (fs/resume.c) starts above every
 * number its predecessors gave out: the kernel still holds those, and must
 * never see one name a different file. Call before serving.
 */
void inode_table_set_first_ino(struct inode_table *t, uint64_t first);

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

/*
 * A denial of node ino was seen now (its listing or its bytes were refused).
 * inode_get reports it (info.denied) until the TTL has passed.
 */
void inode_set_denied(struct inode_table *t, uint64_t ino);
/* Is node ino denied within the TTL? 0 or 1 (0 for an unknown inode). */
int inode_is_denied(struct inode_table *t, uint64_t ino);

/* Record / copy the text of the last denial ("" when none). */
void inode_set_last_denial(struct inode_table *t, const char *text);
void inode_last_denial(struct inode_table *t, char *out, size_t outlen);

/* Number of live nodes (tests, metrics). */
unsigned long inode_count(struct inode_table *t);

/*
 * Bytes the table takes: its nodes, their strings and its buckets; in
 * *going (when not NULL) those of the nodes let go, whose FORGET is due.
 */
size_t inode_bytes(struct inode_table *t, size_t *going);

/* A name for the kernel to forget: its node, its directory's and its name there. */
struct inode_name {
	uint64_t ino;
	uint64_t parent;
	int is_dir;
	char *name;		/* malloc'd: the caller frees it */
};

/*
 * The names least recently looked up or used, oldest first, into out: files
 * and directories with no node in them (never the root; a directory whose
 * last node went counts as old as that node), at most max, and no more once
 * they take bytes. Each is marked let go and not named again until a lookup
 * gives it back to the kernel (or, for a directory, a name in it comes); its
 * node stays until the kernel's FORGET. Returns how many.
 * With dirs 0, a directory met is never named, now or later: a name let go
 * by name is invalidated, which detaches a directory in use (a process's
 * working directory then has no path).
 */
size_t inode_pick_unused(struct inode_table *t, struct inode_name *out, size_t max,
			 size_t bytes, int dirs);
/*
 * Directory ino is not to be let go after all, now or later (picked before
 * the kernel turned out to lack the prune): it is the kernel's again.
 */
void inode_keep_dir(struct inode_table *t, uint64_t ino);

/*
 * Wait until the table takes more than limit bytes (inode_bytes, less
 * those of the nodes let go), timeout_ms passes (< 0: no timeout) or
 * inode_wake is called. 1 when over the limit, 0 when not, -1 once woken.
 */
int inode_wait_over(struct inode_table *t, size_t limit, long long timeout_ms);
/* End every wait, now and to come (before inode_table_free). */
void inode_wake(struct inode_table *t);

#endif
