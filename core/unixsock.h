/*
 * unixsock: unix stream/seqpacket sockets named by a path of any length.
 *
 * sockaddr_un holds 108 bytes, and the kubelet's directories alone can be
 * longer than that (/var/lib/kubelet/pods/UID/volumes/kubernetes.io~empty-dir/
 * NAME/...). So every socket is bound and connected by a directory fd and a
 * short name: the address is /proc/self/fd/N/NAME, which the kernel resolves
 * through the open directory whatever its path. Needs /proc (every container
 * has it). All functions are thread-safe and return fds with O_CLOEXEC.
 */
#ifndef IRSAFS_CORE_UNIXSOCK_H
#define IRSAFS_CORE_UNIXSOCK_H

#include <stddef.h>

/*
 * Create a socket of type (SOCK_STREAM or SOCK_SEQPACKET), bound to name in
 * the directory dirfd with mode (e.g. 0666: connecting needs write
 * permission), listening, non-blocking. A socket file already there is
 * replaced (a stale one from an earlier run); anything else there is an
 * error. Returns the fd or -errno.
 */
int unixsock_listen_at(int dirfd, const char *name, int type, unsigned mode);

/* The same for a whole path: its directory is opened for the call. */
int unixsock_listen(const char *path, int type, unsigned mode);

/* Connect a blocking socket of type to name in dirfd. fd or -errno. */
int unixsock_connect_at(int dirfd, const char *name, int type);

/*
 * Split path into an open directory (O_PATH|O_DIRECTORY) and its last
 * component, copied into name (namelen bytes). Returns the directory fd or
 * -errno (-ENAMETOOLONG when the component does not fit).
 */
int unixsock_open_dir(const char *path, char *name, size_t namelen);

#endif
