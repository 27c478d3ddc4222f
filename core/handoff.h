/*
 * handoff: how irsafs-csi hands a mounted volume to the Pod's `irsafs serve`.
 *
 * For each published volume the node plugin listens on a SOCK_SEQPACKET unix
 * socket in the Pod's emptyDir. A server connects and receives one message:
 * text lines ("irsafs-handoff 1", then key=value) and, with SCM_RIGHTS, two
 * descriptors: the FUSE connection (/dev/fuse, already mounted) and a
 * shared-memory file (memfd) that outlives the server, where it keeps what a
 * successor needs to resume (fs/resume.c). The server keeps the connection
 * open while it serves: its end tells the plugin the volume is free for the
 * next server. A message with error= instead of descriptors says why not.
 *
 * Values never hold '\n' or NUL (the plugin refuses such volume attributes).
 * Both ends are one-shot functions on caller-owned structs; thread-safe.
 */
#ifndef IRSAFS_CORE_HANDOFF_H
#define IRSAFS_CORE_HANDOFF_H

#include <stddef.h>

#define HANDOFF_MAX_MSG 8192
/* Bytes of the shared state file (fs/resume.c lays it out). */
#define HANDOFF_STATE_SIZE (512u << 10)

struct handoff {
	char volume_id[256];
	char bucket[256];
	char prefix[1025];
	unsigned generation;		/* 1 for the first server of this mount, then +1 */
	char error[256];		/* set instead of the fds when the plugin says no */
	int fuse_fd;			/* -1 when absent */
	int state_fd;
};

void handoff_init(struct handoff *h);
/* Close the descriptors h holds. */
void handoff_close(struct handoff *h);

/* Send h (with its fds unless h->error is set). 0 or -errno. */
int handoff_send(int sock, const struct handoff *h);

/*
 * Receive one message into h, waiting at most timeout_ms. 0 (h may carry an
 * error from the plugin), or -errno: -ETIMEDOUT, -EPROTO for a malformed
 * message (its fds are closed).
 */
int handoff_recv(int sock, struct handoff *h, int timeout_ms);

#endif
