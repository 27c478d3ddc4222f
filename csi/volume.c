/*
 * Publishing and unpublishing, and handing each volume to its server.
 *
 * Publish: open /dev/fuse, mount fuse.irsafs read-only at the target with
 * that fd (allow_other, default_permissions: the kernel checks the modes
 * irsafs shows), create a shared-memory state file, and listen on
 * KUBELET/pods/UID/volumes/kubernetes.io~empty-dir/irsafs-socket/NAME.sock.
 * The mount is in place at once; requests to it wait in the kernel until a
 * server takes the connection, so the application never sees a half-ready
 * mount.
 *
 * Handing over: one server at a time. The server keeps its connection to the
 * socket open while it serves; when that connection ends (the server exited
 * or was killed) the next one to connect gets the same FUSE connection and
 * state file, with the generation counted up, and resumes (fs/resume.c).
 *
 * The target path comes from the kubelet; the socket directory belongs to the
 * Pod, which may put anything there, so inside it nothing is followed: names
 * are resolved relative to an open directory, with O_NOFOLLOW.
 */
#include "csi/volume.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/handoff.h"
#include "core/log.h"
#include "core/mountinfo.h"
#include "core/unixsock.h"
#include "csi/grpc.h"

/* A volume no server has taken for this long gets one warning. */
#define UNSERVED_WARN_S 60

struct volume {
	char *volume_id;
	char *target;
	char *pod_uid;
	char *bucket;
	char *prefix;
	char *fs_type;
	int access_mode;
	int readonly;
	char sock_name[96];
	char *sock_dir;			/* for messages */
	int dir_fd;			/* the Pod's socket directory */
	int listen_fd, listen_slot;
	int conn_fd, conn_slot;		/* the current server, or -1 */
	pid_t server_pid;
	int fuse_fd;			/* ours: keeps the connection up between servers */
	int state_fd;			/* memfd, handed to every server */
	unsigned generation;		/* servers handed this volume so far */
	struct timespec since;		/* published, or the last server left */
	int warned;
	struct volume *next;
};

struct volumes {
	char *kubelet_dir;
	struct volume *list;
};

static void now(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
}

struct volumes *volumes_new(const char *kubelet_dir)
{
	struct volumes *vs = calloc(1, sizeof(*vs));

	if (!vs)
		return NULL;
	vs->kubelet_dir = strdup(kubelet_dir);
	if (!vs->kubelet_dir) {
		free(vs);
		return NULL;
	}
	return vs;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void volume_free(struct volume *v)
{
	close_fd(&v->listen_fd);
	close_fd(&v->conn_fd);
	close_fd(&v->fuse_fd);
	close_fd(&v->state_fd);
	close_fd(&v->dir_fd);
	free(v->volume_id);
	free(v->target);
	free(v->pod_uid);
	free(v->bucket);
	free(v->prefix);
	free(v->fs_type);
	free(v->sock_dir);
	free(v);
}

void volumes_free(struct volumes *vs)
{
	struct volume *v, *next;

	if (!vs)
		return;
	for (v = vs->list; v; v = next) {
		next = v->next;
		volume_free(v);
	}
	free(vs->kubelet_dir);
	free(vs);
}

/* What is mounted on top at path; an empty entry when nothing is. 0 or -errno. */
static int mount_at(const char *path, struct mountinfo_entry *m)
{
	int rc = mountinfo_find_self(path, m);

	return rc == -ENOENT ? 0 : rc;
}

int volumes_mount_type(const char *path, char *fstype, size_t len)
{
	struct mountinfo_entry m;
	int rc = mount_at(path, &m);

	snprintf(fstype, len, "%s", m.fstype);
	return rc;
}

int volumes_mount_device(const char *path, char *dev, size_t len)
{
	struct mountinfo_entry m;

	if (mount_at(path, &m) != 0 || strcmp(m.fstype, "fuse.irsafs") != 0 || !m.dev[0])
		return -1;
	snprintf(dev, len, "%s", m.dev);
	return 0;
}

void volumes_socket_name(const char *volume_id, const char *target, char *out, size_t len)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */
	char clean[41];
	const char *p;
	size_t i;

	for (p = volume_id; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ 0) * 1099511628211ULL;
	for (p = target; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	for (i = 0; volume_id[i] && i < sizeof(clean) - 1; i++) {
		char c = volume_id[i];

		clean[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9') || c == '-' || c == '_' ? c : '_';
	}
	clean[i] = '\0';
	snprintf(out, len, "%s-%016llx.sock", clean, (unsigned long long)h);
}

static struct volume *find_target(struct volumes *vs, const char *target)
{
	struct volume *v;

	for (v = vs->list; v; v = v->next)
		if (!strcmp(v->target, target))
			return v;
	return NULL;
}

static int same_spec(const struct volume *v, const struct volume_spec *s)
{
	return !strcmp(v->volume_id, s->volume_id) && !strcmp(v->bucket, s->bucket) &&
	       !strcmp(v->prefix, s->prefix) && !strcmp(v->pod_uid, s->pod_uid) &&
	       !strcmp(v->fs_type, s->fs_type) && v->access_mode == s->access_mode &&
	       v->readonly == s->readonly;
}

/* Open (creating when missing) name below dirfd as a directory, never through a symlink. */
static int open_subdir(int dirfd, const char *name, mode_t mode)
{
	int fd, made;

	made = mkdirat(dirfd, name, mode) == 0;
	if (!made && errno != EEXIST)
		return -errno;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* mkdir is subject to the umask; the emptyDir must be 0777, as the kubelet makes it. */
	if (made && fchmod(fd, mode) != 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

/*
 * The Pod's socket directory: the emptyDir "irsafs-socket". The kubelet sets
 * up a Pod's volumes in parallel, so it may not exist yet: then it is made
 * here as the kubelet would (the kubelet adopts an existing directory).
 */
static int open_socket_dir(struct volumes *vs, const char *pod_uid, char *msg, size_t len)
{
	static const char *const parts[] = { "volumes", "kubernetes.io~empty-dir",
					     VOLUME_SOCKET_DIR };
	static const mode_t modes[] = { 0750, 0750, 0777 };
	char path[4096];
	int fd, next;
	size_t i;

	snprintf(path, sizeof(path), "%s/pods/%s", vs->kubelet_dir, pod_uid);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		snprintf(msg, len, "cannot open the Pod's directory %s: %s (is --kubelet-dir the "
			 "kubelet's root directory, mounted into this container?)", path,
			 strerror(errno));
		return -1;
	}
	for (i = 0; i < 3; i++) {
		next = open_subdir(fd, parts[i], modes[i]);
		close(fd);
		if (next < 0) {
			snprintf(msg, len, "cannot create %s/%s in the Pod's directory %s: %s",
				 i ? parts[i - 1] : ".", parts[i], path, strerror(-next));
			return -1;
		}
		fd = next;
	}
	return fd;
}

/* Unmount path: cleanly when we can, else detached (its users keep it until they let go). */
static int unmount(const char *path)
{
	if (umount2(path, UMOUNT_NOFOLLOW) == 0)
		return 0;
	if (errno == EBUSY && umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == 0) {
		log_msg(LOG_WARNING, "%s is busy: detached it lazily", path);
		return 0;
	}
	return -errno;
}

/* Mount fuse.irsafs at target on a fresh /dev/fuse connection; fd or -1 with msg. */
static int mount_fuse(const struct volume_spec *s, char *msg, size_t len)
{
	char opts[256], src[300];
	int fd;

	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(msg, len, "cannot open /dev/fuse: %s (the node plugin needs the device: "
			 "run it privileged)", strerror(errno));
		return -1;
	}
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other,"
		 "default_permissions", fd);
	snprintf(src, sizeof(src), "irsafs:%s", s->bucket);
	if (mount(src, s->target_path, "fuse.irsafs", MS_RDONLY | MS_NOSUID | MS_NODEV,
		  opts) != 0) {
		snprintf(msg, len, "cannot mount fuse.irsafs on %s: %s (the node plugin needs "
			 "CAP_SYS_ADMIN in the host's mount namespace)", s->target_path,
			 strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Create the target directory (the plugin's to create and remove, as the
 * specification says), and its parents when the kubelet has not made them.
 * 0, or -1 with errno (EEXIST when it was there).
 */
static int make_target(const char *target)
{
	char path[4096];
	char *p;

	if (mkdir(target, 0750) == 0)
		return 0;
	if (errno != ENOENT)
		return -1;
	snprintf(path, sizeof(path), "%s", target);
	for (p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdir(path, 0750) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(target, 0750);
}

static char *dup_or(const char *s, int *oom)
{
	char *d = strdup(s);

	if (!d)
		*oom = 1;
	return d;
}

int volumes_publish(struct volumes *vs, const struct volume_spec *s, char *msg, size_t len)
{
	char path[4096], source[300];
	struct mountinfo_entry m;
	const char *fstype = m.fstype;
	struct volume *v;
	int oom = 0, made_target;

	v = find_target(vs, s->target_path);
	mount_at(s->target_path, &m);
	if (v) {
		if (!same_spec(v, s)) {
			snprintf(msg, len, "%s is already published at %s with other arguments "
				 "(volume %s, s3://%s/%s, access mode %d, readonly %d)",
				 s->volume_id, s->target_path, v->volume_id, v->bucket, v->prefix,
				 v->access_mode, v->readonly);
			return GRPC_ALREADY_EXISTS;
		}
		if (!strcmp(fstype, "fuse.irsafs"))
			return GRPC_OK;
		/* Someone unmounted it behind our back: publish it again. */
		log_msg(LOG_WARNING, "volume %s: %s is no longer mounted; mounting it again",
			v->volume_id, v->target);
		volumes_unpublish(vs, v->volume_id, v->target, msg, len);
	} else if (!strcmp(fstype, "fuse.irsafs")) {
		/*
		 * Ours, from before this plugin restarted: its FUSE descriptor is
		 * gone with the old process, but the server that has one keeps
		 * serving it. Remounting would cut that server off.
		 */
		snprintf(source, sizeof(source), "irsafs:%s", s->bucket);
		if (strcmp(m.source, source) != 0) {
			snprintf(msg, len, "%s is already published with another bucket (%s)",
				 s->target_path, m.source);
			return GRPC_ALREADY_EXISTS;
		}
		log_msg(LOG_NOTICE, "%s: %s is mounted there by an earlier irsafs-csi; keeping it "
			"(if its server dies, it cannot be handed over again)", s->volume_id,
			s->target_path);
		return GRPC_OK;
	} else if (fstype[0]) {
		snprintf(msg, len, "%s is already a mount point (%s), not an irsafs volume",
			 s->target_path, fstype);
		return GRPC_FAILED_PRECONDITION;
	}

	v = calloc(1, sizeof(*v));
	if (!v)
		goto oom;
	v->listen_fd = v->conn_fd = v->fuse_fd = v->state_fd = v->dir_fd = -1;
	v->listen_slot = v->conn_slot = -1;
	v->volume_id = dup_or(s->volume_id, &oom);
	v->target = dup_or(s->target_path, &oom);
	v->pod_uid = dup_or(s->pod_uid, &oom);
	v->bucket = dup_or(s->bucket, &oom);
	v->prefix = dup_or(s->prefix, &oom);
	v->fs_type = dup_or(s->fs_type, &oom);
	snprintf(path, sizeof(path), "%s/pods/%s/volumes/kubernetes.io~empty-dir/%s",
		 vs->kubelet_dir, s->pod_uid, VOLUME_SOCKET_DIR);
	v->sock_dir = dup_or(path, &oom);
	if (oom)
		goto oom;
	v->access_mode = s->access_mode;
	v->readonly = s->readonly;
	volumes_socket_name(s->volume_id, s->target_path, v->sock_name, sizeof(v->sock_name));

	v->dir_fd = open_socket_dir(vs, s->pod_uid, msg, len);
	if (v->dir_fd < 0)
		goto fail_precondition;
	made_target = make_target(s->target_path) == 0;
	if (!made_target && errno != EEXIST) {
		snprintf(msg, len, "cannot create the target directory %s: %s", s->target_path,
			 strerror(errno));
		goto fail_internal;
	}
	v->state_fd = memfd_create("irsafs-volume-state", MFD_CLOEXEC);
	if (v->state_fd < 0 || ftruncate(v->state_fd, HANDOFF_STATE_SIZE) != 0) {
		snprintf(msg, len, "cannot create the volume's state file: %s", strerror(errno));
		goto fail_internal;
	}
	v->listen_fd = unixsock_listen_at(v->dir_fd, v->sock_name, SOCK_SEQPACKET, 0666);
	if (v->listen_fd < 0) {
		snprintf(msg, len, "cannot create the socket %s/%s: %s", v->sock_dir,
			 v->sock_name, strerror(-v->listen_fd));
		goto fail_internal;
	}
	v->fuse_fd = mount_fuse(s, msg, len);
	if (v->fuse_fd < 0) {
		unlinkat(v->dir_fd, v->sock_name, 0);
		if (made_target)
			rmdir(s->target_path);
		goto fail_internal;
	}
	now(&v->since);
	v->next = vs->list;
	vs->list = v;
	log_msg(LOG_NOTICE, "published %s (s3://%s/%s) at %s for Pod %s; irsafs serve takes it "
		"from %s/%s", v->volume_id, v->bucket, v->prefix, v->target, v->pod_uid,
		v->sock_dir, v->sock_name);
	return GRPC_OK;

oom:
	snprintf(msg, len, "out of memory");
	if (v)
		volume_free(v);
	return GRPC_RESOURCE_EXHAUSTED;
fail_precondition:
	volume_free(v);
	return GRPC_FAILED_PRECONDITION;
fail_internal:
	volume_free(v);
	return GRPC_INTERNAL;
}

/*
 * Without a record (published by an earlier irsafs-csi): the socket is found
 * from the target, which the kubelet puts at KUBELET/pods/UID/volumes/....
 */
static void remove_orphan_socket(struct volumes *vs, const char *volume_id, const char *target)
{
	char uid[128], name[96], dir[4096];
	size_t klen = strlen(vs->kubelet_dir);
	const char *p, *slash;
	struct stat st;
	int fd;

	if (strncmp(target, vs->kubelet_dir, klen) != 0 || strncmp(target + klen, "/pods/", 6))
		return;
	p = target + klen + 6;
	slash = strchr(p, '/');
	if (!slash || (size_t)(slash - p) >= sizeof(uid) || slash == p)
		return;
	memcpy(uid, p, (size_t)(slash - p));
	uid[slash - p] = '\0';
	if (strstr(uid, ".."))
		return;
	snprintf(dir, sizeof(dir), "%s/pods/%s/volumes/kubernetes.io~empty-dir/%s",
		 vs->kubelet_dir, uid, VOLUME_SOCKET_DIR);
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	volumes_socket_name(volume_id, target, name, sizeof(name));
	if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(st.st_mode))
		unlinkat(fd, name, 0);
	close(fd);
}

int volumes_unpublish(struct volumes *vs, const char *volume_id, const char *target, char *msg,
		      size_t len)
{
	struct volume **pp, *v = NULL;
	char fstype[64];
	int rc;

	for (pp = &vs->list; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->target, target)) {
			v = *pp;
			break;
		}
	if (v && strcmp(v->volume_id, volume_id) != 0) {
		snprintf(msg, len, "%s holds volume %s, not %s", target, v->volume_id, volume_id);
		return GRPC_FAILED_PRECONDITION;
	}
	volumes_mount_type(target, fstype, sizeof(fstype));
	if (fstype[0] && strcmp(fstype, "fuse.irsafs") != 0) {
		snprintf(msg, len, "%s is a %s mount, not an irsafs volume: not unmounting it",
			 target, fstype);
		return GRPC_FAILED_PRECONDITION;
	}
	if (fstype[0]) {
		rc = unmount(target);
		if (rc != 0) {
			snprintf(msg, len, "cannot unmount %s: %s", target, strerror(-rc));
			return GRPC_INTERNAL;
		}
	}
	if (rmdir(target) != 0 && errno != ENOENT) {
		if (errno != ENOTEMPTY && errno != EEXIST) {
			snprintf(msg, len, "cannot remove the target directory %s: %s", target,
				 strerror(errno));
			return GRPC_INTERNAL;
		}
		log_msg(LOG_WARNING, "%s is not empty: left it in place", target);
	}
	if (v) {
		unlinkat(v->dir_fd, v->sock_name, 0);
		*pp = v->next;
		log_msg(LOG_NOTICE, "unpublished %s from %s (served by %u server%s)", v->volume_id,
			target, v->generation, v->generation == 1 ? "" : "s");
		volume_free(v);
	} else {
		remove_orphan_socket(vs, volume_id, target);
		if (fstype[0])
			log_msg(LOG_NOTICE, "unpublished %s from %s (mounted by an earlier "
				"irsafs-csi)", volume_id, target);
	}
	return GRPC_OK;
}

/*
 * Set the mount's kernel read-ahead, as irsafs does for its own mounts
 * (--kernel-readahead): the server asks once FUSE_INIT is done (INIT resets
 * it), since it may not write /sys itself. The value is the Pod's to choose,
 * within a bound.
 */
static void set_readahead(struct volume *v, const char *msg)
{
	char dev[32], path[96], val[24];
	unsigned long kb;
	char *end;
	int fd, n, ok = 0;

	if (strncmp(msg, "readahead_kb=", 13) != 0)
		return;
	kb = strtoul(msg + 13, &end, 10);
	if (end == msg + 13 || (*end && *end != '\n') || kb == 0 || kb > 65536 ||
	    volumes_mount_device(v->target, dev, sizeof(dev)) != 0)
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	n = snprintf(val, sizeof(val), "%lu", kb);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		ok = write(fd, val, (size_t)n) == n;
		close(fd);
	}
	if (ok)
		log_msg(LOG_INFO, "volume %s: kernel read-ahead set to %lu KiB", v->volume_id, kb);
	else
		log_msg(LOG_INFO, "volume %s: cannot set the kernel read-ahead (%s): %s",
			v->volume_id, path, strerror(errno));
}

/*
 * Read what the server said; 1 when it has gone (exited or killed: its end
 * of the connection closed), 0 while it runs.
 */
static int server_gone(struct volume *v)
{
	char msg[128];
	ssize_t n;
	int i;

	/* A few messages per turn: a Pod that keeps writing cannot hold the loop. */
	for (i = 0; i < 8; i++) {
		n = recv(v->conn_fd, msg, sizeof(msg) - 1, MSG_DONTWAIT);
		if (n == 0)
			return 1;
		if (n < 0)
			return errno != EAGAIN && errno != EINTR;
		msg[n] = '\0';
		set_readahead(v, msg);
	}
	return 0;
}

static void hand_over(struct volume *v)
{
	struct ucred cred = { 0 };
	socklen_t clen = sizeof(cred);
	struct handoff h;
	int fd, rc;

	fd = accept4(v->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen);
	handoff_init(&h);
	if (v->conn_fd >= 0 && !server_gone(v)) {
		snprintf(h.error, sizeof(h.error), "volume %s is being served by pid %d: one "
			 "server per volume", v->volume_id, (int)v->server_pid);
		handoff_send(fd, &h);
		close(fd);
		log_msg(LOG_WARNING, "volume %s: refused pid %d (uid %d): pid %d serves it",
			v->volume_id, (int)cred.pid, (int)cred.uid, (int)v->server_pid);
		return;
	}
	close_fd(&v->conn_fd);
	snprintf(h.volume_id, sizeof(h.volume_id), "%s", v->volume_id);
	snprintf(h.bucket, sizeof(h.bucket), "%s", v->bucket);
	snprintf(h.prefix, sizeof(h.prefix), "%s", v->prefix);
	h.generation = v->generation + 1;
	h.fuse_fd = v->fuse_fd;
	h.state_fd = v->state_fd;
	rc = handoff_send(fd, &h);
	if (rc != 0) {
		log_msg(LOG_WARNING, "volume %s: cannot hand it to pid %d: %s", v->volume_id,
			(int)cred.pid, strerror(-rc));
		close(fd);
		return;
	}
	v->generation++;
	v->conn_fd = fd;
	v->server_pid = cred.pid;
	v->warned = 0;
	log_msg(LOG_NOTICE, "volume %s: handed to irsafs serve (pid %d, uid %d)%s", v->volume_id,
		(int)cred.pid, (int)cred.uid, v->generation > 1 ? ", resuming" : "");
}

int volumes_poll_fds(struct volumes *vs, struct pollset *ps)
{
	struct volume *v;

	for (v = vs->list; v; v = v->next) {
		v->listen_slot = pollset_add(ps, v->listen_fd, POLLIN);
		v->conn_slot = v->conn_fd >= 0 ? pollset_add(ps, v->conn_fd, POLLIN) : -1;
		if (v->listen_slot < 0 || (v->conn_fd >= 0 && v->conn_slot < 0))
			return -ENOMEM;
	}
	return 0;
}

void volumes_dispatch(struct volumes *vs, const struct pollset *ps)
{
	struct volume *v;

	for (v = vs->list; v; v = v->next) {
		if (v->conn_fd >= 0 && pollset_revents(ps, v->conn_slot) && server_gone(v)) {
			close_fd(&v->conn_fd);
			now(&v->since);
			log_msg(LOG_NOTICE, "volume %s: its server (pid %d) has gone; the mount "
				"waits for the next one", v->volume_id, (int)v->server_pid);
		}
		if (pollset_revents(ps, v->listen_slot) & POLLIN)
			hand_over(v);
		v->listen_slot = v->conn_slot = -1;
	}
}

void volumes_tick(struct volumes *vs)
{
	struct timespec t;
	struct volume *v;

	now(&t);
	for (v = vs->list; v; v = v->next) {
		if (v->conn_fd >= 0 || v->warned || t.tv_sec - v->since.tv_sec < UNSERVED_WARN_S)
			continue;
		v->warned = 1;
		log_msg(LOG_WARNING, "volume %s at %s: no irsafs serve has taken it for %d s; its "
			"files wait until one does. Does Pod %s run the irsafs sidecar (irsafs serve) "
			"with the emptyDir %s mounted? Socket: %s/%s", v->volume_id, v->target,
			UNSERVED_WARN_S, v->pod_uid, VOLUME_SOCKET_DIR, v->sock_dir, v->sock_name);
	}
}
