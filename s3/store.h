/*
 * store: the object-store interface every layer above s3/ sees.
 *
 * A store is one vtable (struct store_ops) behind a struct store. The S3
 * store (s3.c) is the bottom of the stack; every cache (cache/) is a store
 * that wraps the store below it, handles the hooks it is for and forwards
 * every other hook unchanged, as s3backer's layers do. The application
 * composes the stack in one place (app/stack.c) and the filesystem (fs/)
 * holds only its top.
 *
 * The interface speaks in its own types: attributes (struct store_attr),
 * list pages (struct store_page), the terms of a read (struct store_read)
 * and errors (struct store_error). No layer above s3/ sees an HTTP answer,
 * an S3 error code or a credential: the S3 store classifies every failure
 * with core/err.h's classes, and for a denial it names the action, the
 * resource and the principal that was refused. Every operation returns 0 or
 * a negative errno; an errno that stands for a remote outcome is the one
 * table's (core/err.c) for the error's class. Every operation is thread-safe
 * and bounded in time by the store's retry budget.
 */
#ifndef IRSAFS_S3_STORE_H
#define IRSAFS_S3_STORE_H

#include <errno.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include "core/err.h"

struct log_fields;
struct store_attr;

/*
 * The largest object size irsafs believes (1 PiB; S3 allows 50 TB). Offsets
 * and lengths below it add up without overflow; a larger size from a server
 * is a malformed answer.
 */
#define STORE_SIZE_MAX (1LL << 50)

/*
 * What went wrong with an operation, as the store says it. cls decides the
 * errno (err_class_errno) and whether it was a denial; the texts are for log
 * lines and the mount root's last_denial xattr, and hold no secret (the S3
 * store takes the credentials it signed with out of whatever the server
 * said). A store fills it on every failure with a remote cause; after 0, or
 * an error of its own (-ENOMEM, -EINVAL, -EINTR), cls is ERR_OK or says what
 * the last request met.
 */
struct store_error {
	enum err_class cls;		/* core/err.h; ERR_OK: nothing remote went wrong */
	int http_status;		/* 0 when there was no HTTP answer */
	char code[64];			/* the server's code, for the log field only */
	char what[320];			/* "403 AccessDenied (Access Denied)", "transport error: ..." */
	char ids[256];			/* " [request id X, id-2 Y]" (ends a log line), or "" */
	char request_id[96];
	char host_id[128];
	char storage_class[32];		/* an archived object's class, as the answer named it */
	char access_tier[32];		/* ... and its archive tier */
	char region[32];		/* the region a redirect named, "" when none */
	long long latency_us;		/* the whole operation, every attempt and wait */
	/* The request, for log fields. */
	char op[8];			/* "HEAD", "GET", "LIST" */
	char bucket[64];
	char key[1032];			/* the key, or a listing's prefix */
	/* A denial (ERR_DENIED): who was refused what, as the store names it. */
	char action[32];		/* "s3:GetObject", "s3:ListBucket" */
	char resource[1200];		/* "arn:aws:s3:::b/k", "arn:aws:s3:::b (prefix p/)" */
	char principal[512];		/* the identity refused; "this identity" when unknown */
	char hint[200];			/* what to do about it */
};

void store_error_clear(struct store_error *e);

/* A heap copy of e to keep for later (free it); NULL for none, ERR_OK or no memory. */
struct store_error *store_error_dup(const struct store_error *e);

/* A kept copy (store_error_dup) handed to e; e cleared when none was kept. */
void store_error_give(const struct store_error *kept, struct store_error *e);

/* The errno of e's class (the one table); 0 for ERR_OK. */
static inline int store_error_errno(const struct store_error *e)
{
	return err_class_errno(e->cls);
}

/* Fill a log line's fields from e: op, bucket, key, status, code, errno, ids, latency. */
void store_error_log_fields(const struct store_error *e, struct log_fields *f);

/*
 * Log the denial e (ERR_DENIED) at warning level, once per (principal,
 * action, resource): "s3:GetObject on arn:aws:s3:::b/k denied to ARN
 * (403 AccessDenied): add it to the role's policy or read another path".
 * The S3 store does so itself unless the operation keeps denials quiet
 * (stat_read); then whoever learns that the denial matters says it.
 */
void store_error_log_denial(const struct store_error *e);

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
/*
 * What an entry's name (len bytes) and packed attributes *a take from the
 * heap besides the entry itself (heap_bytes of each): the listings' books.
 */
size_t store_entry_bytes(size_t len, const struct store_attr_packed *a);

/* One object of a list page. */
struct store_object {
	char *key;			/* full key, decoded */
	long long size;
	struct timespec mtime;		/* LastModified */
	char *etag;			/* with its quotes, as S3 sends it */
	char storage_class[32];		/* "STANDARD" when absent */
};

#define STORE_PAGE_MAX_DROPS 16

/* An entry the store could not represent, for the caller's log. */
struct store_drop {
	char *key;			/* as sent (undecoded), cut to 256 bytes; "" when absent */
	char why[96];			/* what was wrong with it */
};

/*
 * One page of the keys under a prefix, delimited by '/': the objects, and
 * the common prefixes (the "directories") one level down. A page holds what
 * the store received, bounded by the store (the S3 store: S3_LIST_MAX_ENTRIES).
 */
struct store_page {
	struct store_object *objects;
	size_t nobjects;
	char **prefixes;		/* common prefixes, decoded, each ending in '/' */
	size_t nprefixes;
	int truncated;			/* more pages follow */
	char *next_token;		/* where the next page starts, as sent; NULL if none */
	size_t dropped;			/* entries that could not be represented */
	struct store_drop drops[STORE_PAGE_MAX_DROPS];	/* the first ndrops of them */
	size_t ndrops;
};

/* Free what page holds and leave it empty. NULL is allowed. */
void store_page_cleanup(struct store_page *page);

/* The longest name a directory shows (bytes). */
#define STORE_NAME_MAX 255

/* Is this a name a directory shows? (non-empty, not . or .., <= 255 bytes, no '/') */
int store_name_ok(const char *name, size_t len);

/* One entry of a directory listing. */
struct store_dirent {
	char *name;
	int is_dir;
	struct store_attr_packed attr;	/* files only; store_dirent_attr unpacks it */
};

/*
 * The order of a directory's entries: a+"/" against b+"/" in byte order (<0,
 * 0, >0), so a file sorts where a directory of its name would ("a.txt" < "a"
 * < "a0", since '.' < '/' < '0'). That is the order S3 sends the keys in,
 * with every file moved from "f" to "f/", which lets a listing be handed out
 * while its pages are still coming (cache/listorder.h). Names hold no '/'.
 */
int store_name_cmp(const char *a, const char *b);

/* Entries per chunk of a listing (a power of two). */
#define STORE_DIR_CHUNK_SHIFT 10
#define STORE_DIR_CHUNK ((size_t)1 << STORE_DIR_CHUNK_SHIFT)

/*
 * A directory's listing: its entries, unique, in store_name_cmp's order.
 * Built by the metadata cache from list pages (cache/listing.h). Entries
 * live in chunks of STORE_DIR_CHUNK (the first starts small and grows), so a
 * listing grows by appending without copying what it holds, and one read
 * while it is fetched (cache/dirstream.h) can let go of the chunks every
 * reader has passed: entries below `first` are gone. A whole listing (first
 * 0, nothing appended any more) is immutable and reference-counted, so open
 * directory handles and lookups share it without locks.
 */
struct store_dir {
	int refs;			/* atomic */
	long long fetched_ms;		/* monotonic time of the first page request */
	size_t n;			/* entries appended: indexes 0 .. n-1 */
	size_t first;			/* entries below it were let go; 0 in a whole listing */
	struct store_dirent **chunk;	/* chunk[i >> STORE_DIR_CHUNK_SHIFT] holds entry i */
	size_t nchunks;			/* chunks made (some freed: NULL below first) */
	size_t nslots;			/* slots in chunk[] */
	size_t last_cap;		/* entries the last chunk has room for */
	size_t bytes;			/* what it holds: the struct, chunks, names, attributes */
};

/* An empty listing, fetched now (one reference). NULL on ENOMEM. */
struct store_dir *store_dir_new(void);
struct store_dir *store_dir_ref(struct store_dir *d);
/* Drop a reference; NULL is allowed. */
void store_dir_release(struct store_dir *d);
/* Binary search by name in a whole listing; NULL when absent. */
const struct store_dirent *store_dir_find(const struct store_dir *d, const char *name);

/* Entry i, for d->first <= i < d->n. */
static inline const struct store_dirent *store_dir_at(const struct store_dir *d, size_t i)
{
	return &d->chunk[i >> STORE_DIR_CHUNK_SHIFT][i & (STORE_DIR_CHUNK - 1)];
}

/*
 * Let go of the entries below `below` (rounded down to a whole chunk): their
 * memory is freed and d->first moves up. Returns the bytes d->bytes lost.
 * The owner's, under its own lock (cache/dirstream.c).
 */
size_t store_dir_let_go(struct store_dir *d, size_t below);

/* The attributes of a listed file (zeros for a directory). */
static inline void store_dirent_attr(const struct store_dirent *ent, struct store_attr *out)
{
	store_attr_unpack(&ent->attr, out);
}

/* What a name in a directory is (store_lookup). */
struct store_entry {
	int is_dir;
	int denied;			/* seen refused: shown without what it may not do */
	struct store_attr attr;		/* a file's */
};

/*
 * An open directory (store_dir_open): one reader of its listing, kept whole
 * or read while it arrives. The store's; freed by store_dir_close.
 */
struct store_dir_reader;

/*
 * Called for entry i of a listing (store_dir_read), under the listing's lock:
 * 0 to go on, 1 to stop before this entry (the reply is full), or a negative
 * errno to stop.
 */
typedef int (*store_dirent_fn)(void *ctx, size_t i, const struct store_dirent *ent);

/*
 * An opendir waiting for its directory's first page (store_dir_open), or a
 * readdir waiting for its next entries (store_dir_wait). The caller fills
 * done and tag; the rest is the store's.
 */
struct store_dir_waiter {
	/*
	 * An open: rc 0, the reader may read; else the open failed (e, which
	 * may be NULL, says why) and its reader is closed already. A wait: rc
	 * 0, read again (entries, the end or the listing's error are there);
	 * else -EINTR (cancelled) or -EIO. Called exactly once per added
	 * waiter, with no lock held; after it the waiter belongs to done (which
	 * may free it).
	 */
	void (*done)(struct store_dir_waiter *w, int rc, const struct store_error *e);
	const void *tag;		/* what store_dir_cancel finds it by (a fuse_req_t) */
	/* Private to the store that took it. */
	struct store_dir_waiter *next;
	void *flight;			/* NULL once detached */
	struct store_dir_reader *r;
	size_t off;
	int kind, state, rc;
	struct store_error *err;
};

/* Who the store acts as, for the mount root's xattrs. */
struct store_identity {
	int have_creds;			/* 0: no valid credentials could be had now */
	char principal[512];		/* the principal's ARN, or "unknown" */
	time_t expires;			/* when the credentials expire; 0: never */
	char source[128];		/* where the credentials come from */
	char endpoint[512];		/* the endpoint URL requests go to */
};

/*
 * An open file: the per-open state of the layer that opened it (the
 * read-ahead window and the pinned ETag, in cache/readahead.c). Its hooks are
 * that layer's: store_file_read and the rest go to f->store's ops, whichever
 * layer the open was asked of.
 */
struct store_file {
	struct store *store;		/* the layer that opened it */
};

#define STORE_IOV_MAX 8

/*
 * The bytes of one read, in place: iov[0..niov) in order, len bytes in all.
 * The rest is the opening layer's (what the bytes live in until
 * store_span_release). A span outlives its file's close: FUSE releases it
 * after the reply, when the kernel may have sent the RELEASE already, so
 * releasing it never goes through the file (store names the layer).
 */
struct store_span {
	struct store *store;		/* whose span_release frees it */
	struct iovec iov[STORE_IOV_MAX];
	int niov;
	size_t len;
	void *held[STORE_IOV_MAX];	/* private to the layer */
	int nheld;
	char *owned;
	size_t owned_cap;
	void *owner;
};

/*
 * The first bytes of an object, fetched before the open (a lookup's GET,
 * cache/headcache.c) and handed to it: buf holds cap bytes, the first got of
 * them the object's, and release(ctx, buf, cap) gives the buffer back. Whoever
 * holds it last releases it, once (store_head_release); {0} is empty.
 */
struct store_head {
	char *buf;
	size_t cap;
	size_t got;
	void (*release)(void *ctx, char *buf, size_t cap);
	void *ctx;
};

/* Give h's buffer back (nothing when empty) and leave h empty. */
void store_head_release(struct store_head *h);

struct store;

struct store_ops {
	/* HEAD: -ENOENT when missing, -EACCES when denied. */
	int (*stat)(struct store *s, const char *key, struct store_attr *out,
		    struct store_error *e);
	/*
	 * One page of keys starting with prefix, delimited by '/'.
	 * token: NULL for the first page, else the previous page's next_token.
	 * max_keys 0 means the store's default page size. The caller cleans the page.
	 */
	int (*list_page)(struct store *s, const char *prefix, const char *token, int max_keys,
			 struct store_page *page, struct store_error *e);
	/*
	 * Up to len bytes of key from off into dst; *got says how many (0 at or
	 * past the end, short only where rd->size or, when that is unknown, the
	 * server's total ends the object). rd (see struct store_read) pins the
	 * object; -ESTALE if it changed. rd NULL: any version, size unknown.
	 */
	int (*read_range)(struct store *s, const char *key, struct store_read *rd, long long off,
			  size_t len, char *dst, size_t *got, struct store_error *e);
	/*
	 * Optional (NULL: not offered). A stat that also brings the first len
	 * (> 0) bytes, unpinned: one GET of bytes 0..len-1, *out filled from its
	 * headers and *got bytes in dst. A denial is not logged (the caller may
	 * not need the answer: store_error_log_denial says it when it does).
	 * Anything but 0 or -ENOENT means "ask with stat".
	 */
	int (*stat_read)(struct store *s, const char *key, size_t len, char *dst, size_t *got,
			 struct store_attr *out, struct store_error *e);
	/*
	 * Optional. A stat for a lookup that also fetches the object's first
	 * bytes and keeps them for an open of the same ETag (the head cache).
	 * Quiet about denials, as stat_read. -ENOSYS when not offered now (no
	 * head cache, or no memory for the bytes): the caller asks with stat.
	 */
	int (*stat_head)(struct store *s, const char *key, struct store_attr *out,
			 struct store_error *e);
	/*
	 * Optional. Who the store acts as now (waiting for a credential refresh
	 * in flight at most one operation's budget). 0, or -ENOSYS.
	 */
	int (*identity)(struct store *s, struct store_identity *out);

	/*
	 * Optional (the metadata cache): what name is in the directory dir_key
	 * (a key ending in '/', or the mount prefix). 0 with out filled: when
	 * out->denied and e->cls is ERR_DENIED, e is the denial it shows. -ENOENT
	 * when there is no such name. Another negative errno otherwise, with e
	 * saying why (an EACCES whose e is not ERR_DENIED or ERR_ARCHIVED is a
	 * refusal remembered or inferred: nothing new to say about it).
	 */
	int (*lookup)(struct store *s, const char *dir_key, const char *name,
		      struct store_entry *out, struct store_error *e);
	/*
	 * Optional (the metadata cache): open the directory dir_key, whose
	 * entries are read while its listing arrives (a fresh cached listing
	 * answers at once). dir_open sets *out to its reader, and w waits for
	 * the first page: 1 when a fetch was started, 0 when w joined one or was
	 * answered, or a negative errno (*out NULL, w not taken). dir_read hands
	 * fn the entries from offset off (0 is the first) that are there:
	 * returns how many fn took, 0 at the end, the listing's error once it
	 * ended with one before off, fn's error, or -EAGAIN (not there yet:
	 * dir_wait). dir_wait adds w to wait for the entry at off: 0 (arm it), 1
	 * when it is there already (read again), or a negative errno (w not
	 * taken). Until dir_arm a waiter is the caller's: an answer or a cancel
	 * that comes in between is held and delivered by dir_arm (so the caller
	 * can register what will call dir_cancel first). dir_cancel: the waiter
	 * with this tag leaves, answered -EINTR now (or at its arm); a fetch
	 * nobody reads is abandoned. dir_close: a RELEASEDIR.
	 */
	int (*dir_open)(struct store *s, const char *dir_key, struct store_dir_reader **out,
			struct store_dir_waiter *w);
	ssize_t (*dir_read)(struct store *s, struct store_dir_reader *r, size_t off,
			    store_dirent_fn fn, void *ctx);
	int (*dir_wait)(struct store *s, struct store_dir_reader *r, size_t off,
			struct store_dir_waiter *w);
	void (*dir_arm)(struct store *s, struct store_dir_waiter *w);
	void (*dir_cancel)(struct store *s, const void *tag);
	/*
	 * Optional (the metadata cache): the listing of dir_key it keeps, a new
	 * reference, whatever its age; NULL when it keeps none. For plans whose
	 * every answer is checked anyway (the read-ahead across files pins each
	 * GET to the listed ETag and size), never for answers that must be fresh.
	 */
	struct store_dir *(*dir_peek)(struct store *s, const char *dir_key);
	void (*dir_close)(struct store *s, struct store_dir_reader *r);

	/*
	 * Open key, of the attributes a (its ETag pins every read: a changed
	 * object is -ESTALE; its size ends the file). head: the object's first
	 * bytes when a layer above has them (NULL: none); open takes them in
	 * every case. NULL on ENOMEM. A layer that keeps per-open state opens
	 * files itself; one whose reads are its own (the disk cache, the S3
	 * store) opens the plain files of store_plain_open over itself; a layer
	 * that only passes reads through forwards the open.
	 */
	struct store_file *(*open)(struct store *s, const char *key, const struct store_attr *a,
				   struct store_head *head);
	/*
	 * Read up to len bytes at off. On 0, *sp holds the bytes (short only at
	 * the end of the file as sized at open, 0 at or past it); the caller
	 * replies from sp->iov and then calls store_span_release. Otherwise
	 * nothing is held, e says why (-ESTALE: the object changed since open),
	 * or -EINTR when *cancel was set (cancel may be NULL). Several threads
	 * may read one file at once.
	 */
	int (*file_read)(struct store_file *f, long long off, size_t len, const int *cancel,
			 struct store_span *sp, struct store_error *e);
	void (*span_release)(struct store_file *f, struct store_span *sp);
	/* Wake f's readers so that those whose cancel flag is set give up (any thread). */
	void (*file_interrupt)(struct store_file *f);
	/* After every file_read has returned; spans may be released later. */
	void (*file_close)(struct store_file *f);
	void (*destroy)(struct store *s);
};

struct store {
	const struct store_ops *ops;
};

static inline int store_stat(struct store *s, const char *key, struct store_attr *out,
			     struct store_error *e)
{
	return s->ops->stat(s, key, out, e);
}

static inline int store_list_page(struct store *s, const char *prefix, const char *token,
				  int max_keys, struct store_page *page, struct store_error *e)
{
	return s->ops->list_page(s, prefix, token, max_keys, page, e);
}

static inline int store_read_range(struct store *s, const char *key, struct store_read *rd,
				   long long off, size_t len, char *dst, size_t *got,
				   struct store_error *e)
{
	return s->ops->read_range(s, key, rd, off, len, dst, got, e);
}

static inline int store_stat_read(struct store *s, const char *key, size_t len, char *dst,
				  size_t *got, struct store_attr *out, struct store_error *e)
{
	if (!s->ops->stat_read)
		return -ENOSYS;
	return s->ops->stat_read(s, key, len, dst, got, out, e);
}

static inline int store_identity(struct store *s, struct store_identity *out)
{
	if (!s->ops->identity)
		return -ENOSYS;
	return s->ops->identity(s, out);
}

static inline int store_stat_head(struct store *s, const char *key, struct store_attr *out,
				  struct store_error *e)
{
	if (!s->ops->stat_head)
		return -ENOSYS;
	return s->ops->stat_head(s, key, out, e);
}

static inline int store_lookup(struct store *s, const char *dir_key, const char *name,
			       struct store_entry *out, struct store_error *e)
{
	if (!s->ops->lookup)
		return -ENOSYS;
	return s->ops->lookup(s, dir_key, name, out, e);
}

static inline int store_dir_open(struct store *s, const char *dir_key,
				 struct store_dir_reader **out, struct store_dir_waiter *w)
{
	*out = NULL;
	if (!s->ops->dir_open)
		return -ENOSYS;
	return s->ops->dir_open(s, dir_key, out, w);
}

static inline ssize_t store_dir_read(struct store *s, struct store_dir_reader *r, size_t off,
				     store_dirent_fn fn, void *ctx)
{
	return s->ops->dir_read(s, r, off, fn, ctx);
}

static inline int store_dir_wait(struct store *s, struct store_dir_reader *r, size_t off,
				 struct store_dir_waiter *w)
{
	return s->ops->dir_wait(s, r, off, w);
}

static inline void store_dir_arm(struct store *s, struct store_dir_waiter *w)
{
	s->ops->dir_arm(s, w);
}

static inline void store_dir_cancel(struct store *s, const void *tag)
{
	if (s->ops->dir_cancel)
		s->ops->dir_cancel(s, tag);
}

static inline struct store_dir *store_dir_peek(struct store *s, const char *dir_key)
{
	if (!s->ops->dir_peek)
		return NULL;
	return s->ops->dir_peek(s, dir_key);
}

static inline void store_dir_close(struct store *s, struct store_dir_reader *r)
{
	if (r)
		s->ops->dir_close(s, r);
}

static inline struct store_file *store_open(struct store *s, const char *key,
					    const struct store_attr *a, struct store_head *head)
{
	return s->ops->open(s, key, a, head);
}

static inline int store_file_read(struct store_file *f, long long off, size_t len,
				  const int *cancel, struct store_span *sp, struct store_error *e)
{
	struct store *s = f->store;
	int rc = s->ops->file_read(f, off, len, cancel, sp, e);

	sp->store = s;
	return rc;
}

/* f may be closed already (struct store_span): only a held part keeps it. */
static inline void store_span_release(struct store_file *f, struct store_span *sp)
{
	sp->store->ops->span_release(f, sp);
}

static inline void store_file_interrupt(struct store_file *f)
{
	f->store->ops->file_interrupt(f);
}

static inline void store_file_close(struct store_file *f)
{
	if (f)
		f->store->ops->file_close(f);
}

static inline void store_destroy(struct store *s)
{
	if (s)
		s->ops->destroy(s);
}

/*
 * A store that wraps another (every cache/ layer): its struct starts with a
 * struct store_layer, and its ops name the forwarders below for each hook it
 * does not handle, so that every hook reaches the store that offers it.
 */
struct store_layer {
	struct store base;		/* first: the store is cast back */
	struct store *inner;		/* not owned */
};

int store_fwd_stat(struct store *s, const char *key, struct store_attr *out,
		   struct store_error *e);
int store_fwd_list_page(struct store *s, const char *prefix, const char *token, int max_keys,
			struct store_page *page, struct store_error *e);
int store_fwd_read_range(struct store *s, const char *key, struct store_read *rd, long long off,
			 size_t len, char *dst, size_t *got, struct store_error *e);
int store_fwd_stat_read(struct store *s, const char *key, size_t len, char *dst, size_t *got,
			struct store_attr *out, struct store_error *e);
int store_fwd_stat_head(struct store *s, const char *key, struct store_attr *out,
			struct store_error *e);
int store_fwd_identity(struct store *s, struct store_identity *out);
int store_fwd_lookup(struct store *s, const char *dir_key, const char *name,
		     struct store_entry *out, struct store_error *e);
int store_fwd_dir_open(struct store *s, const char *dir_key, struct store_dir_reader **out,
		       struct store_dir_waiter *w);
ssize_t store_fwd_dir_read(struct store *s, struct store_dir_reader *r, size_t off,
			   store_dirent_fn fn, void *ctx);
int store_fwd_dir_wait(struct store *s, struct store_dir_reader *r, size_t off,
		       struct store_dir_waiter *w);
void store_fwd_dir_arm(struct store *s, struct store_dir_waiter *w);
void store_fwd_dir_cancel(struct store *s, const void *tag);
struct store_dir *store_fwd_dir_peek(struct store *s, const char *dir_key);
void store_fwd_dir_close(struct store *s, struct store_dir_reader *r);
struct store_file *store_fwd_open(struct store *s, const char *key, const struct store_attr *a,
				  struct store_head *head);

/*
 * The terms an open of a works with: the ETag it pins (a's, or "" when it
 * cannot be sent back: the first answer's is pinned then) and its size,
 * bounded by STORE_SIZE_MAX so that offset arithmetic never overflows.
 */
void store_open_terms(const struct store_attr *a, char *etag, size_t etaglen, long long *size);

/*
 * Plain files, for a store that keeps no per-open state: each read is one
 * read_range of the store the file was opened on (s itself, so the reads go
 * through that layer), pinned to the ETag and size given at open, into a
 * buffer of its own (or served from the head when it covers the read).
 */
struct store_file *store_plain_open(struct store *s, const char *key, const struct store_attr *a,
				    struct store_head *head);
int store_plain_read(struct store_file *f, long long off, size_t len, const int *cancel,
		     struct store_span *sp, struct store_error *e);
void store_plain_span_release(struct store_file *f, struct store_span *sp);
void store_plain_interrupt(struct store_file *f);
void store_plain_close(struct store_file *f);

#endif
