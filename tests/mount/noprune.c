/*
 * A kernel without FUSE_NOTIFY_PRUNE, for test_listings_streamed: preloaded
 * into irsafs, it refuses that notification as such a kernel does (EINVAL)
 * and passes every other write to /dev/fuse through. Built at test time:
 * cc -shared -fPIC -o noprune.so noprune.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#define NOTIFY_PRUNE 9

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	static ssize_t (*next)(int, const struct iovec *, int);
	uint64_t unique;
	int32_t code;

	/* struct fuse_out_header: len, error (a notification's code), unique (0) */
	if (cnt > 0 && iov[0].iov_len >= 16) {
		memcpy(&code, (const char *)iov[0].iov_base + 4, sizeof(code));
		memcpy(&unique, (const char *)iov[0].iov_base + 8, sizeof(unique));
		if (unique == 0 && code == NOTIFY_PRUNE) {
			errno = EINVAL;
			return -1;
		}
	}
	if (!next)
		next = (ssize_t (*)(int, const struct iovec *, int))dlsym(RTLD_NEXT, "writev");
	return next(fd, iov, cnt);
}
