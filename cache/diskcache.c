/*
 * The disk cache. Index: a fixed hash table of entries, one per block file,
 * keyed by the block's identity (SHA-256 of bucket, key, ETag, offset) and
 * threaded on one LRU list (head = most recent). An entry has two maps of its
 * granules: present (written, recorded and published: readable) and pending
 * (claimed by one writer, being written).
 *
 * Invariants (under lock): present and pending are disjoint; every entry's
 * bytes (its header and its present and pending granules, each rounded up to
 * a page) are counted in used; used <= max_bytes; an entry's file is created
 * by the entry's first writer and unlinked when the entry goes; block files
 * are opened only under the lock, so an open file is the file of the entry
 * that was looked at (an evicted one may be unlinked under it, never replaced);
 * gen is different for every entry ever made, so a thread that let go of the
 * lock can tell whether its entry is still the same one.
 *
 * A block file: a struct block_hdr at 0, then the granule table (a struct
 * gran_rec each: length and SHA-256), then granule g's bytes at HDR_SIZE + g *
 * GRANULE. A granule's bytes and record are written before its present bit is
 * set and never while it is set, so a reader that saw the bit reads complete
 * bytes. Writers of one block claim disjoint granules; the header is the same
 * bytes whoever writes it. A granule shorter than GRANULE is the object's last:
 * nothing is stored past it, and a read that reaches it ends there.
 *
 * Every load checks the magic, the identity, the offset, the geometry, and the
 * length and SHA-256 of each granule it reads; any mismatch removes the file
 * and the entry, and the bytes are fetched again.
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
#define MAGIC "IRSAFSB2"
#define LOCK_NAME ".irsafs-cache.lock"
#define BLOCK ((long long)DISKCACHE_BLOCK)
#define GRANULE ((long long)DISKCACHE_GRANULE)
#define NGRAN (DISKCACHE_BLOCK / DISKCACHE_GRANULE)
/* The header and the granule table; a block's bytes start on a page. */
#define HDR_SIZE 4096
#define PAGE 4096
/* The shortest stretch of granule bytes read or written past the page cache. */
#define DIRECT_MIN (256 << 10)

struct block_hdr {
	char magic[8];
	unsigned char id[32];
	uint64_t off;
	uint32_t granule;
	uint32_t ngran;
};

struct gran_rec {
	uint32_t len;
	uint32_t pad;
	unsigned char sum[32];
};

#define TABLE_OFF ((long long)sizeof(struct block_hdr))

_Static_assert(NGRAN >= 1 && NGRAN <= 64, "a block's granules fit one 64-bit map");
_Static_assert(DISKCACHE_BLOCK % DISKCACHE_GRANULE == 0, "granules tile a block");
_Static_assert(sizeof(struct block_hdr) + NGRAN * sizeof(struct gran_rec) <= HDR_SIZE,
	       "the granule table fits the header");

struct entry {
	unsigned char id[32];
	uint64_t present;		/* granules readable */
	uint64_t pending;		/* granules being written */
	unsigned long long gen;
	size_t bytes;			/* counted in used */
	int made;			/* the header is written */
	struct entry *hnext;		/* hash chain */
	struct entry *prev, *next;	/* LRU list */
};

struct diskcache {
	struct store_layer layer;	/* first: the store is cast back; the store below */
	struct membudget *mb;		/* bounce buffers; not owned, may be NULL */
	char *bucket;
	char *dir;
	int lock_fd;
	size_t max_bytes;
	int no_direct;			/* atomic: the file system refused O_DIRECT */
	pthread_mutex_t lock;		/* guards locked */
	struct {
		struct entry *table[NBUCKETS];
		struct entry *head, *tail;
		size_t used;
		unsigned long long gens;
		struct diskcache_stats stats;
	} locked;
};

static long long min_ll(long long a, long long b)
{
	return a < b ? a : b;
}

static long long max_ll(long long a, long long b)
{
	return a > b ? a : b;
}

/* Granules [a, b) of a block as a map. */
static uint64_t gran_mask(unsigned a, unsigned b)
{
	if (b <= a)
		return 0;
	return (b - a >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << (b - a)) - 1)) << a;
}

/* What a granule of len bytes counts for on disk. */
static size_t gran_bytes(long long len)
{
	return (size_t)((len + PAGE - 1) / PAGE * PAGE);
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

static void block_path(struct diskcache *dc, const unsigned char id[32], char *out, size_t cap)
{
	char hex[65];

	hex_encode(id, 32, hex);
	snprintf(out, cap, "%s/%s.blk", dc->dir, hex);
}

static int pread_full(int fd, void *buf, long long n, long long at)
{
	char *p = buf;

	while (n > 0) {
		ssize_t r = pread(fd, p, (size_t)n, (off_t)at);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= r;
		at += r;
	}
	return 0;
}

static int pwrite_full(int fd, const void *buf, long long n, long long at)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t r = pwrite(fd, p, (size_t)n, (off_t)at);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= r;
		at += r;
	}
	return 0;
}

/* The file system refuses O_DIRECT: say so once, and go on buffered. */
static void no_direct(struct diskcache *dc)
{
	if (!__atomic_exchange_n(&dc->no_direct, 1, __ATOMIC_RELAXED))
		log_msg(LOG_INFO, "disk cache: %s takes no direct I/O; block files go through "
			"the page cache", dc->dir);
}

/*
 * Granule bytes, n at file offset at, read into or written from a span. The
 * whole pages go past the page cache (O_DIRECT, set on fd for the one call)
 * when the span and at are page aligned: a block file is read back seldom,
 * the reader's kernel may cache the bytes again above irsafs, and filling
 * fresh page-cache pages was 60% of the daemon's CPU on a cold read with
 * --cache-dir (and crowded out what the page cache held for others). The
 * rest, the object's short last granule or an unaligned buffer, goes through
 * the page cache. The kernel writes back cached pages of the range before a
 * direct read, so either way a read sees what was written.
 *
 * Only stretches of DIRECT_MIN or more: what a sequential reader stores and
 * reads back. A random reader's single granules stay buffered: a direct
 * write allocates its blocks at once, so granules written at different
 * times land apart on disk, and past four extents ext4 adds an extent block
 * the budget does not count; and a 16 KiB direct read waits for the device
 * where the page cache may have it.
 *
 * direct_begin sets O_DIRECT on fd for the whole pages of n bytes at p and
 * at, and says how many bytes that is (0: none, fd left alone); data_io
 * does those, restores the flags, and does the rest buffered. A file system
 * that takes the flag but refuses the I/O (EINVAL) gets it all buffered, and
 * no direct I/O again (no_direct).
 */
static long long direct_begin(struct diskcache *dc, int fd, const void *p, long long n,
			      long long at, int *fl)
{
	long long whole = n / PAGE * PAGE;

	if (whole < DIRECT_MIN || (uintptr_t)p % PAGE || at % PAGE ||
	    __atomic_load_n(&dc->no_direct, __ATOMIC_RELAXED))
		return 0;
	*fl = fcntl(fd, F_GETFL);
	if (*fl < 0)
		return 0;
	if (fcntl(fd, F_SETFL, *fl | O_DIRECT) != 0) {
		if (errno == EINVAL)
			no_direct(dc);
		return 0;
	}
	return whole;
}

/* Where granule bytes go to (a read) or come from (a write): one of the two. */
struct span {
	char *rd;
	const char *wr;
};

static int span_io(int fd, const struct span *s, long long skip, long long n, long long at)
{
	return s->rd ? pread_full(fd, s->rd + skip, n, at) : pwrite_full(fd, s->wr + skip, n, at);
}

static int data_io(struct diskcache *dc, int fd, struct span s, long long n, long long at)
{
	int fl, rc = 0;
	long long whole = direct_begin(dc, fd, s.rd ? (const char *)s.rd : s.wr, n, at, &fl);

	if (whole) {
		errno = 0; /* a short read fails without setting it */
		rc = span_io(fd, &s, 0, whole, at);
		if (rc && errno == EINVAL) {
			no_direct(dc);
			rc = 0;
			whole = 0;
		}
		if (fcntl(fd, F_SETFL, fl) != 0)
			rc = -1;
	}
	return rc ? rc : span_io(fd, &s, whole, n - whole, at + whole);
}

static void stats_add(struct diskcache *dc, unsigned long long *field, unsigned long long n)
{
	pthread_mutex_lock(&dc->lock);
	*field += n;
	pthread_mutex_unlock(&dc->lock);
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

static void lru_touch_locked(struct diskcache *dc, struct entry *e)
{
	lru_unlink_locked(dc, e);
	lru_push_locked(dc, e);
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
	block_path(dc, e->id, path, sizeof(path));
	unlink(path);
	free(e);
}

/* Evict least recently used blocks, never keep, until need more bytes fit. 0, or -1. */
static int make_room_locked(struct diskcache *dc, size_t need, const struct entry *keep)
{
	while (dc->locked.used + need > dc->max_bytes) {
		struct entry *v = dc->locked.tail;

		if (v == keep && v)
			v = v->prev;
		if (!v)
			return -1;
		remove_locked(dc, v);
		dc->locked.stats.evicted++;
	}
	return 0;
}

/*
 * Check granules [ga, gb) of block file fd (the block at boff, identity id)
 * and copy their overlap with [off, end) into dst. The overlap is read
 * straight into dst, in one pread, and hashed there; the rest of the first
 * and the last granule streams through one granule on the stack: no
 * block-sized buffer. On a mismatch dst may hold bad bytes: the caller
 * fetches them again before anything is returned. 0 (*data_end set and *eof
 * raised when a short granule, the object's last, was met), or -1.
 */
static int granules_check(struct diskcache *dc, int fd, const unsigned char id[32],
			  long long boff, unsigned ga, unsigned gb, char *dst, long long off,
			  long long end, long long *data_end, int *eof)
{
	struct gran_rec recs[NGRAN];
	char chunk[DISKCACHE_GRANULE];
	unsigned char sum[32];
	struct block_hdr h;
	long long a, z, data_z;
	EVP_MD_CTX *c;
	unsigned g;
	int rc = 0;

	if (pread_full(fd, &h, sizeof(h), 0) || memcmp(h.magic, MAGIC, 8) ||
	    memcmp(h.id, id, 32) || h.off != (uint64_t)boff || h.granule != GRANULE ||
	    h.ngran != NGRAN ||
	    pread_full(fd, recs + ga, (long long)((gb - ga) * sizeof(recs[0])),
		       TABLE_OFF + (long long)(ga * sizeof(recs[0]))))
		return -1;
	/* The bytes end at the first short granule: the object's last. */
	for (g = ga; g < gb; g++) {
		if (recs[g].len == 0 || recs[g].len > GRANULE)
			return -1;
		if (recs[g].len < GRANULE) {
			gb = g + 1;
			break;
		}
	}
	data_z = boff + (long long)(gb - 1) * GRANULE + recs[gb - 1].len;
	a = max_ll(off, boff + (long long)ga * GRANULE);
	z = max_ll(a, min_ll(end, data_z));
	if (z > a && data_io(dc, fd, (struct span){ .rd = dst + (a - off) }, z - a,
			     HDR_SIZE + (a - boff)))
		return -1;
	c = EVP_MD_CTX_new();
	if (!c)
		abort(); /* OpenSSL cannot hash: nothing sensible is left to do */
	for (g = ga; g < gb && !rc; g++) {
		long long s = boff + (long long)g * GRANULE, t = s + recs[g].len;
		long long p1 = min_ll(max_ll(a, s), t), p2 = min_ll(max_ll(z, s), t);

		if (!EVP_DigestInit_ex(c, EVP_sha256(), NULL))
			abort();
		if (p1 > s && (pread_full(fd, chunk, p1 - s, HDR_SIZE + (s - boff)) ||
			       !EVP_DigestUpdate(c, chunk, (size_t)(p1 - s))))
			rc = -1;
		if (!rc && p2 > p1 && !EVP_DigestUpdate(c, dst + (p1 - off), (size_t)(p2 - p1)))
			abort();
		if (!rc && t > p2 && (pread_full(fd, chunk, t - p2, HDR_SIZE + (p2 - boff)) ||
				      !EVP_DigestUpdate(c, chunk, (size_t)(t - p2))))
			rc = -1;
		if (!rc && (!EVP_DigestFinal_ex(c, sum, NULL) || memcmp(sum, recs[g].sum, 32)))
			rc = -1;
	}
	EVP_MD_CTX_free(c);
	if (!rc && recs[gb - 1].len < GRANULE) {
		*eof = 1;
		*data_end = data_z;
	}
	return rc;
}

/*
 * Serve the run of present granules that starts at pos (in the block at
 * boff, identity id), up to span_z: those that overlap [off, end) are read
 * into dst and checked. Returns 1 with *adv, the run's length (*data_end and
 * *eof set when the object ends in it), 0 when the granule at pos is not
 * present, or -1 when the block failed its check (removed and counted; the
 * caller fetches it again).
 */
static int run_load(struct diskcache *dc, const unsigned char id[32], long long boff,
		    long long pos, long long span_z, char *dst, long long off, long long end,
		    long long *adv, long long *data_end, int *eof)
{
	unsigned g0 = (unsigned)((pos - boff) / GRANULE), g1 = g0, ga, gb;
	unsigned gmax = (unsigned)((min_ll(boff + BLOCK, span_z) - boff) / GRANULE);
	unsigned long long gen;
	char path[4096];
	struct entry *e;
	int fd;

	pthread_mutex_lock(&dc->lock);
	e = find_locked(dc, id);
	if (!e || !(e->present >> g0 & 1)) {
		pthread_mutex_unlock(&dc->lock);
		return 0;
	}
	while (g1 < gmax && e->present >> g1 & 1)
		g1++;
	*adv = boff + (long long)g1 * GRANULE - pos;
	/* Only the granules that overlap what the caller asked for are read. */
	ga = (unsigned)((max_ll(pos, off) - boff) / GRANULE);
	gb = (unsigned)((min_ll(boff + (long long)g1 * GRANULE, end) - boff + GRANULE - 1) /
			GRANULE);
	if (max_ll(pos, off) >= min_ll(boff + (long long)g1 * GRANULE, end)) {
		pthread_mutex_unlock(&dc->lock);
		return 1;
	}
	lru_touch_locked(dc, e);
	gen = e->gen;
	block_path(dc, id, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	pthread_mutex_unlock(&dc->lock);
	if (fd >= 0 && !granules_check(dc, fd, id, boff, ga, gb, dst, off, end, data_end, eof)) {
		close(fd);
		stats_add(dc, &dc->locked.stats.hits, gb - ga);
		return 1;
	}
	if (fd >= 0)
		close(fd);
	pthread_mutex_lock(&dc->lock);
	e = find_locked(dc, id);
	if (e && e->gen == gen) {
		dc->locked.stats.bad++;
		remove_locked(dc, e);
	}
	pthread_mutex_unlock(&dc->lock);
	return -1;
}

/*
 * Where the run of granules to fetch that starts at pos (missing) ends, at
 * most at span_z: it takes in every missing granule up to the first stretch
 * of DISKCACHE_COALESCE cached bytes, so that a few cached granules do not
 * split one GET into many. A granule being written by another thread counts
 * as missing (both fetch it; one stores it).
 */
static long long missing_run_end(struct diskcache *dc, const char *key, const char *etag,
				 long long pos, long long span_z)
{
	long long z = pos + GRANULE, p, gap = 0, boff = -1;
	unsigned char id[32];
	uint64_t present = 0;

	for (p = z; p < span_z; p += GRANULE) {
		if (p / BLOCK * BLOCK != boff) {
			struct entry *e;

			boff = p / BLOCK * BLOCK;
			block_id(dc, key, etag, boff, id);
			pthread_mutex_lock(&dc->lock);
			e = find_locked(dc, id);
			present = e ? e->present : 0;
			pthread_mutex_unlock(&dc->lock);
		}
		if (present >> ((p - boff) / GRANULE) & 1) {
			gap += GRANULE;
			if (gap >= (long long)DISKCACHE_COALESCE)
				break;
		} else {
			gap = 0;
			z = p + GRANULE;
		}
	}
	return z;
}

/*
 * Store granules want of the block at boff (identity id) from buf, which
 * holds the object's bytes [buf_off, data_z). Granules present or being
 * written already are left alone. On any failure they are simply not cached.
 */
static void block_fill(struct diskcache *dc, const unsigned char id[32], long long boff,
		       uint64_t want, const char *buf, long long buf_off, long long data_z)
{
	struct gran_rec recs[NGRAN];
	size_t need = 0, hdr = 0;
	unsigned long long gen;
	uint64_t claim;
	char path[4096];
	struct entry *e;
	unsigned g, h;
	int fd, made, ok = 1;

	pthread_mutex_lock(&dc->lock);
	e = find_locked(dc, id);
	claim = e ? want & ~e->present & ~e->pending : want;
	for (g = 0; g < NGRAN; g++)
		if (claim >> g & 1)
			need += gran_bytes(min_ll(GRANULE, data_z - (boff + g * GRANULE)));
	if (e)
		lru_touch_locked(dc, e);
	else
		hdr = HDR_SIZE;
	if (!claim || make_room_locked(dc, need + hdr, e) != 0) {
		pthread_mutex_unlock(&dc->lock);
		return;
	}
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e) {
			pthread_mutex_unlock(&dc->lock);
			return;
		}
		memcpy(e->id, id, 32);
		e->gen = ++dc->locked.gens;
		e->bytes = hdr;
		dc->locked.used += hdr;
		e->hnext = dc->locked.table[slot(id)];
		dc->locked.table[slot(id)] = e;
		lru_push_locked(dc, e);
	}
	block_path(dc, id, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (!e->present && !e->pending)
			remove_locked(dc, e);
		pthread_mutex_unlock(&dc->lock);
		return;
	}
	e->pending |= claim;
	e->bytes += need;
	dc->locked.used += need;
	made = e->made;
	gen = e->gen;
	pthread_mutex_unlock(&dc->lock);

	if (!made) {
		struct block_hdr bh;

		memset(&bh, 0, sizeof(bh));
		memcpy(bh.magic, MAGIC, 8);
		memcpy(bh.id, id, 32);
		bh.off = (uint64_t)boff;
		bh.granule = (uint32_t)GRANULE;
		bh.ngran = NGRAN;
		ok = !pwrite_full(fd, &bh, sizeof(bh), 0);
	}
	/* Each stretch of claimed granules: its bytes, then its records. */
	for (g = 0; g < NGRAN && ok; g = h) {
		long long s = boff + (long long)g * GRANULE, t;

		if (!(claim >> g & 1)) {
			h = g + 1;
			continue;
		}
		for (h = g; h < NGRAN && claim >> h & 1; h++) {
			long long gs = boff + (long long)h * GRANULE;

			memset(&recs[h], 0, sizeof(recs[h]));
			recs[h].len = (uint32_t)min_ll(GRANULE, data_z - gs);
			if (!EVP_Digest(buf + (gs - buf_off), recs[h].len, recs[h].sum, NULL,
					EVP_sha256(), NULL))
				abort(); /* OpenSSL cannot hash: nothing sensible is left to do */
		}
		t = min_ll(boff + (long long)h * GRANULE, data_z);
		ok = !data_io(dc, fd, (struct span){ .wr = buf + (s - buf_off) }, t - s,
			      HDR_SIZE + (s - boff)) &&
		     !pwrite_full(fd, &recs[g], (long long)((h - g) * sizeof(recs[0])),
				  TABLE_OFF + (long long)(g * sizeof(recs[0])));
	}
	if (close(fd) != 0)
		ok = 0;

	pthread_mutex_lock(&dc->lock);
	e = find_locked(dc, id);
	/* Evicted meanwhile: its file is gone, and the bytes with it. */
	if (e && e->gen == gen) {
		e->pending &= ~claim;
		if (ok) {
			e->present |= claim;
			e->made = 1;
		} else {
			e->bytes -= need;
			dc->locked.used -= need;
			if (!e->present && !e->pending)
				remove_locked(dc, e);
		}
	}
	pthread_mutex_unlock(&dc->lock);
}

/*
 * Cache what a GET brought: the object's bytes [buf_off, data_z) in buf,
 * eof when the object ends at data_z. Whole granules are stored, and the
 * object's last one, short; a granule the bytes cover only in part is not.
 */
static void run_store(struct diskcache *dc, const char *key, const char *etag, const char *buf,
		      long long buf_off, long long data_z, int eof)
{
	unsigned char id[32];
	long long boff;

	for (boff = buf_off / BLOCK * BLOCK; boff < data_z; boff += BLOCK) {
		uint64_t want = 0;
		unsigned g;

		for (g = 0; g < NGRAN; g++) {
			long long s = boff + (long long)g * GRANULE;

			if (s >= buf_off && s < data_z && (s + GRANULE <= data_z || eof))
				want |= gran_mask(g, g + 1);
		}
		if (!want)
			continue;
		block_id(dc, key, etag, boff, id);
		block_fill(dc, id, boff, want, buf, buf_off, data_z);
	}
}

/*
 * Fetch the granules [a, z) with one GET and cache them, copying their
 * overlap with [off, end) into dst. In place when they lie inside the
 * caller's range, else through a bounce buffer in the budget; when the
 * budget is short, only the caller's part of them. *data_end and *eof are
 * set when the object ends before z.
 */
static int run_fetch(struct diskcache *dc, const char *key, struct store_read *rd, long long a,
		     long long z, char *dst, long long off, long long end, long long *data_end,
		     int *eof, struct store_error *e)
{
	const char *etag = rd->etag;
	struct membuf bounce = MEMBUF_EMPTY;
	size_t rgot = 0;
	int rc, bounced = 0;
	char *buf;

	if (a >= off && z <= end) {
		buf = dst + (a - off);
	} else if (dc->mb && membudget_get(dc->mb, (size_t)(z - a), &bounce) == 0) {
		buf = bounce.p;
		bounced = 1;
	} else {
		/* The budget is short: only the caller's bytes. */
		a = max_ll(a, off);
		z = min_ll(z, end);
		buf = dst + (a - off);
	}
	rc = store_read_range(dc->layer.inner, key, rd, a, (size_t)(z - a), buf, &rgot, e);
	pthread_mutex_lock(&dc->lock);
	dc->locked.stats.gets++;
	if (!rc)
		dc->locked.stats.misses +=
			(unsigned long long)((z + GRANULE - 1) / GRANULE - a / GRANULE);
	pthread_mutex_unlock(&dc->lock);
	if (!rc) {
		long long data_z = a + (long long)rgot;

		if ((long long)rgot < z - a) {
			*eof = 1;
			*data_end = data_z;
		}
		run_store(dc, key, etag, buf, a, data_z, *eof);
		if (bounced) {
			long long s = max_ll(a, off), t = min_ll(data_z, end);

			if (t > s)
				memcpy(dst + (s - off), buf + (s - a), (size_t)(t - s));
		}
	}
	membudget_put(dc->mb, &bounce);
	return rc;
}

/*
 * A read of [off, end): the granules it touches (from offset 0 for the
 * read-ahead's first part after a lookup's bytes) are walked in order; each
 * run of present granules is loaded (what overlaps the caller's range) and
 * each run of missing ones that overlaps the caller's range is fetched whole
 * and cached. Missing runs outside it are left for the reads that want them.
 */
static int dc_read_range(struct store *st, const char *key, struct store_read *rd, long long off,
			 size_t len, char *dst, size_t *got, struct store_error *e)
{
	struct diskcache *dc = (struct diskcache *)st;
	long long end = off + (long long)len, pos, span_z, data_end = end;
	const char *etag = rd ? rd->etag : "";
	unsigned char id[32];
	int eof = 0;

	*got = 0;
	/*
	 * Only what the inner store verified is kept: its read_range answers a
	 * pinned read with exactly the bytes of that ETag, range and size, or
	 * fails. An unpinned read (no ETag yet) passes through, never kept.
	 */
	if (!*etag || len == 0)
		return store_read_range(dc->layer.inner, key, rd, off, len, dst, got, e);
	store_error_clear(e);
	pos = len >= DISKCACHE_HEAD_PART && off < BLOCK ? 0 : off / GRANULE * GRANULE;
	span_z = (end + GRANULE - 1) / GRANULE * GRANULE;
	while (pos < span_z && !eof) {
		long long boff = pos / BLOCK * BLOCK, adv = 0, z;
		int r;

		block_id(dc, key, etag, boff, id);
		r = run_load(dc, id, boff, pos, span_z, dst, off, end, &adv, &data_end, &eof);
		if (r > 0) {
			pos += adv;
			continue;
		}
		if (r < 0)
			log_msg(LOG_WARNING, "disk cache: block at %lld of s3://%s/%s failed its "
				"check; removed, fetching it again", boff, dc->bucket, key);
		z = missing_run_end(dc, key, etag, pos, span_z);
		if (z > off && pos < end) {
			int rc = run_fetch(dc, key, rd, pos, z, dst, off, end, &data_end, &eof, e);

			if (rc)
				return rc;
		}
		pos = z;
	}
	if (eof)
		*got = data_end > off ? (size_t)(min_ll(data_end, end) - off) : 0;
	else
		*got = len;
	return 0;
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
	.stat = store_fwd_stat,
	.list_page = store_fwd_list_page,
	.read_range = dc_read_range,
	.stat_read = store_fwd_stat_read,
	.stat_head = store_fwd_stat_head,
	.identity = store_fwd_identity,
	/* Reads are this layer's own: plain files read through it. */
	.open = store_plain_open,
	.file_read = store_plain_read,
	.span_release = store_plain_span_release,
	.file_interrupt = store_plain_interrupt,
	.file_close = store_plain_close,
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
	dc->layer.base.ops = &dc_ops;
	dc->layer.inner = inner;
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
	if (max_bytes < HDR_SIZE + DISKCACHE_BLOCK) {
		snprintf(why, whylen, "--max-cache-size must hold at least one block file "
			 "(%u bytes)", HDR_SIZE + DISKCACHE_BLOCK);
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
	return &dc->layer.base;
fail:
	dc_destroy(&dc->layer.base);
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
