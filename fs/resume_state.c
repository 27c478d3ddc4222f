/*
 * What a successor may trust of what it reads before libfuse does: a slot
 * and the INIT its predecessor left in the state file, and the kernel's
 * BATCH_FORGETs, which may name inodes of a server gone (fs/resume_i.h).
 * No state here: tests/fuzz/fuzz_resume.c feeds these any bytes.
 */
#include <linux/fuse.h>
#include <stddef.h>
#include <string.h>

#include "fs/resume_i.h"

/* The first fields of fuse_init_in, which every protocol version has. */
#define INIT_IN_MIN 16

int resume_slot_replayable(const struct slot *s)
{
	struct fuse_in_header in;

	if (s->len < sizeof(in) || s->len > SLOT_DATA || s->len != s->total)
		return 0;
	memcpy(&in, s->data, sizeof(in));
	return in.len == s->len && in.unique == s->unique;
}

int resume_init_usable(const uint8_t *init, uint32_t len)
{
	struct fuse_in_header in;

	if (len < sizeof(in) + INIT_IN_MIN || len > INIT_MAX)
		return 0;
	memcpy(&in, init, sizeof(in));
	return in.len == len && in.opcode == FUSE_INIT;
}

size_t resume_forget_filter(uint8_t *buf, size_t n, uint64_t base)
{
	const size_t hlen = sizeof(struct fuse_in_header) + sizeof(struct fuse_batch_forget_in);
	const size_t one = sizeof(struct fuse_forget_one);
	struct fuse_in_header in;
	struct fuse_batch_forget_in b;
	struct fuse_forget_one f;
	uint32_t i, kept = 0;

	if (n < hlen)
		return n;
	memcpy(&in, buf, sizeof(in));
	memcpy(&b, buf + sizeof(in), sizeof(b));
	if (b.count > (n - hlen) / one)
		return n;
	for (i = 0; i < b.count; i++) {
		memcpy(&f, buf + hlen + (size_t)i * one, one);
		if (resume_is_old(f.nodeid, base))
			continue;
		memcpy(buf + hlen + (size_t)kept++ * one, &f, one);
	}
	if (!kept)
		return 0;
	b.count = kept;
	in.len = (uint32_t)(hlen + (size_t)kept * one);
	memcpy(buf, &in, sizeof(in));
	memcpy(buf + sizeof(in), &b, sizeof(b));
	return in.len;
}
