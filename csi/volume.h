/*
 * volume: the volumes irsafs-csi has published on this node, and the
 * privileged half of each: the FUSE mount at the target path, and the socket
 * in the Pod's emptyDir through which the Pod's unprivileged `irsafs serve`
 * receives the FUSE connection (core/handoff.h).
 *
 * The plugin keeps its own descriptor of every FUSE connection, so a volume
 * outlives the server that serves it: when `irsafs serve` dies, requests wait
 * in the kernel until the next server connects and takes over. A volume is
 * forgotten only by NodeUnpublishVolume.
 *
 * Everything runs on the plugin's one thread; nothing here is thread-safe.
 */
#ifndef IRSAFS_CSI_VOLUME_H
#define IRSAFS_CSI_VOLUME_H

#include <stddef.h>

#include "csi/pollset.h"

/* The emptyDir a Pod shares with its irsafs sidecar. */
#define VOLUME_SOCKET_DIR "irsafs-socket"

/* What NodePublishVolume asked for, checked by the caller (csi/service.c). */
struct volume_spec {
	const char *volume_id;
	const char *target_path;
	const char *pod_uid;
	const char *bucket;
	const char *prefix;		/* "" for the whole bucket */
	int access_mode;		/* the CSI AccessMode.Mode value */
	int readonly;
	const char *fs_type;
};

struct volumes;

/* kubelet_dir: the kubelet's root directory. NULL on ENOMEM. */
struct volumes *volumes_new(const char *kubelet_dir);
/* Close every descriptor; the mounts stay (they belong to the Pods). */
void volumes_free(struct volumes *vs);

/*
 * Publish (idempotent: the same spec again is 0). Returns a grpc_code, with
 * a message naming the problem and the fix on errors.
 */
int volumes_publish(struct volumes *vs, const struct volume_spec *spec, char *msg, size_t len);

/* Unpublish (idempotent: a target that is not published is 0). A grpc_code. */
int volumes_unpublish(struct volumes *vs, const char *volume_id, const char *target, char *msg,
		      size_t len);

/* The socket name for (volume_id, target): "<volume_id, sanitised>-<hash>.sock". */
void volumes_socket_name(const char *volume_id, const char *target, char *out, size_t len);

int volumes_poll_fds(struct volumes *vs, struct pollset *ps);
/* Hand volumes to servers that connect; notice servers that went away. */
void volumes_dispatch(struct volumes *vs, const struct pollset *ps);
/* Once a second or so: warn about volumes no server has taken for a while. */
void volumes_tick(struct volumes *vs);

/* The file system type mounted at path ("" if none), from /proc/self/mountinfo. */
int volumes_mount_type(const char *path, char *fstype, size_t len);
/* The device ("0:57") of the irsafs mount at path; -1 if there is none. */
int volumes_mount_device(const char *path, char *dev, size_t len);

#endif
