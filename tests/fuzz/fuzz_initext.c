/*
 * fuzz_initext: what irsafs reads of the kernel's FUSE INIT and writes into
 * libfuse's answer (fs/initext.c). The input is a request as read from
 * /dev/fuse, then (after its first byte, a length) the answer's argument.
 * The answer is sent for the request's own unique id, as libfuse does.
 * Invariants: no crash; an answer that is not changed is the caller's own
 * iovec; a changed one has the same length, differs only in the two flag
 * words, and sets exactly FUSE_INIT_EXT and FUSE_DIRECT_IO_ALLOW_MMAP.
 * What an INIT offered stays until the next INIT, as in the daemon, so one
 * input may see the offer of an earlier one.
 */
#include <linux/fuse.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs/initext.h"

#ifndef FUSE_DIRECT_IO_ALLOW_MMAP
#define FUSE_DIRECT_IO_ALLOW_MMAP (1ULL << 36)	/* Linux 6.6; Debian 12's headers are 6.1 */
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t word_at(const unsigned char *p, size_t off)
{
	uint32_t v;

	memcpy(&v, p + off, sizeof(v));
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const size_t f1 = offsetof(struct fuse_init_out, flags);
	const size_t f2 = offsetof(struct fuse_init_out, flags2);
	struct fuse_out_header out = { 0 };
	struct fuse_in_header in;
	struct initext_copy copy;
	struct iovec iov[2], *got;
	unsigned char arg[160];
	size_t req_len, arg_len, i;

	if (size < 1)
		return 0;
	req_len = data[0];
	if (req_len > size - 1)
		req_len = size - 1;
	arg_len = size - 1 - req_len;
	if (arg_len > sizeof(arg))
		arg_len = sizeof(arg);
	initext_request(data + 1, req_len);

	if (req_len >= sizeof(in)) {
		memcpy(&in, data + 1, sizeof(in));
		out.unique = in.unique;
	}
	memcpy(arg, data + 1 + req_len, arg_len);
	out.len = (uint32_t)(sizeof(out) + arg_len);
	iov[0].iov_base = &out;
	iov[0].iov_len = sizeof(out);
	iov[1].iov_base = arg;
	iov[1].iov_len = arg_len;
	got = initext_reply(iov, 2, &copy);
	if (got == iov)
		return 0;
	if (got != copy.iov || got[0].iov_base != &out || got[1].iov_len != arg_len ||
	    arg_len < f2 + sizeof(uint32_t))
		abort();
	for (i = 0; i < arg_len; i++) {
		int in_flags = (i >= f1 && i < f1 + 4) || (i >= f2 && i < f2 + 4);

		if (!in_flags && copy.arg[i] != arg[i])
			abort();
	}
	if (word_at(copy.arg, f1) != (word_at(arg, f1) | FUSE_INIT_EXT) ||
	    word_at(copy.arg, f2) != (word_at(arg, f2) | (uint32_t)(FUSE_DIRECT_IO_ALLOW_MMAP >> 32)))
		abort();
	return 0;
}
