/*
 * serve: `irsafs serve [OPTIONS] DIR`, the Pod's side of irsafs-csi.
 *
 * DIR is the Pod's emptyDir irsafs-socket, where the node plugin puts one
 * socket per volume it mounted for this Pod (core/handoff.h). For each socket
 * serve receives the volume's FUSE connection and attributes and runs one
 * irsafs for it, exactly as `irsafs -f [OPTIONS] --prefix P BUCKET /dev/fd/N`
 * would (same options, caches, errors), with this process's environment (the
 * Pod's IRSA identity). An irsafs that exits or is killed while its socket
 * is still there is started again, and takes the connection over
 * (fs/resume.h): the mount never goes away.
 *
 * Needs no privilege: no root, no capability, no set-uid helper. Runs in the
 * main thread of its own process; not thread-safe.
 */
#ifndef IRSAFS_APP_SERVE_H
#define IRSAFS_APP_SERVE_H

/* argv[0] is "serve". Returns the exit status. */
int serve_main(int argc, char **argv);

#endif
