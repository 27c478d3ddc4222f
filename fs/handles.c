/*
 * The open files and directories of a mount.
 *
 * The kernel sends a RELEASE (RELEASEDIR) for every open it was answered,
 * but when the connection ends it drops the ones it had queued and not yet
 * handed over: an unmount just after a close, the last close after a lazy
 * detach, an aborted connection. So every handle stays on one list from its
 * open to its release, and what is left when the loop has returned is closed
 * then (fs_handles_close), before the store stack goes.
 */
#include "fs/fs_i.h"

void fs_handles_init(struct irsafs *fs)
{
	pthread_mutex_init(&fs->handles_lock, NULL);
	fs->handles = NULL;
}

void fs_handle_add(struct irsafs *fs, struct fs_handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	h->prev = NULL;
	h->next = fs->handles;
	if (fs->handles)
		fs->handles->prev = h;
	fs->handles = h;
	pthread_mutex_unlock(&fs->handles_lock);
}

void fs_handle_close(struct irsafs *fs, struct fs_handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		fs->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&fs->handles_lock);
	h->close(fs, h);
}

unsigned fs_handles_close(struct irsafs *fs)
{
	unsigned n = 0;

	while (fs->handles) {
		fs_handle_close(fs, fs->handles);
		n++;
	}
	return n;
}
