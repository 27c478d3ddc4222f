/*
 * core/unixsock and core/handoff: sockets bound and connected under a
 * directory whose path is far longer than sockaddr_un holds; the handoff
 * message with its two descriptors; an error message; and malformed,
 * truncated or empty messages refused without leaking a descriptor.
 */
#include "core/handoff.h"
#include "core/unixsock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

/* A directory under /tmp whose path is over 200 bytes; returned malloc'd. */
static char *long_dir(void)
{
	char tmpl[] = "/tmp/test_handoff.XXXXXX", *path = NULL;
	char seg[64];

	if (!mkdtemp(tmpl))
		return NULL;
	memset(seg, 'd', sizeof(seg) - 1);
	seg[sizeof(seg) - 1] = '\0';
	if (asprintf(&path, "%s/%s", tmpl, seg) < 0 || mkdir(path, 0700) != 0)
		return NULL;
	for (int i = 0; i < 3; i++) {
		char *next;

		if (asprintf(&next, "%s/%s", path, seg) < 0 || mkdir(next, 0700) != 0)
			return NULL;
		free(path);
		path = next;
	}
	return path;
}

/* Remove what long_dir made, deepest first. */
static void remove_long_dir(char *path)
{
	char *slash;

	while (strncmp(path, "/tmp/test_handoff.", 18) == 0 && rmdir(path) == 0 &&
	       (slash = strrchr(path, '/')))
		*slash = '\0';
}

static int open_fds(void)
{
	int n = 0, fd;

	for (fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

TEST(sockets_work_under_a_path_longer_than_sun_path)
{
	char *dir = long_dir(), name[256], path[1024];
	int dfd, lfd, cfd, afd;
	struct stat st;

	CHECK(dir != NULL);
	if (!dir)
		return;
	CHECK(strlen(dir) > 200);
	snprintf(path, sizeof(path), "%s/v.sock", dir);
	lfd = unixsock_listen(path, SOCK_SEQPACKET, 0666);
	CHECK(lfd >= 0);
	CHECK(stat(path, &st) == 0 && S_ISSOCK(st.st_mode));
	CHECK_INT(st.st_mode & 0777, 0666);
	dfd = unixsock_open_dir(path, name, sizeof(name));
	CHECK(dfd >= 0);
	CHECK_STR(name, "v.sock");
	cfd = unixsock_connect_at(dfd, name, SOCK_SEQPACKET);
	CHECK(cfd >= 0);
	afd = accept(lfd, NULL, NULL);
	CHECK(afd >= 0);
	CHECK_INT(write(cfd, "x", 1), 1);
	/* A stale socket is replaced; a file that is not a socket is left alone. */
	close(lfd);
	lfd = unixsock_listen(path, SOCK_SEQPACKET, 0600);
	CHECK(lfd >= 0);
	close(lfd);
	unlink(path);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	CHECK_INT(unixsock_listen(path, SOCK_SEQPACKET, 0600), -EEXIST);
	CHECK_INT(unixsock_connect_at(dfd, "missing.sock", SOCK_SEQPACKET), -ENOENT);
	CHECK_INT(unixsock_connect_at(dfd, "a/b", SOCK_SEQPACKET), -EINVAL);
	unlink(path);
	close(cfd);
	close(afd);
	close(dfd);
	remove_long_dir(dir);
	free(dir);
}

TEST(a_volume_travels_with_its_two_descriptors)
{
	struct handoff out, in;
	int sv[2], pipefd[2], before;

	CHECK_INT(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	CHECK_INT(pipe(pipefd), 0);
	handoff_init(&out);
	snprintf(out.volume_id, sizeof(out.volume_id), "csi-123");
	snprintf(out.bucket, sizeof(out.bucket), "demo-bucket");
	snprintf(out.prefix, sizeof(out.prefix), "a b/=c");
	out.generation = 3;
	out.fuse_fd = pipefd[0];
	out.state_fd = pipefd[1];
	CHECK_INT(handoff_send(sv[0], &out), 0);
	before = open_fds();
	CHECK_INT(handoff_recv(sv[1], &in, 1000), 0);
	CHECK_INT(open_fds(), before + 2);
	CHECK_STR(in.volume_id, "csi-123");
	CHECK_STR(in.bucket, "demo-bucket");
	CHECK_STR(in.prefix, "a b/=c");
	CHECK_INT(in.generation, 3);
	CHECK(in.error[0] == '\0');
	/* The same pipe: what goes into one end comes out of the other. */
	CHECK_INT(write(in.state_fd, "z", 1), 1);
	{
		char c = 0;

		CHECK_INT(read(pipefd[0], &c, 1), 1);
		CHECK_INT(c, 'z');
	}
	CHECK(fcntl(in.fuse_fd, F_GETFD) & FD_CLOEXEC);
	handoff_close(&in);
	CHECK_INT(open_fds(), before);
	/* A value with a newline would break the message: refused at the sender. */
	snprintf(out.prefix, sizeof(out.prefix), "a\nb");
	CHECK_INT(handoff_send(sv[0], &out), -EINVAL);
	close(pipefd[0]);
	close(pipefd[1]);
	close(sv[0]);
	close(sv[1]);
}

TEST(an_error_travels_without_descriptors)
{
	struct handoff out, in;
	int sv[2];

	CHECK_INT(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	handoff_init(&out);
	snprintf(out.error, sizeof(out.error), "volume v is being served by pid 7");
	CHECK_INT(handoff_send(sv[0], &out), 0);
	CHECK_INT(handoff_recv(sv[1], &in, 1000), 0);
	CHECK_STR(in.error, "volume v is being served by pid 7");
	CHECK_INT(in.fuse_fd, -1);
	CHECK_INT(in.state_fd, -1);
	close(sv[0]);
	close(sv[1]);
}

static int recv_raw(const char *msg, int with_fds)
{
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)(uintptr_t)msg, .iov_len = strlen(msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	struct handoff in;
	int sv[2], fds[2], rc;

	socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv);
	if (with_fds) {
		pipe(fds);
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(fds));
		memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	}
	sendmsg(sv[0], &mh, 0);
	if (with_fds) {
		close(fds[0]);
		close(fds[1]);
	}
	rc = handoff_recv(sv[1], &in, 1000);
	handoff_close(&in);
	close(sv[0]);
	close(sv[1]);
	return rc;
}

TEST(malformed_messages_are_refused_and_their_descriptors_closed)
{
	int before = open_fds();

	CHECK_INT(recv_raw("hello\nbucket=b\ngeneration=1\n", 1), -EPROTO);
	CHECK_INT(recv_raw("irsafs-handoff 1\nbucket=b\n", 1), -EPROTO);		/* no generation */
	CHECK_INT(recv_raw("irsafs-handoff 1\nbucket=b\ngeneration=0\n", 1), -EPROTO);
	CHECK_INT(recv_raw("irsafs-handoff 1\nbucket=b\ngeneration=1x\n", 1), -EPROTO);
	CHECK_INT(recv_raw("irsafs-handoff 1\nbucket=b\ngeneration=1\n", 0), -EPROTO); /* no fds */
	CHECK_INT(recv_raw("irsafs-handoff 1\nnoequals\n", 1), -EPROTO);
	/* Keys from a newer plugin are ignored. */
	CHECK_INT(recv_raw("irsafs-handoff 1\nbucket=b\ngeneration=2\nfuture=x\n", 1), 0);
	CHECK_INT(open_fds(), before);
}

TEST(a_silent_plugin_times_out_and_a_closed_one_resets)
{
	struct handoff in;
	int sv[2];

	CHECK_INT(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	CHECK_INT(handoff_recv(sv[1], &in, 50), -ETIMEDOUT);
	close(sv[0]);
	CHECK_INT(handoff_recv(sv[1], &in, 1000), -ECONNRESET);
	close(sv[1]);
}

int main(void)
{
	RUN(sockets_work_under_a_path_longer_than_sun_path);
	RUN(a_volume_travels_with_its_two_descriptors);
	RUN(an_error_travels_without_descriptors);
	RUN(malformed_messages_are_refused_and_their_descriptors_closed);
	RUN(a_silent_plugin_times_out_and_a_closed_one_resets);
	return harness_done();
}
