/*
 * What is mounted on top at a path, read from mountinfo: its device, its
 * filesystem type and its source. Read, never stat the path: a stat of a FUSE
 * mount whose server is away blocks until a server comes, and a dead one
 * answers ENOTCONN.
 *
 * Paths are compared as mountinfo has them once its octal escapes (\040 for
 * a space) are undone: the caller passes a canonical path.
 */
#ifndef IRSAFS_CORE_MOUNTINFO_H
#define IRSAFS_CORE_MOUNTINFO_H

#include <stdio.h>

struct mountinfo_entry {
	char dev[32];			/* "0:57" */
	char fstype[64];		/* "fuse.irsafs" */
	char source[300];		/* "irsafs:BUCKET" for ours */
};

/*
 * The last line for path in the mountinfo stream f (the mount on top):
 * 0 with *e filled, or -ENOENT with *e empty.
 */
int mountinfo_find(FILE *f, const char *path, struct mountinfo_entry *e);

/* The same in /proc/self/mountinfo; -errno when it cannot be opened. */
int mountinfo_find_self(const char *path, struct mountinfo_entry *e);

#endif
