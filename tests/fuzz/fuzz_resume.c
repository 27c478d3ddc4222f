/*
 * fuzz_resume: what a successor reads before libfuse does (fs/resume_state.c).
 * The input's first byte picks the check; the rest is a state file's slot, a
 * saved INIT, or a BATCH_FORGET (after 8 bytes of base inode number).
 * Invariants: no crash or read past the input; a slot called replayable
 * holds one whole request, as its header says; an INIT called usable is an
 * INIT of the length saved; a filtered BATCH_FORGET keeps, in order, exactly
 * the ids a server before this one did not give out, and its header says
 * its new length and count.
 */
#include <linux/fuse.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs/resume_i.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_slot(const uint8_t *p, size_t n)
{
	struct slot s;
	struct fuse_in_header in;

	memset(&s, 0, sizeof(s));
	memcpy(&s, p, n < sizeof(s) ? n : sizeof(s));
	if (!resume_slot_replayable(&s))
		return;
	memcpy(&in, s.data, sizeof(in));
	if (s.len < sizeof(in) || s.len > SLOT_DATA || in.len != s.len || in.unique != s.unique)
		abort();
}

static void check_init(const uint8_t *p, size_t n)
{
	struct fuse_in_header in;
	uint8_t init[INIT_MAX + 64];
	uint32_t len;

	if (n < 2)
		return;
	len = (uint32_t)p[0] | (uint32_t)p[1] << 8;	/* the saved length, maybe a lie */
	p += 2;
	n -= 2;
	memset(init, 0, sizeof(init));
	memcpy(init, p, n < sizeof(init) ? n : sizeof(init));
	if (len > sizeof(init))
		len = sizeof(init);	/* st->init is INIT_MAX bytes; more is refused */
	if (!resume_init_usable(init, len))
		return;
	memcpy(&in, init, sizeof(in));
	if (len > INIT_MAX || in.len != len || in.opcode != FUSE_INIT || len <= sizeof(in))
		abort();
}

static void check_forget(const uint8_t *p, size_t n)
{
	const size_t hlen = sizeof(struct fuse_in_header) + sizeof(struct fuse_batch_forget_in);
	const size_t one = sizeof(struct fuse_forget_one);
	struct fuse_batch_forget_in b0, b1;
	struct fuse_forget_one f, g;
	struct fuse_in_header in;
	uint8_t *buf;
	uint64_t base;
	size_t got, i, k = 0;

	if (n < sizeof(base))
		return;
	memcpy(&base, p, sizeof(base));
	p += sizeof(base);
	n -= sizeof(base);
	buf = malloc(n ? n : 1);	/* exactly n: ASan sees any read past it */
	if (!buf)
		return;
	memcpy(buf, p, n);
	got = resume_forget_filter(buf, n, base);
	if (got > n)
		abort();
	if (n < hlen) {
		if (got != n || memcmp(buf, p, n))
			abort();
		goto out;
	}
	memcpy(&b0, p + sizeof(in), sizeof(b0));
	if (b0.count > (n - hlen) / one) {
		if (got != n || memcmp(buf, p, n))
			abort();	/* too short for its count: as it was */
		goto out;
	}
	for (i = 0; i < b0.count; i++) {
		memcpy(&f, p + hlen + i * one, one);
		if (f.nodeid != 0 && f.nodeid != FUSE_ROOT_ID && f.nodeid < base)
			continue;
		if (got == 0)
			abort();	/* one was left, yet all went */
		memcpy(&g, buf + hlen + k * one, one);
		if (memcmp(&f, &g, one))
			abort();
		k++;
	}
	if (got == 0)
		goto out;
	memcpy(&in, buf, sizeof(in));
	memcpy(&b1, buf + sizeof(in), sizeof(b1));
	if (b1.count != k || in.len != got || got != hlen + k * one)
		abort();
out:
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		check_slot(data + 1, size - 1);
		break;
	case 1:
		check_init(data + 1, size - 1);
		break;
	default:
		check_forget(data + 1, size - 1);
		break;
	}
	return 0;
}
