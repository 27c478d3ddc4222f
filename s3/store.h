/*
 * store: the object-store interface the filesystem sees.
 *
 * fs/ knows only this vtable: stat a key, list one page under a prefix, read
 * a byte range of a key pinned to an ETag and a size (struct store_read). The S3 implementation lives in
 * s3.c; later layers (metadata cache, block cache, read-ahead) are stores that
 * wrap a store. Every operation returns 0 or a negative errno chosen by the
 * one table in core/err.c, and fills *e with the detail (status, S3 code) for
 * logs. Every operation is thread-safe and bounded in time by the store's
 * retry budget.
 */
#ifndef IRSAFS_S3_STORE_H
#define IRSAFS_S3_STORE_H

#include <errno.h>
#include <stddef.h>
#include <time.h>

#include "s3/s3_xml.h"

struct s3_error;
struct store_attr;

/*
 * The largest object size irsafs believes (1 PiB; S3 allows 50 TB). Offsets
 * and lengths below it add up without overflow; a larger size from a server
 * is a malformed answer.
 */
#define STORE_SIZE_MAX (1LL << 50)

/*
 * The terms of one read_range: which object the bytes must come from, what
 * ends it, and who may call the read off.
 */
struct store_read {
	/*
	 * In: the ETag the bytes must carry (sent as If-Match; an answer with
	 * another is -ESTALE), or "" when none is known yet. Then out: the ETag
	 * the answer carried, for the caller to pin its next reads to.
	 */
	char etag[128];
	/*
	 * The object's size when known, else -1. Only the size ends a read:
	 * with it, *got is always min(len, size - off), and an answer that
	 * says otherwise (shorter, longer, another place or total) is retried,
	 * then -EIO.
	 */
	long long size;
	/* When it reads non-zero the read stops with -EINTR; NULL: never. */
	const int *cancel;
	/*
	 * Optional out (NULL: not wanted): the attributes the answer's headers
	 * gave, among them the content type and version id a listing lacks.
	 * Filled only when a GET answered; left as it was when none was needed
	 * (nothing to read, a disk cache hit).
	 */
	struct store_attr *headers;
};

/* Terms for a read pinned to etag (NULL or "": any version) of size bytes (-1: unknown). */
void store_read_init(struct store_read *rd, const char *etag, long long size);

struct store_attr {
	long long size;
	struct timespec mtime;
	char etag[128];
	char storage_class[32];
	char content_type[128];
	char version_id[128];
};

/*
 * A store_attr as it is kept by the thousand (listing entries, inode nodes):
 * 456 bytes of fixed arrays become one allocation of what the strings hold,
 * about 40 bytes for an ETag and a storage class (store.c).
 */
struct store_attr_packed {
	long long size;
	struct timespec mtime;
	char *strings;		/* ETag, storage class, content type, version id; NULL: all empty */
};

/* Pack a into *p (which holds nothing yet). 0, or -ENOMEM with *p empty. */
int store_attr_pack(struct store_attr_packed *p, const struct store_attr *a);
/* The store_attr *p was packed from. */
void store_attr_unpack(const struct store_attr_packed *p, struct store_attr *a);
/* The ETag *p was packed with, without unpacking the rest ("" when none). */
const char *store_attr_packed_etag(const struct store_attr_packed *p);
/* Bytes *p holds besides itself. */
size_t store_attr_packed_bytes(const struct store_attr_packed *p);
void store_attr_packed_clear(struct store_attr_packed *p);

struct store;

struct store_ops {
	/* HEAD: -ENOENT when missing, -EACCES when denied. */
	int (*stat)(struct store *s, const char *key, struct store_attr *out, struct s3_error *e);
	/*
	 * One ListObjectsV2 page of keys starting with prefix, delimited by '/'.
	 * token: NULL for the first page, else the previous page's next_token.
	 * max_keys 0 means the store's default page size. The caller cleans the page.
	 */
	int (*list_page)(struct store *s, const char *prefix, const char *token, int max_keys,
			 struct s3_list_page *page, struct s3_error *e);
	/*
	 * Up to len bytes of key from off into dst; *got says how many (0 at or
	 * past the end, short only where rd->size or, when that is unknown, the
	 * server's total ends the object). rd (see struct store_read) pins the
	 * object; -ESTALE if it changed. rd NULL: any version, size unknown.
	 */
	int (*read_range)(struct store *s, const char *key, struct store_read *rd, long long off,
			  size_t len, char *dst, size_t *got, struct s3_error *e);
	/*
	 * Optional (NULL: not offered). A HEAD that also brings the first len
	 * (> 0) bytes, unpinned: one GET of bytes 0..len-1, *out filled from its
	 * headers and *got bytes in dst. A denial is not logged (the caller may
	 * not need the answer). Anything but 0 or -ENOENT means "ask with stat".
	 */
	int (*stat_read)(struct store *s, const char *key, size_t len, char *dst, size_t *got,
			 struct store_attr *out, struct s3_error *e);
	/* Optional: report a denial e of action on key that stat_read kept quiet. */
	void (*report_denial)(struct store *s, const char *action, const char *key,
			      const struct s3_error *e);
	void (*destroy)(struct store *s);
};

struct store {
	const struct store_ops *ops;
};

static inline int store_stat(struct store *s, const char *key, struct store_attr *out,
			     struct s3_error *e)
{
	return s->ops->stat(s, key, out, e);
}

static inline int store_list_page(struct store *s, const char *prefix, const char *token,
				  int max_keys, struct s3_list_page *page, struct s3_error *e)
{
	return s->ops->list_page(s, prefix, token, max_keys, page, e);
}

static inline int store_read_range(struct store *s, const char *key, struct store_read *rd,
				   long long off, size_t len, char *dst, size_t *got,
				   struct s3_error *e)
{
	return s->ops->read_range(s, key, rd, off, len, dst, got, e);
}

static inline int store_stat_read(struct store *s, const char *key, size_t len, char *dst,
				  size_t *got, struct store_attr *out, struct s3_error *e)
{
	if (!s->ops->stat_read)
		return -ENOSYS;
	return s->ops->stat_read(s, key, len, dst, got, out, e);
}

static inline void store_report_denial(struct store *s, const char *action, const char *key,
				       const struct s3_error *e)
{
	if (s->ops->report_denial)
		s->ops->report_denial(s, action, key, e);
}

static inline void store_destroy(struct store *s)
{
	if (s)
		s->ops->destroy(s);
}

#endif
