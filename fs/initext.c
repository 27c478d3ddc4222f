/*
 * The INIT flags libfuse 3.14 cannot ask for (see initext.h).
 *
 * The kernel sends INIT first and nothing else until it has the answer, and
 * libfuse answers it before any other request is read: offered is written
 * before any FUSE operation runs and only read after.
 */
#include "fs/initext.h"

#include <linux/fuse.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "fs/readgate.h"

#ifndef FUSE_DIRECT_IO_ALLOW_MMAP
#define FUSE_DIRECT_IO_ALLOW_MMAP (1ULL << 36)	/* Linux 6.6, protocol 7.39 */
#endif

/* Where the flags are: a request is the header, then fuse_init_in. */
#define IN_FLAGS	(sizeof(struct fuse_in_header) + offsetof(struct fuse_init_in, flags))
#define IN_FLAGS2	(sizeof(struct fuse_in_header) + offsetof(struct fuse_init_in, flags2))
#define OUT_FLAGS	offsetof(struct fuse_init_out, flags)
#define OUT_FLAGS2	offsetof(struct fuse_init_out, flags2)

static uint64_t init_unique;
static int offered;		/* atomic */

/*
 * Both sides are read and written with memcpy: the buffers are libfuse's,
 * and nothing promises they are aligned for the kernel's structs.
 */
void initext_request(const void *buf, size_t len)
{
	struct fuse_in_header in;
	uint32_t flags, flags2;

	if (len < IN_FLAGS2 + sizeof(flags2))
		return;
	memcpy(&in, buf, sizeof(in));
	if (in.opcode != FUSE_INIT)
		return;
	memcpy(&flags, (const char *)buf + IN_FLAGS, sizeof(flags));
	memcpy(&flags2, (const char *)buf + IN_FLAGS2, sizeof(flags2));
	init_unique = in.unique;
	__atomic_store_n(&offered, (flags & FUSE_INIT_EXT) &&
			 (flags2 & (uint32_t)(FUSE_DIRECT_IO_ALLOW_MMAP >> 32)), __ATOMIC_RELEASE);
}

struct iovec *initext_reply(struct iovec *iov, int count, struct initext_copy *copy)
{
	struct fuse_out_header out;
	uint32_t flags, flags2;

	if (count != 2 || iov[0].iov_len < sizeof(out) || !init_unique)
		return iov;
	memcpy(&out, iov[0].iov_base, sizeof(out));
	if (out.unique != init_unique || out.error || !initext_direct_io_mmap() ||
	    iov[1].iov_len < OUT_FLAGS2 + sizeof(flags2) || iov[1].iov_len > sizeof(copy->arg))
		return iov;
	memcpy(copy->arg, iov[1].iov_base, iov[1].iov_len);
	memcpy(&flags, copy->arg + OUT_FLAGS, sizeof(flags));
	memcpy(&flags2, copy->arg + OUT_FLAGS2, sizeof(flags2));
	flags |= FUSE_INIT_EXT;
	flags2 |= (uint32_t)(FUSE_DIRECT_IO_ALLOW_MMAP >> 32);
	memcpy(copy->arg + OUT_FLAGS, &flags, sizeof(flags));
	memcpy(copy->arg + OUT_FLAGS2, &flags2, sizeof(flags2));
	copy->iov[0] = iov[0];
	copy->iov[1].iov_base = copy->arg;
	copy->iov[1].iov_len = iov[1].iov_len;
	return copy->iov;
}

int initext_direct_io_mmap(void)
{
	return __atomic_load_n(&offered, __ATOMIC_ACQUIRE);
}

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n;

	(void)userdata;
	readgate_pass();
	n = read(fd, buf, len);
	if (n > 0)
		initext_request(buf, (size_t)n);
	return n;
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct initext_copy copy;

	(void)userdata;
	return writev(fd, initext_reply(iov, count, &copy), count);
}

int initext_session_mount(struct fuse_session *se, const char *mountpoint)
{
	static const struct fuse_custom_io io = { .read = io_read, .writev = io_writev };

	if (fuse_session_mount(se, mountpoint) != 0)
		return -1;
	if (fuse_session_custom_io(se, &io, fuse_session_fd(se)) != 0) {
		log_msg(LOG_ERR, "cannot attach to the FUSE connection");
		fuse_session_unmount(se);
		return -1;
	}
	return 0;
}
