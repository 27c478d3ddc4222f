/*
 * The volume's state file as fs/resume.c lays it out: shared by every server
 * generation of one volume (and read by tests/unit/test_resume.c, which
 * writes damaged ones), and the checks a successor makes of what it reads
 * (fs/resume_state.c, fuzzed by tests/fuzz/fuzz_resume.c). Nothing else
 * includes it.
 *
 * The file is written by a predecessor that may have died at any
 * instruction, or been a different build: a successor trusts none of its
 * lengths before checking them against the slot and the request's own header.
 */
#ifndef IRSAFS_FS_RESUME_I_H
#define IRSAFS_FS_RESUME_I_H

#include <linux/fuse.h>
#include <stddef.h>
#include <stdint.h>

#define STATE_MAGIC 0x31736661737269ULL	/* "irsafs1" */
#define SLOTS 256
#define SLOT_DATA 1000			/* a READ is 80 bytes, a LOOKUP at most ~300 */
#define INIT_MAX 256

enum { SLOT_FREE, SLOT_FILLING, SLOT_FULL };

struct slot {
	uint32_t state;
	uint32_t len;			/* bytes kept in data */
	uint32_t total;			/* the request's length (> len: too long to keep) */
	uint32_t replays;
	uint64_t unique;
	uint8_t data[SLOT_DATA];
};

struct state {
	uint64_t magic;
	uint32_t generation;		/* of the last server that took the volume */
	uint32_t init_len;		/* 0 until the kernel's INIT was read */
	uint32_t init_replied;
	uint32_t pad;
	uint8_t init[INIT_MAX];
	struct slot slots[SLOTS];
};

/*
 * Whether a FULL slot a predecessor left holds one whole request: its lengths
 * fit the slot and agree with the request's own header. A request too long to
 * keep, or a damaged state file, is not replayed (libfuse would read past it).
 */
int resume_slot_replayable(const struct slot *s);

/* Whether init[0..len) is one whole FUSE INIT request, as the kernel sent it. */
int resume_init_usable(const uint8_t *init, uint32_t len);

/* Whether a server before the one whose first inode number is base gave nodeid out. */
static inline int resume_is_old(uint64_t nodeid, uint64_t base)
{
	return nodeid != 0 && nodeid != FUSE_ROOT_ID && nodeid < base;
}

/*
 * Drop from the BATCH_FORGET in buf[0..n) the inodes a server before this one
 * gave out (below base, but for the root); its new length, 0 when none is
 * left. A message too short for its count is returned as it is.
 */
size_t resume_forget_filter(uint8_t *buf, size_t n, uint64_t base);

#endif
