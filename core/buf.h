/*
 * buf: a growable byte buffer with a hard maximum.
 *
 * Every buffer that grows from network input is a struct buf with a maximum
 * chosen by its owner (an STS reply, a list page, an error body). Appending
 * past the maximum fails with -EMSGSIZE and leaves the contents as they were,
 * so a hostile peer can cost at most `max` bytes. The data is always
 * NUL-terminated (the terminator is not counted in len). Not thread-safe: a
 * buf belongs to one request at a time.
 */
#ifndef IRSAFS_CORE_BUF_H
#define IRSAFS_CORE_BUF_H

#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
};

void buf_init(struct buf *b, size_t max);
void buf_cleanup(struct buf *b);
/* Empty the buffer, keeping its memory. */
void buf_reset(struct buf *b);
/* Returns 0, -EMSGSIZE past max, or -ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Wipe the contents (for buffers that held secrets), then free. */
void buf_cleanse(struct buf *b);
/* Hand the NUL-terminated data to the caller; the buf is left empty. */
char *buf_steal(struct buf *b);

#endif
