#include "csi/pollset.h"

#include <stdlib.h>

void pollset_init(struct pollset *ps)
{
	ps->fds = NULL;
	ps->n = 0;
	ps->cap = 0;
}

void pollset_cleanup(struct pollset *ps)
{
	free(ps->fds);
	pollset_init(ps);
}

void pollset_clear(struct pollset *ps)
{
	ps->n = 0;
}

int pollset_add(struct pollset *ps, int fd, short events)
{
	struct pollfd *p;
	size_t cap;

	if (ps->n == ps->cap) {
		cap = ps->cap ? ps->cap * 2 : 16;
		p = realloc(ps->fds, cap * sizeof(*p));
		if (!p)
			return -1;
		ps->fds = p;
		ps->cap = cap;
	}
	ps->fds[ps->n].fd = fd;
	ps->fds[ps->n].events = events;
	ps->fds[ps->n].revents = 0;
	return (int)ps->n++;
}

short pollset_revents(const struct pollset *ps, int slot)
{
	if (slot < 0 || (size_t)slot >= ps->n)
		return 0;
	return ps->fds[slot].revents;
}
