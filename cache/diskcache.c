/*
 * The disk block cache. Index: a fixed hash table of entries keyed by the
 * block's identity (SHA-256 of bucket, key, ETag, offset), threaded on one
 * LRU list (head = most recent). Invariants (under lock): every entry's bytes
 * are counted in used; used <= max_bytes; an entry exists from the moment its
 * file is being written until it is evicted or found bad, so a reader that
 * finds an entry but no file (not written yet, or just evicted) treats it as
 * a plain miss.
 *
 * A block file is a struct block_hdr followed by len bytes. Every load checks
 * the magic, the identity, the offset, the length and the SHA-256 of the
 * bytes; any mismatch removes the file and the entry and counts as a miss.
 */
#include "cache/diskcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cache/membudget.h"
#include "core/err.h"
#include "core/log.h"
#include "core/strutil.h"
#include "s3/store.h"

#define NBUCKETS 4096
/* A cached block streams through this much stack while it is checked. */
#define CHECK_CHUNK (32u << 10)
#define MAGIC "IRSAFSB1"
#define LOCK_NAME ".irsafs-cache.lock"

struct block_hdr {
	char magic[8];
	unsigned char id[32];
	uint64_t off;
	uint32_t len;
	uint32_t pad;
	unsigned char sum[32];
};

struct entry {
	unsigned char id[32];
	size_t bytes;			/* file size */
	struct entry *hnext;		/* hash chain */
	struct entry *prev, *next;	/* LRU list */
};

struct diskcache {
	struct store base;		/* first: the store is cast back */
	struct store *inner;
	struct membudget *mb;		/* bounce buffers; not owned, may be NULL */
	char *bucket;
	char *dir;
	int lock_fd;
	size_t max_bytes;
	pthread_mutex_t lock;		/* guards locked */
	struct {
		struct entry *table[NBUCKETS];
		struct entry *head, *tail;
		size_t used;
		struct diskcache_stats stats;
	} locked;
};

static void sha256(const void *data, size_t n, unsigned char out[32])
{
	if (!EVP_Digest(data, n, out, NULL, EVP_sha256(), NULL))
		abort(); /* OpenSSL cannot hash: nothing sensible is left to do */
}

static unsigned slot(const unsigned char id[32])
{
	return ((unsigned)id[0] << 8 | id[1]) % NBUCKETS;
}

static void block_id(struct diskcache *dc, const char *key, const char *etag, long long off,
		     unsigned char id[32])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	char offs[32];

	snprintf(offs, sizeof(offs), "%lld", off);
	if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(c, dc->bucket, strlen(dc->bucket) + 1) ||
	    !EVP_DigestUpdate(c, key, strlen(key) + 1) ||
	    !EVP_DigestUpdate(c, etag, strlen(etag) + 1) ||
	    !EVP_DigestUpdate(c, offs, strlen(offs)) || !EVP_DigestFinal_ex(c, id, NULL))
		abort(); /* OpenSSL cannot hash: nothing sensible is left to do */
	EVP_MD_CTX_free(c);
}

static void block_path(struct diskcache *dc, const unsigned char id[32], const char *suffix,
		       char *out, size_t cap)
{
	char hex[65];

	hex_encode(id, 32, hex);
	snprintf(out, cap, "%s/%s%s", dc->dir, hex, suffix);
}

static struct entry *find_locked(struct diskcache *dc, const unsigned char id[32])
{
	struct entry *e;

	for (e = dc->locked.table[slot(id)]; e; e = e->hnext)
		if (!memcmp(e->id, id, 32))
			return e;
	return NULL;
}

static void lru_unlink_locked(struct diskcache *dc, struct entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		dc->locked.head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		dc->locked.tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push_locked(struct diskcache *dc, struct entry *e)
{
	e->prev = NULL;
	e->next = dc->locked.head;
	if (dc->locked.head)
		dc->locked.head->prev = e;
	dc->locked.head = e;
	if (!dc->locked.tail)
		dc->locked.tail = e;
}

/* Drop an entry and its file. */
static void remove_locked(struct diskcache *dc, struct entry *e)
{
	struct entry **pp = &dc->locked.table[slot(e->id)];
	char path[4096];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink_locked(dc, e);
	dc->locked.used -= e->bytes;
	block_path(dc, e->id, ".blk", path, sizeof(path));
	unlink(path);
	free(e);
}

/*
 * Read the h->len bytes of a block file (fd, the block at boff) and check
 * them against h->sum, copying their overlap with [off, end) into dst (which
 * holds [off, end)). The overlap is read straight into dst and hashed there,
 * the rest streams through a small buffer: no block-sized buffer. On a
 * mismatch dst may hold the bad bytes: the caller fetches them again before
 * anything is returned. 0, or -1 when the bytes are short or do not match.
 */
static int block_stream(int fd, const struct block_hdr *h, long long boff, char *dst,
			long long off, long long end)
{
	long long len = h->len, a = boff > off ? boff : off;
	long long z = boff + len < end ? boff + len : end;
	unsigned char sum[32];
	char chunk[CHECK_CHUNK];
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	long long pos = boff;
	int rc = 0;

	if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL))
		abort(); /* OpenSSL cannot hash: nothing sensible is left to do */
	while (pos < boff + len && !rc) {
		char *to = chunk;
		long long stop = boff + len;
		ssize_t n;

		if (pos >= a && pos < z)
			to = dst + (pos - off), stop = z;
		else if (pos < a && a < z)
			stop = a;
		if (to == chunk && stop - pos > (long long)CHECK_CHUNK)
			stop = pos + CHECK_CHUNK;
		n = pread(fd, to, (size_t)(stop - pos), (off_t)(sizeof(*h) + (pos - boff)));
		if (n <= 0)
			rc = -1;
		else if (!EVP_DigestUpdate(c, to, (size_t)n))
			abort();
		pos += n > 0 ? n : 0;
	}
	if (!EVP_DigestFinal_ex(c, sum, NULL))
		abort();
	EVP_MD_CTX_free(c);
	return rc || memcmp(sum, h->sum, 32) != 0 ? -1 : 0;
}

/*
 * Load block id (at boff) and copy its overlap with [off, end) into dst
 * (block_stream). Returns its length (> 0), 0 on a miss, or -1 when the file
 * existed but failed its check (removed).
 */
static long block_load(struct diskcache *dc, const unsigned char id[32], long long boff,
		       char *dst, long long off, long long end)
{
	struct block_hdr h;
	char path[4096];
	struct entry *e;
	ssize_t n;
	int fd, bad = 0;

	pthread_mutex_lock(&dc->lock);
	e = find_locked(dc, id);
	if (e) {
		lru_unlink_locked(dc, e);
		lru_push_locked(dc, e);
	}
	pthread_mutex_unlock(&dc->lock);
	if (!e)
		return 0;
	block_path(dc, id, ".blk", path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* being written, or just evicted */
	n = pread(fd, &h, sizeof(h), 0);
	if (n != (ssize_t)sizeof(h) || memcmp(h.magic, MAGIC, 8) || memcmp(h.id, id, 32) ||
	    h.off != (uint64_t)boff || h.len == 0 || h.len > DISKCACHE_BLOCK)
		bad = 1;
	else
		bad = block_stream(fd, &h, boff, dst, off, end) != 0;
	close(fd);
	if (!bad)
		return (long)h.len;
	pthread_mutex_lock(&dc->lock);
	dc->locked.stats.bad++;
	e = find_locked(dc, id);
	if (e)
		remove_locked(dc, e);
	pthread_mutex_unlock(&dc->lock);
	return -1;
}

/* Write one block; on any failure the block is simply not cached. */
static void block_store(struct diskcache *dc, const unsigned char id[32], long long off,
			const char *data, size_t len)
{
	size_t bytes = sizeof(struct block_hdr) + len;
	char path[4096], tmp[4200];
	struct block_hdr h;
	struct entry *e;
	int fd, ok;

	if (bytes > dc->max_bytes)
		return;
	pthread_mutex_lock(&dc->lock);
	if (find_locked(dc, id)) {
		pthread_mutex_unlock(&dc->lock);
		return;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		pthread_mutex_unlock(&dc->lock);
		return;
	}
	while (dc->locked.used + bytes > dc->max_bytes && dc->locked.tail) {
		remove_locked(dc, dc->locked.tail);
		dc->locked.stats.evicted++;
	}
	memcpy(e->id, id, 32);
	e->bytes = bytes;
	e->hnext = dc->locked.table[slot(id)];
	dc->locked.table[slot(id)] = e;
	lru_push_locked(dc, e);
	dc->locked.used += bytes;
	pthread_mutex_unlock(&dc->lock);

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, MAGIC, 8);
	memcpy(h.id, id, 32);
	h.off = (uint64_t)off;
	h.len = (uint32_t)len;
	sha256(data, len, h.sum);
	block_path(dc, id, ".blk", path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp%lx", path, (unsigned long)pthread_self());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ok = fd >= 0 && write(fd, &h, sizeof(h)) == (ssize_t)sizeof(h) &&
	     write(fd, data, len) == (ssize_t)len;
	if (fd >= 0 && close(fd) != 0)
		ok = 0;
	pthread_mutex_lock(&dc->lock);
	/* Still ours (not evicted meanwhile)? Then publish the file. */
	if (find_locked(dc, id) == e && ok && rename(tmp, path) == 0) {
		pthread_mutex_unlock(&dc->lock);
		return;
	}
	unlink(tmp);
	if (find_locked(dc, id) == e)
		remove_locked(dc, e);
	pthread_mutex_unlock(&dc->lock);
}

/* Copy the overlap of block [boff, boff+blen) with [off, end) into dst. */
static void copy_overlap(char *dst, long long off, long long end, const char *blk,
			 long long boff, long long blen)
{
	long long a = boff > off ? boff : off;
	long long z = boff + blen < end ? boff + blen : end;

	if (z > a)
		memcpy(dst + (a - off), blk + (a - boff), (size_t)(z - a));
}

static int dc_read_range(struct store *st, const char *key, const char *etag, long long off,
			 size_t len, char *dst, size_t *got, struct s3_error *e)
{
	struct diskcache *dc = (struct diskcache *)st;
	const long long bs = DISKCACHE_BLOCK;
	long long end = off + (long long)len, b, b0, b1, data_end = end;
	unsigned char id[32];
	int rc = 0;

	*got = 0;
	if (!etag || !*etag || len == 0)
		return store_read_range(dc->inner, key, etag, off, len, dst, got, e);
	err_clear(e);
	b0 = off / bs;
	b1 = (end - 1) / bs;
	for (b = b0; b <= b1;) {
		struct membuf bounce = MEMBUF_EMPTY;
		long long j, run_off, run_len, get_off, get_len;
		size_t rgot = 0;
		int inplace, cache = 1;
		char *buf;
		long n;

		block_id(dc, key, etag, b * bs, id);
		n = block_load(dc, id, b * bs, dst, off, end);
		if (n < 0)
			log_msg(LOG_WARNING, "disk cache: block at %lld of s3://%s/%s failed its "
				"check; removed, fetching it again", b * bs, dc->bucket, key);
		if (n > 0) {
			pthread_mutex_lock(&dc->lock);
			dc->locked.stats.hits++;
			pthread_mutex_unlock(&dc->lock);
			if (n < bs) {
				data_end = b * bs + n;
				break;
			}
			b++;
			continue;
		}
		/* A run of missing blocks: one GET. */
		for (j = b; j < b1; j++) {
			unsigned char nid[32];
			int present;

			block_id(dc, key, etag, (j + 1) * bs, nid);
			pthread_mutex_lock(&dc->lock);
			present = find_locked(dc, nid) != NULL;
			pthread_mutex_unlock(&dc->lock);
			if (present)
				break;
		}
		run_off = b * bs;
		run_len = (j - b + 1) * bs;
		get_off = run_off;
		get_len = run_len;
		/* Aligned with the caller's buffer: fetch in place, else bounce. */
		inplace = run_off >= off && run_off + run_len <= end;
		if (inplace) {
			buf = dst + (run_off - off);
		} else if (dc->mb && membudget_get(dc->mb, (size_t)run_len, &bounce) == 0) {
			buf = bounce.p;
		} else {
			/* The budget is short: only the caller's bytes, and none cached. */
			get_off = run_off > off ? run_off : off;
			get_len = (run_off + run_len < end ? run_off + run_len : end) - get_off;
			buf = dst + (get_off - off);
			cache = 0;
		}
		rc = store_read_range(dc->inner, key, etag, get_off, (size_t)get_len, buf, &rgot, e);
		if (!rc) {
			long long k;

			pthread_mutex_lock(&dc->lock);
			dc->locked.stats.misses += (unsigned long long)(j - b + 1);
			pthread_mutex_unlock(&dc->lock);
			for (k = b; k <= j && cache; k++) {
				long long boff = (k - b) * bs;
				long long blen = (long long)rgot - boff;

				if (blen <= 0)
					break;
				if (blen > bs)
					blen = bs;
				block_id(dc, key, etag, k * bs, id);
				block_store(dc, id, k * bs, buf + boff, (size_t)blen);
				if (!inplace)
					copy_overlap(dst, off, end, buf + boff, k * bs, blen);
			}
		}
		membudget_put(dc->mb, &bounce);
		if (rc)
			break;
		if ((long long)rgot < get_len) {
			data_end = get_off + (long long)rgot;
			break;
		}
		b = j + 1;
	}
	if (rc)
		return rc;
	*got = data_end > off ? (size_t)((data_end < end ? data_end : end) - off) : 0;
	return 0;
}

static int dc_stat(struct store *st, const char *key, struct store_attr *out, struct s3_error *e)
{
	return store_stat(((struct diskcache *)st)->inner, key, out, e);
}

static int dc_list_page(struct store *st, const char *prefix, const char *token, int max_keys,
			struct s3_list_page *page, struct s3_error *e)
{
	return store_list_page(((struct diskcache *)st)->inner, prefix, token, max_keys, page, e);
}

/* Remove every regular file in the directory but the lock. */
static int empty_dir(const char *dir)
{
	struct dirent *d;
	char path[4096];
	int rc = 0;
	DIR *dp;

	dp = opendir(dir);
	if (!dp)
		return -errno;
	while ((d = readdir(dp))) {
		if (d->d_name[0] == '.' && (!d->d_name[1] || !strcmp(d->d_name, "..") ||
					    !strcmp(d->d_name, LOCK_NAME)))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		if (unlink(path) != 0 && errno != ENOENT)
			rc = -errno;
	}
	closedir(dp);
	return rc;
}

static void dc_destroy(struct store *st)
{
	struct diskcache *dc = (struct diskcache *)st;
	struct entry *e, *n;
	char path[4096];

	for (e = dc->locked.head; e; e = n) {
		n = e->next;
		free(e);
	}
	if (dc->dir && dc->lock_fd >= 0) {
		/* Only a directory this mount locked is emptied. */
		empty_dir(dc->dir);
		snprintf(path, sizeof(path), "%s/%s", dc->dir, LOCK_NAME);
		unlink(path);
	}
	if (dc->lock_fd >= 0)
		close(dc->lock_fd);
	pthread_mutex_destroy(&dc->lock);
	free(dc->bucket);
	free(dc->dir);
	free(dc);
}

static const struct store_ops dc_ops = {
	.stat = dc_stat,
	.list_page = dc_list_page,
	.read_range = dc_read_range,
	.destroy = dc_destroy,
};

struct store *diskcache_new(struct store *inner, struct membudget *mb, const char *bucket,
			    const char *dir, size_t max_bytes, char *why, size_t whylen)
{
	struct diskcache *dc = calloc(1, sizeof(*dc));
	char path[4096];
	struct stat sb;
	int rc;

	if (!dc) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	dc->base.ops = &dc_ops;
	dc->inner = inner;
	dc->mb = mb;
	dc->lock_fd = -1;
	dc->max_bytes = max_bytes;
	pthread_mutex_init(&dc->lock, NULL);
	dc->bucket = strdup(bucket);
	dc->dir = strdup(dir);
	if (!dc->bucket || !dc->dir) {
		snprintf(why, whylen, "out of memory");
		goto fail;
	}
	if (max_bytes < sizeof(struct block_hdr) + DISKCACHE_BLOCK) {
		snprintf(why, whylen, "--max-cache-size must hold at least one %u-byte block",
			 DISKCACHE_BLOCK);
		goto fail;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(why, whylen, "cannot create the cache directory %s: %s", dir,
			 strerror(errno));
		goto fail;
	}
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || sb.st_uid != geteuid()) {
		snprintf(why, whylen, "the cache directory %s is not a directory owned by this user",
			 dir);
		goto fail;
	}
	if ((sb.st_mode & 0777) != 0700 && chmod(dir, 0700) != 0) {
		snprintf(why, whylen, "cannot make %s private (0700): %s", dir, strerror(errno));
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, LOCK_NAME);
	dc->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (dc->lock_fd < 0 || flock(dc->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		snprintf(why, whylen, "the cache directory %s is in use by another mount (each "
			 "mount needs its own --cache-dir)", dir);
		if (dc->lock_fd >= 0)
			close(dc->lock_fd);
		dc->lock_fd = -1; /* not ours: do not empty it on the way out */
		goto fail;
	}
	rc = empty_dir(dir);
	if (rc) {
		snprintf(why, whylen, "cannot empty the cache directory %s: %s", dir, strerror(-rc));
		goto fail;
	}
	return &dc->base;
fail:
	dc_destroy(&dc->base);
	return NULL;
}

void diskcache_stats(struct store *st, struct diskcache_stats *out)
{
	struct diskcache *dc = (struct diskcache *)st;

	pthread_mutex_lock(&dc->lock);
	*out = dc->locked.stats;
	out->bytes = dc->locked.used;
	pthread_mutex_unlock(&dc->lock);
}
