/*
 * pollset: the array of pollfds one turn of the event loop waits on.
 *
 * Each module adds its fds (pollset_add returns the slot) and remembers the
 * slot, and after poll(2) reads its revents back from that slot. The array is
 * rebuilt every turn; it grows as needed. Not thread-safe.
 */
#ifndef IRSAFS_CSI_POLLSET_H
#define IRSAFS_CSI_POLLSET_H

#include <poll.h>
#include <stddef.h>

struct pollset {
	struct pollfd *fds;
	size_t n;
	size_t cap;
};

void pollset_init(struct pollset *ps);
void pollset_cleanup(struct pollset *ps);
/* Start a new turn: no fds. */
void pollset_clear(struct pollset *ps);
/* Add fd with events; returns its slot, or -1 on ENOMEM. */
int pollset_add(struct pollset *ps, int fd, short events);
/* The revents of slot (0 for -1 or a slot not added this turn). */
short pollset_revents(const struct pollset *ps, int slot);

#endif
