/*
 * The volume's state file as fs/resume.c lays it out: shared by every server
 * generation of one volume (and read by tests/unit/test_resume.c, which
 * writes damaged ones). Nothing else includes it.
 *
 * The file is written by a predecessor that may have died at any
 * instruction, or been a different build: a successor trusts none of its
 * lengths before checking them against the slot and the request's own header.
 */
#ifndef IRSAFS_FS_RESUME_I_H
#define IRSAFS_FS_RESUME_I_H

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

#endif
