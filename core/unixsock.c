#include "core/unixsock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* The short address of name in dirfd. 0 or -ENAMETOOLONG. */
static int short_addr(int dirfd, const char *name, struct sockaddr_un *sa)
{
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (!*name || strchr(name, '/'))
		return -EINVAL;
	n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", dirfd, name);
	return n < 0 || (size_t)n >= sizeof(sa->sun_path) ? -ENAMETOOLONG : 0;
}

int unixsock_listen_at(int dirfd, const char *name, int type, unsigned mode)
{
	struct sockaddr_un sa;
	char tmp[64];
	struct stat st;
	mode_t old;
	int fd, rc;

	/*
	 * Bound and listening under a temporary name, then renamed into place:
	 * whoever sees NAME can connect at once (a bound socket that does not
	 * listen yet refuses connections, and clients connect as soon as the
	 * file appears).
	 */
	snprintf(tmp, sizeof(tmp), ".unixsock-%d.tmp", (int)getpid());
	rc = short_addr(dirfd, tmp, &sa);
	if (rc == 0 && (!*name || strchr(name, '/')))
		rc = -EINVAL;
	if (rc)
		return rc;
	/* Replace only a socket: never remove a file someone put there. */
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISSOCK(st.st_mode))
		return -EEXIST;
	unlinkat(dirfd, tmp, 0);
	fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/*
	 * The mode comes from the umask at bind time (a chmod afterwards would
	 * follow a symlink someone swapped in). umask is per process: callers
	 * that bind from several threads at once must serialise.
	 */
	old = umask(~mode & 0777);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc != 0 || listen(fd, 16) != 0)
		goto fail;
	/* rename replaces a stale socket (or anything swapped in since) atomically. */
	if (renameat(dirfd, tmp, dirfd, name) != 0)
		goto fail_unlink;
	return fd;

fail_unlink:
	rc = -errno;
	unlinkat(dirfd, tmp, 0);
	close(fd);
	return rc;
fail:
	rc = -errno;
	close(fd);
	unlinkat(dirfd, tmp, 0);
	return rc;
}

int unixsock_open_dir(const char *path, char *name, size_t namelen)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	size_t dlen;
	int fd;

	if (!slash || !slash[1])
		return -EINVAL;
	dlen = (size_t)(slash - path);
	if (dlen == 0)
		dlen = 1;	/* "/name" */
	if (dlen >= sizeof(dir) || strlen(slash + 1) >= namelen)
		return -ENAMETOOLONG;
	memcpy(dir, path, dlen);
	dir[dlen] = '\0';
	snprintf(name, namelen, "%s", slash + 1);
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int unixsock_listen(const char *path, int type, unsigned mode)
{
	char name[256];
	int dirfd, fd;

	dirfd = unixsock_open_dir(path, name, sizeof(name));
	if (dirfd < 0)
		return dirfd;
	fd = unixsock_listen_at(dirfd, name, type, mode);
	close(dirfd);
	return fd;
}

int unixsock_connect_at(int dirfd, const char *name, int type)
{
	struct sockaddr_un sa;
	int fd, rc;

	rc = short_addr(dirfd, name, &sa);
	if (rc)
		return rc;
	fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	while ((rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa))) != 0 && errno == EINTR)
		;
	if (rc != 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}
