#include "core/handoff.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAGIC "irsafs-handoff 1\n"

void handoff_init(struct handoff *h)
{
	memset(h, 0, sizeof(*h));
	h->fuse_fd = -1;
	h->state_fd = -1;
}

void handoff_close(struct handoff *h)
{
	if (h->fuse_fd >= 0)
		close(h->fuse_fd);
	if (h->state_fd >= 0)
		close(h->state_fd);
	h->fuse_fd = h->state_fd = -1;
}

static int put(char *msg, size_t *off, const char *key, const char *val)
{
	int n;

	if (strchr(val, '\n'))
		return -EINVAL;
	n = snprintf(msg + *off, HANDOFF_MAX_MSG - *off, "%s=%s\n", key, val);
	if (n < 0 || (size_t)n >= HANDOFF_MAX_MSG - *off)
		return -EMSGSIZE;
	*off += (size_t)n;
	return 0;
}

int handoff_send(int sock, const struct handoff *h)
{
	char msg[HANDOFF_MAX_MSG], gen[16];
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov;
	struct msghdr mh;
	struct cmsghdr *cm;
	size_t off = 0;
	int fds[2], rc;

	memcpy(msg, MAGIC, sizeof(MAGIC) - 1);
	off = sizeof(MAGIC) - 1;
	if (h->error[0]) {
		rc = put(msg, &off, "error", h->error);
	} else {
		snprintf(gen, sizeof(gen), "%u", h->generation);
		rc = put(msg, &off, "volume_id", h->volume_id);
		if (!rc)
			rc = put(msg, &off, "bucket", h->bucket);
		if (!rc)
			rc = put(msg, &off, "prefix", h->prefix);
		if (!rc)
			rc = put(msg, &off, "generation", gen);
	}
	if (rc)
		return rc;
	memset(&mh, 0, sizeof(mh));
	iov.iov_base = msg;
	iov.iov_len = off;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (!h->error[0]) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
		fds[0] = h->fuse_fd;
		fds[1] = h->state_fd;
		memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	}
	while (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/* Copy a value into a fixed field; -EPROTO when it does not fit. */
static int take(char *dst, size_t len, const char *val)
{
	size_t n = strlen(val);

	if (n >= len)
		return -EPROTO;
	memcpy(dst, val, n + 1);
	return 0;
}

static int parse(char *msg, struct handoff *h)
{
	char *line, *save = NULL, *eq, *end;
	unsigned long gen;
	int rc = 0;

	if (strncmp(msg, MAGIC, sizeof(MAGIC) - 1) != 0)
		return -EPROTO;
	for (line = strtok_r(msg + sizeof(MAGIC) - 1, "\n", &save); line && !rc;
	     line = strtok_r(NULL, "\n", &save)) {
		eq = strchr(line, '=');
		if (!eq)
			return -EPROTO;
		*eq++ = '\0';
		if (!strcmp(line, "volume_id")) {
			rc = take(h->volume_id, sizeof(h->volume_id), eq);
		} else if (!strcmp(line, "bucket")) {
			rc = take(h->bucket, sizeof(h->bucket), eq);
		} else if (!strcmp(line, "prefix")) {
			rc = take(h->prefix, sizeof(h->prefix), eq);
		} else if (!strcmp(line, "error")) {
			rc = take(h->error, sizeof(h->error), eq);
		} else if (!strcmp(line, "generation")) {
			errno = 0;
			gen = strtoul(eq, &end, 10);
			if (errno || *end || gen == 0 || gen > 0xffffffUL)
				return -EPROTO;
			h->generation = (unsigned)gen;
		}
		/* Other keys: from a newer plugin; ignored. */
	}
	if (rc)
		return rc;
	if (h->error[0])
		return 0;
	return h->bucket[0] && h->generation ? 0 : -EPROTO;
}

int handoff_recv(int sock, struct handoff *h, int timeout_ms)
{
	char msg[HANDOFF_MAX_MSG + 1];
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	struct iovec iov = { .iov_base = msg, .iov_len = HANDOFF_MAX_MSG };
	struct msghdr mh;
	struct cmsghdr *cm;
	int fds[4], nfd = 0, i, rc;
	ssize_t n;

	handoff_init(h);
	do
		rc = poll(&pfd, 1, timeout_ms);
	while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return -errno;
	if (rc == 0)
		return -ETIMEDOUT;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof(ctl.buf);
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		i = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		if (i > 4 - nfd)
			i = 4 - nfd;
		memcpy(fds + nfd, CMSG_DATA(cm), (size_t)i * sizeof(int));
		nfd += i;
	}
	msg[n] = '\0';
	if (n == 0)
		rc = -ECONNRESET;	/* the plugin closed without a word */
	else if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		rc = -EPROTO;
	else
		rc = parse(msg, h);
	if (rc == 0 && !h->error[0] && nfd == 2) {
		h->fuse_fd = fds[0];
		h->state_fd = fds[1];
		return 0;
	}
	for (i = 0; i < nfd; i++)
		close(fds[i]);
	if (rc == 0 && !h->error[0])
		rc = -EPROTO;
	return rc;
}
