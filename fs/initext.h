/*
 * What irsafs asks of the kernel's FUSE INIT beyond what libfuse 3.14 can.
 *
 * libfuse 3.14 keeps the negotiated flags in 32 bits, so it can neither see
 * nor ask for FUSE_DIRECT_IO_ALLOW_MMAP (Linux 6.6, bit 36): without it a file
 * opened with direct I/O cannot be mapped MAP_SHARED (mmap fails ENODEV), and
 * loaders such as safetensors or numpy.memmap map files shared. These hooks sit
 * on the /dev/fuse reads and writes: one notes what the kernel's INIT offers,
 * the other sets the flag in libfuse's answer when the kernel offered it.
 */
#ifndef IRSAFS_FS_INITEXT_H
#define IRSAFS_FS_INITEXT_H

#include <stddef.h>
#include <sys/uio.h>

#include "fs/irsafs.h"	/* FUSE_USE_VERSION, then fuse_lowlevel.h */

/* Space initext_reply may use for its copy of libfuse's answer. */
struct initext_copy {
	struct iovec iov[2];
	unsigned char arg[128];
};

/* A request just read from /dev/fuse (any; only INIT is looked at). */
void initext_request(const void *buf, size_t len);

/*
 * An answer about to be written: for the answer to INIT, returns an iovec
 * with FUSE_DIRECT_IO_ALLOW_MMAP set when the kernel offered it (in copy);
 * for anything else, iov itself.
 */
struct iovec *initext_reply(struct iovec *iov, int count, struct initext_copy *copy);

/* The kernel's INIT offered (and so got) FUSE_DIRECT_IO_ALLOW_MMAP. */
int initext_direct_io_mmap(void);

/* fuse_session_mount, with the hooks above on the connection. */
int initext_session_mount(struct fuse_session *se, const char *mountpoint);

#endif
