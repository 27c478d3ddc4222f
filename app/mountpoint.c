/*
 * The mount point before the mount (create it, clear a dead irsafs mount,
 * refuse to stack) and from outside (`irsafs probe`).
 *
 * A dead FUSE mount answers every path lookup that reaches it with ENOTCONN,
 * so neither realpath nor stat can say what it is: its type comes from
 * mountinfo, found under the canonical path of its parent plus its name.
 */
#include "app/mountpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mountinfo.h"

/* Stacked dead mounts detached at most, before giving up. */
#define MAX_DEAD 8

int mountpoint_find(FILE *mountinfo, const char *path, char *type, size_t typelen,
		    char *source, size_t sourcelen)
{
	struct mountinfo_entry e;
	int rc = mountinfo_find(mountinfo, path, &e);

	if (rc)
		return rc;
	if (type)
		snprintf(type, typelen, "%s", e.fstype);
	if (source)
		snprintf(source, sourcelen, "%s", e.source);
	return 0;
}

int mountpoint_canonical(const char *dir, char *out, size_t outlen)
{
	char *real = realpath(dir, NULL), *copy, *base;
	const char *parent;
	int rc = 0;

	if (real) {
		if ((size_t)snprintf(out, outlen, "%s", real) >= outlen)
			rc = -ENAMETOOLONG;
		free(real);
		return rc;
	}
	if (errno != ENOTCONN)
		return -errno;
	/* dir itself is the dead mount: resolve its parent, keep its name. */
	copy = strdup(dir);
	if (!copy)
		return -ENOMEM;
	while (strlen(copy) > 1 && copy[strlen(copy) - 1] == '/')
		copy[strlen(copy) - 1] = '\0';
	base = strrchr(copy, '/');
	if (!base) {
		parent = ".";
		base = copy;
	} else {
		*base++ = '\0';
		parent = *copy ? copy : "/";
	}
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
		rc = -ENOTCONN;
		goto out;
	}
	real = realpath(parent, NULL);
	if (!real) {
		rc = -errno;
		goto out;
	}
	if ((size_t)snprintf(out, outlen, "%s/%s", strcmp(real, "/") ? real : "", base) >= outlen)
		rc = -ENAMETOOLONG;
	free(real);
out:
	free(copy);
	return rc;
}

/* Type and source of the topmost mount at dir, from this process's mountinfo. */
static int find_own(const char *dir, char *type, size_t typelen, char *source, size_t sourcelen)
{
	char path[PATH_MAX];
	FILE *f;
	int rc;

	rc = mountpoint_canonical(dir, path, sizeof(path));
	if (rc)
		return rc;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	rc = mountpoint_find(f, path, type, typelen, source, sourcelen);
	fclose(f);
	return rc;
}

/* `fusermount3 -u -z dir`: a user may detach only a mount that user made. */
static int fusermount_detach(const char *dir)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "-z", "--", dir, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EPERM;
}

static int detach(const char *dir)
{
	if (geteuid() == 0)
		return umount2(dir, MNT_DETACH | UMOUNT_NOFOLLOW) == 0 ? 0 : -errno;
	return fusermount_detach(dir);
}

static int create(const char *dir)
{
	if (mkdir(dir, 0755) == 0 || errno == EEXIST) {
		log_msg(LOG_NOTICE, "created the mount point %s", dir);
		return 0;
	}
	log_msg(LOG_ERR, "%s does not exist and cannot be created (%s): create it, or mount on "
		"a directory whose parent exists", dir, strerror(errno));
	return -1;
}

int mountpoint_prepare(const char *dir)
{
	char type[64], source[256];
	struct statfs sf;
	int i, rc;

	if (strncmp(dir, "/dev/fd/", 8) == 0)
		return 0;
	for (i = 0; i < MAX_DEAD; i++) {
		/* statfs always asks the daemon; stat may answer from the attribute cache. */
		if (statfs(dir, &sf) == 0) {
			if (find_own(dir, type, sizeof(type), source, sizeof(source)) == 0 &&
			    strcmp(type, MOUNTPOINT_FSTYPE) == 0) {
				log_msg(LOG_ERR, "%s is already an irsafs mount (of %s), and it is "
					"alive: not mounting a second one on top; unmount it first "
					"(fusermount3 -u %s)", dir, source, dir);
				return -1;
			}
			return 0;
		}
		if (errno == ENOENT)
			return create(dir);
		if (errno != ENOTCONN)
			return 0;	/* the mount itself says what is wrong */
		rc = find_own(dir, type, sizeof(type), source, sizeof(source));
		if (rc || strcmp(type, MOUNTPOINT_FSTYPE) != 0) {
			log_msg(LOG_ERR, "%s is a dead mount (transport endpoint not connected) of "
				"type %s, not one irsafs left: not touching it; unmount it "
				"(umount -l %s) and start irsafs again", dir,
				rc ? "unknown" : type, dir);
			return -1;
		}
		rc = detach(dir);
		if (rc) {
			log_msg(LOG_ERR, "%s is a dead mount of %s left by an irsafs that was "
				"killed, and detaching it failed: %s", dir, source, strerror(-rc));
			return -1;
		}
		log_msg(LOG_NOTICE, "%s was a dead mount of %s left by an irsafs that was killed "
			"(transport endpoint not connected): detached it before mounting again",
			dir, source);
	}
	log_msg(LOG_ERR, "%s still has dead mounts after %d were detached: giving up", dir,
		MAX_DEAD);
	return -1;
}

/*
 * statfs(dir) in a child, so that a hung daemon can hold only the child: a
 * request the daemon has read cannot be interrupted, not even by SIGKILL.
 * Returns 0, a positive errno from statfs, or -ETIMEDOUT.
 */
static int statfs_within(const char *dir, long timeout_ms)
{
	int fds[2], err = 0, status;
	struct pollfd pfd;
	struct statfs sf;
	pid_t pid;
	ssize_t n;

	if (pipe2(fds, O_CLOEXEC) != 0)
		return errno;
	pid = fork();
	if (pid < 0) {
		err = errno;
		close(fds[0]);
		close(fds[1]);
		return err;
	}
	if (pid == 0) {
		/* Whoever reads our output must not wait for a child stuck in the kernel. */
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
		}
		close(fds[0]);
		err = statfs(dir, &sf) == 0 ? 0 : errno;
		n = write(fds[1], &err, sizeof(err));
		_exit(n == (ssize_t)sizeof(err) ? 0 : 1);
	}
	close(fds[1]);
	pfd = (struct pollfd){ .fd = fds[0], .events = POLLIN };
	while ((n = poll(&pfd, 1, (int)timeout_ms)) < 0 && errno == EINTR)
		;
	if (n == 1)
		n = read(fds[0], &err, sizeof(err));
	close(fds[0]);
	if (n != (ssize_t)sizeof(err)) {
		/* Not reaped: it may stay in the kernel until the mount is gone. */
		kill(pid, SIGKILL);
		waitpid(pid, &status, WNOHANG);
		return -ETIMEDOUT;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return err;
}

static int probe_usage(const char *why)
{
	if (why)
		fprintf(stderr, "irsafs probe: %s\n", why);
	fprintf(why ? stderr : stdout,
		"usage: irsafs probe MOUNTPOINT [--timeout S]\n"
		"Exit 0 when MOUNTPOINT is an irsafs mount whose daemon answers within S seconds\n"
		"(default 5), 1 when it is not mounted, dead or hung, 2 for a bad command line.\n");
	return why ? 2 : 0;
}

int mountpoint_probe_main(int argc, char **argv)
{
	char type[64], source[256];
	double timeout = 5;
	const char *dir = NULL;
	char *end;
	int i, rc;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return probe_usage(NULL);
		if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			errno = 0;
			timeout = strtod(argv[++i], &end);
			if (errno || end == argv[i] || *end || !(timeout >= 0.1 && timeout <= 3600))
				return probe_usage("--timeout: expected seconds from 0.1 to 3600");
		} else if (argv[i][0] == '-' || dir) {
			return probe_usage("expected one MOUNTPOINT and at most --timeout S");
		} else {
			dir = argv[i];
		}
	}
	if (!dir)
		return probe_usage("expected a MOUNTPOINT");
	rc = find_own(dir, type, sizeof(type), source, sizeof(source));
	if (rc == -ENOENT) {
		fprintf(stderr, "irsafs probe: %s is not mounted yet\n", dir);
		return 1;
	}
	if (rc) {
		fprintf(stderr, "irsafs probe: %s: %s\n", dir, strerror(-rc));
		return 1;
	}
	if (strcmp(type, MOUNTPOINT_FSTYPE) != 0) {
		fprintf(stderr, "irsafs probe: %s is a %s mount, not an irsafs one: irsafs has not "
			"mounted it yet\n", dir, type);
		return 1;
	}
	rc = statfs_within(dir, (long)(timeout * 1000));
	if (rc == -ETIMEDOUT) {
		fprintf(stderr, "irsafs probe: the irsafs mount of %s on %s did not answer within "
			"%g s: its daemon is hung or stopped\n", source, dir, timeout);
		return 1;
	}
	if (rc == ENOTCONN) {
		fprintf(stderr, "irsafs probe: %s is a dead irsafs mount of %s (transport "
			"endpoint not connected): its daemon is gone\n", dir, source);
		return 1;
	}
	if (rc) {
		fprintf(stderr, "irsafs probe: statfs %s: %s\n", dir, strerror(rc));
		return 1;
	}
	printf("irsafs probe: %s is a live irsafs mount of %s\n", dir, source);
	return 0;
}
