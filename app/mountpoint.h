/*
 * mountpoint: the directory irsafs mounts on, before the mount and from outside.
 *
 * A sidecar killed by the OOM killer or SIGKILL leaves its FUSE mount behind,
 * dead: every access gives ENOTCONN. Its restarted container runs irsafs on
 * the same directory, which must then detach the dead mount first; it does so
 * only for a dead mount whose type is fuse.irsafs, never for anything else.
 * It also creates the directory when it is missing (the sidecar mounts on a
 * subdirectory of an emptyDir, which starts empty), and refuses to stack a
 * second irsafs on a live one (`mount` of one fstab line twice).
 *
 * `irsafs probe MOUNTPOINT` is the probe for Kubernetes: it passes only when
 * MOUNTPOINT is a fuse.irsafs mount whose daemon answers a statfs in time.
 * statfs is answered by the daemon itself, never from the kernel's caches and
 * never by S3, so a hung daemon fails it and a throttled S3 does not.
 *
 * Nothing here keeps state; every function may be called from any thread.
 */
#ifndef IRSAFS_APP_MOUNTPOINT_H
#define IRSAFS_APP_MOUNTPOINT_H

#include <stddef.h>
#include <stdio.h>

/* The mount type irsafs's mounts carry (subtype=irsafs), as mountinfo shows it. */
#define MOUNTPOINT_FSTYPE "fuse.irsafs"

/*
 * The type and source of the topmost mount at exactly path (absolute and
 * canonical), read from mountinfo (a /proc/PID/mountinfo stream). Returns 0
 * and fills type and source (either may be NULL), -ENOENT when nothing is
 * mounted at path.
 */
int mountpoint_find(FILE *mountinfo, const char *path, char *type, size_t typelen,
		    char *source, size_t sourcelen);

/*
 * The canonical absolute form of dir, even when dir itself is a dead mount
 * (realpath would fail with ENOTCONN): its parent is resolved instead. 0 or
 * -errno.
 */
int mountpoint_canonical(const char *dir, char *out, size_t outlen);

/*
 * Make dir ready for a new mount of bucket: create it when missing (one
 * level: its parent must exist), detach a dead fuse.irsafs mount on it, and
 * refuse a live one. /dev/fd/N is left alone. Returns 0, or -1 after logging
 * why mounting must not go on.
 */
int mountpoint_prepare(const char *dir);

/* `irsafs probe MOUNTPOINT [--timeout S]` (argv[0] is "probe"): the exit status. */
int mountpoint_probe_main(int argc, char **argv);

#endif
