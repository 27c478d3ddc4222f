/*
 * resume: serving a FUSE connection handed over by irsafs-csi, and taking
 * one over from a server that died.
 *
 * The node plugin keeps the connection open between servers, so when an
 * `irsafs serve` child is killed the mount stays up and its requests wait in
 * the kernel. The next server continues where the last one stopped, with the
 * help of a shared-memory state file the plugin keeps for the volume:
 *
 *  - FUSE_INIT happened once, with the first server. Its request is kept in
 *    the state file; a successor replays it to libfuse (which insists on an
 *    INIT first) and swallows the reply, so the kernel sees nothing.
 *  - Requests a server had read but not answered when it died would wait
 *    forever: every request is copied into a slot when read and the slot is
 *    freed when the answer is written. A successor replays what is left (the
 *    kernel matches the answer by its unique id). One that was already
 *    replayed once, did not fit a slot, or whose copy does not hold together
 *    (a damaged state file) is answered EIO instead: a request that kills
 *    its server does not kill the next one too.
 *  - Inode numbers the kernel got from a predecessor mean nothing to a
 *    successor. Each generation numbers its nodes from its own base
 *    ((generation - 1) << 40), so a number below the base is a
 *    predecessor's: any request on it is answered ESTALE (the kernel's path
 *    walk then retries with a fresh lookup, so opening by name works at
 *    once), and FORGETs of such numbers are dropped. The root (1) is
 *    everyone's; a successor hands out its directory handles under numbers
 *    no other server uses, and checks them against the ones it gave out.
 *
 * Files open across a restart get ESTALE on their next read; their close
 * works. Requests are filtered and tracked by libfuse's custom I/O hooks, so
 * nothing in the FUSE operations changes. The hooks are thread-safe (the
 * multi-threaded loop calls them from every worker).
 */
#ifndef IRSAFS_FS_RESUME_H
#define IRSAFS_FS_RESUME_H

#include "fs/irsafs.h"

/* The environment variable `irsafs serve` passes to each volume's irsafs. */
#define RESUME_ENV "IRSAFS_HANDOFF"

/*
 * Attach se to its FUSE connection: with RESUME_ENV set (a volume from
 * irsafs serve: "state=FD,conn=FD,ready=FD,generation=N", the FUSE fd being
 * the one in mountpoint /dev/fd/N), through the hooks above; otherwise
 * fuse_session_mount(se, mountpoint). Returns 0 or -1 after logging why.
 */
int resume_session_mount(struct irsafs *fs, struct fuse_session *se, const char *mountpoint);

#endif
