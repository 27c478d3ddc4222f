/*
 * cache/: the memory budget and the disk cache, over the fake store of
 * fakestore.h (one object in memory, every ranged GET recorded, and a new
 * ETag between two reads when asked). The prefetcher's own tests are in
 * test_readahead.c.
 */
#include "cache/diskcache.h"
#include "cache/membudget.h"
#include "cache/readahead.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "harness.h"
#include "fakestore.h"
#include "s3/store.h"

TEST(budget_never_exceeded)
{
	struct membudget *b = membudget_new(1 << 20);
	char *p, *q, *r;

	p = membudget_alloc(b, 600 << 10);
	q = membudget_alloc(b, 600 << 10);
	r = membudget_alloc(b, 400 << 10);
	CHECK(p != NULL);
	CHECK(q == NULL);
	CHECK(r != NULL);
	CHECK_INT(membudget_used(b), 1000 << 10);
	p[0] = 1;
	r[(400 << 10) - 1] = 2;
	membudget_release(b, p, 600 << 10);
	q = membudget_alloc(b, 600 << 10);
	CHECK(q != NULL);
	membudget_release(b, q, 600 << 10);
	membudget_release(b, r, 400 << 10);
	CHECK_INT(membudget_used(b), 0);
	CHECK_INT(membudget_peak(b), 1000 << 10);
	membudget_free(b);
}

TEST(released_buffers_are_reused_within_the_limit)
{
	struct membudget *b = membudget_new(4 << 20);
	char *p, *q, *r;

	p = membudget_alloc(b, 1 << 20);
	q = membudget_alloc(b, 1 << 20);
	membudget_release(b, p, 1 << 20);
	CHECK_INT(membudget_used(b), 1 << 20);
	CHECK_INT(membudget_pooled(b), 1 << 20);
	/* The same size gets the kept mapping back. */
	r = membudget_alloc(b, 1 << 20);
	CHECK(r == p);
	CHECK_INT(membudget_pooled(b), 0);
	membudget_release(b, r, 1 << 20);
	membudget_release(b, q, 1 << 20);
	/* Half the limit is kept at most; the rest is unmapped. */
	CHECK_INT(membudget_pooled(b), 2 << 20);
	CHECK_INT(membudget_used(b), 0);
	/* A larger size drops kept smaller mappings, and the limit holds. */
	p = membudget_alloc(b, 3 << 20);
	CHECK(p != NULL);
	CHECK_INT(membudget_pooled(b), 0);
	CHECK(membudget_alloc(b, 2 << 20) == NULL);
	membudget_release(b, p, 3 << 20);
	CHECK_INT(membudget_pooled(b), 0); /* 3 MiB is over half the limit */
	CHECK(membudget_peak(b) <= 4 << 20);
	p = membudget_alloc(b, 1 << 20);
	membudget_release(b, p, 1 << 20);
	membudget_trim(b);
	CHECK_INT(membudget_pooled(b), 0);
	membudget_free(b);
}
/* Bytes of regular files in dir (block files; the lock is empty), and their count. */
/* diskcache.c's layout: the header and granule table, then granule g's bytes at BLK_DATA + g * G. */
#define BLK_DATA 4096
#define G ((long long)DISKCACHE_GRANULE)
#define MB (1LL << 20)

/* Bytes the block files in dir take on disk (they are sparse), and their count. */
static long long dir_bytes(const char *dir, int *nfiles)
{
	char path[512];
	struct dirent *d;
	struct stat sb;
	long long n = 0;
	DIR *dp = opendir(dir);

	*nfiles = 0;
	if (!dp)
		return -1;
	while ((d = readdir(dp))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
			n += (long long)sb.st_blocks * 512;
			if (strstr(d->d_name, ".blk"))
				(*nfiles)++;
		}
	}
	closedir(dp);
	return n;
}

/* The path of the one block file in dir (CHECKed to be one). */
static void only_block(const char *dir, char *out, size_t cap)
{
	struct dirent *d;
	int n = 0;
	DIR *dp = opendir(dir);

	while (dp && (d = readdir(dp)))
		if (strstr(d->d_name, ".blk") && n++ == 0)
			snprintf(out, cap, "%s/%s", dir, d->d_name);
	if (dp)
		closedir(dp);
	CHECK_INT(n, 1);
}

static void poke(const char *path, long long at)
{
	unsigned char b = 0;
	int fd = open(path, O_RDWR);

	CHECK(fd >= 0);
	CHECK(pread(fd, &b, 1, at) == 1);
	b ^= 0xff;
	CHECK(pwrite(fd, &b, 1, at) == 1);
	close(fd);
}

static int check_read(struct store *s, const char *etag, int version, long long off, size_t len,
		      size_t want)
{
	struct store_read rd;
	struct store_error e;
	size_t got = 0, i;
	char *buf = malloc(len);
	int rc, bad = 0;

	store_read_init(&rd, etag, -1);
	rc = store_read_range(s, "k", &rd, off, len, buf, &got, &e);

	for (i = 0; i < got; i++)
		if ((unsigned char)buf[i] != byte_at(version, off + (long long)i))
			bad = 1;
	CHECK(!bad);
	CHECK_INT(got, want);
	free(buf);
	return rc;
}

/* A disk cache in a fresh directory over a fake object of size bytes. */
struct dcenv {
	char tmpl[40];
	char dir[64];
	struct fake f;
	struct membudget *mb;
	struct store *dc;
};

static int dcenv_init(struct dcenv *v, long long size, size_t budget, size_t max_bytes)
{
	char why[256];

	strcpy(v->tmpl, "/tmp/irsafs-test-cache-XXXXXX");
	CHECK(mkdtemp(v->tmpl) != NULL);
	snprintf(v->dir, sizeof(v->dir), "%s/c", v->tmpl);
	fake_init(&v->f, size);
	v->mb = membudget_new(budget);
	v->dc = diskcache_new(&v->f.base, v->mb, "bkt", v->dir, max_bytes, why, sizeof(why));
	CHECK(v->dc != NULL);
	return v->dc ? 0 : -1;
}

static void dcenv_cleanup(struct dcenv *v)
{
	int n;

	store_destroy(v->dc);
	CHECK_INT(dir_bytes(v->dir, &n), 0); /* emptied at exit */
	CHECK_INT(membudget_used(v->mb), 0);
	membudget_free(v->mb);
	rmdir(v->dir);
	rmdir(v->tmpl);
	pthread_mutex_destroy(&v->f.lock);
}

/* What a read of [off, off+len) must get from an object of size bytes. */
static size_t want_of(long long size, long long off, size_t len)
{
	return off >= size ? 0 : (size_t)(size - off < (long long)len ? size - off : (long long)len);
}

TEST(disk_cache_hits_checks_and_limits)
{
	long long size = 5 * MB + 777;
	struct diskcache_stats st;
	char why[256], path[600];
	struct store *other;
	struct dirent *d;
	struct dcenv v;
	struct stat sb;
	int n, gets, i;
	DIR *dp;

	if (dcenv_init(&v, size, 64 << 20, 3 * (DISKCACHE_BLOCK + 4096)))
		return;
	CHECK(stat(v.dir, &sb) == 0 && (sb.st_mode & 0777) == 0700);
	/* A second mount may not share the directory. */
	other = diskcache_new(&v.f.base, v.mb, "bkt", v.dir, 1 << 30, why, sizeof(why));
	CHECK(other == NULL);
	CHECK(strstr(why, "in use") != NULL);

	/* Miss, then hit: the second read sends nothing. */
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 100, 300000, 300000), 0);
	gets = v.f.ngets;
	CHECK_INT(gets, 1);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 5000, 200000, 200000), 0);
	CHECK_INT(v.f.ngets, gets);
	/* A run of missing blocks is one GET; the last block is short (EOF). */
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 3 * MB, 4 * MB, (size_t)(size - 3 * MB)), 0);
	CHECK_INT(v.f.ngets, gets + 1);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, size - 10, 4096, 10), 0);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, size + 10, 4096, 0), 0);
	CHECK_INT(v.f.ngets, gets + 1);

	/* Another ETag never sees these blocks. */
	fake_change(&v.f);
	CHECK_INT(check_read(v.dc, "\"v1\"", 1, 100, 1000, 1000), 0);
	CHECK_INT(v.f.ngets, gets + 2);

	/* A corrupted block is detected, removed and fetched again. */
	dp = opendir(v.dir);
	while (dp && (d = readdir(dp))) {
		if (!strstr(d->d_name, ".blk"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", v.dir, d->d_name);
		poke(path, BLK_DATA + 200);
	}
	if (dp)
		closedir(dp);
	gets = v.f.ngets;
	CHECK_INT(check_read(v.dc, "\"v1\"", 1, 100, 1000, 1000), 0);
	CHECK_INT(v.f.ngets, gets + 1);
	diskcache_stats(v.dc, &st);
	CHECK(st.bad >= 1);

	/* Churn: never more than the limit on disk. */
	for (i = 0; i < 40; i++) {
		long long off = (long long)((i * 7) % 6) * MB;

		CHECK_INT(check_read(v.dc, "\"v1\"", 1, off, 4096, want_of(size, off, 4096)), 0);
		CHECK(dir_bytes(v.dir, &n) <= 3 * (DISKCACHE_BLOCK + 4096));
	}
	for (i = 0; i < 6; i++) {
		CHECK_INT(check_read(v.dc, "\"v1\"", 1, i * MB, MB, want_of(size, i * MB, MB)), 0);
		CHECK(dir_bytes(v.dir, &n) <= 3 * (DISKCACHE_BLOCK + 4096));
	}
	/* The last three blocks read are still there, whole. */
	gets = v.f.ngets;
	CHECK_INT(check_read(v.dc, "\"v1\"", 1, 3 * MB, 3 * MB, (size_t)(size - 3 * MB)), 0);
	CHECK_INT(v.f.ngets, gets);
	diskcache_stats(v.dc, &st);
	CHECK(st.evicted > 0);
	store_destroy(v.dc);
	v.dc = NULL;
	/* Emptied at exit: only . and .. are left. */
	dp = opendir(v.dir);
	n = 0;
	while (dp && (d = readdir(dp)))
		n++;
	if (dp)
		closedir(dp);
	CHECK_INT(n, 2);
	dcenv_cleanup(&v);
}

/*
 * A random reader's miss fetches the granule it falls in, not the block; a
 * second pass over the same ranges sends nothing; larger random reads fetch
 * what they ask, in place.
 */
TEST(disk_cache_random_reads_fetch_granules)
{
	static unsigned char seen[512];
	long long size = 16 * MB, offs[200];
	struct diskcache_stats st;
	unsigned long long x = 12345;
	struct dcenv v;
	int i, distinct = 0, gets;

	if (dcenv_init(&v, size, 4 << 20, 64 << 20))
		return;
	memset(seen, 0, sizeof(seen));
	/* 4 KiB reads at random in the first 8 MiB. */
	for (i = 0; i < 200; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		offs[i] = (long long)(x >> 33) % (8 * MB / 4096) * 4096;
		if (!seen[offs[i] / G]++)
			distinct++;
		CHECK_INT(check_read(v.dc, "\"v0\"", 0, offs[i], 4096, 4096), 0);
	}
	CHECK_INT(v.f.ngets, distinct);
	for (i = 0; i < v.f.ngets; i++) {
		CHECK_INT(v.f.get_len[i], G);
		CHECK_INT(v.f.get_off[i] % G, 0);
	}
	CHECK(fetched(&v.f) <= 4 * 200 * 4096); /* granule / read = 4 */
	/* The bounce buffers were one granule each. */
	CHECK_INT(membudget_peak(v.mb), G);

	/* Again: all from disk. */
	gets = v.f.ngets;
	for (i = 0; i < 200; i++)
		CHECK_INT(check_read(v.dc, "\"v0\"", 0, offs[i], 4096, 4096), 0);
	CHECK_INT(v.f.ngets, gets);
	diskcache_stats(v.dc, &st);
	CHECK(st.hits >= 200);
	CHECK_INT(st.gets, distinct);

	/* A 256 KiB read (the kernel may send one whole) fetches just that, in place. */
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 12 * MB + (256 << 10), 256 << 10, 256 << 10), 0);
	CHECK_INT(v.f.ngets, gets + 1);
	CHECK_INT(v.f.get_off[gets], 12 * MB + (256 << 10));
	CHECK_INT(v.f.get_len[gets], 256 << 10);
	CHECK_INT(membudget_peak(v.mb), G);
	/* A read across two granules fetches both, with one GET. */
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 10 * MB + G - 2048, 4096, 4096), 0);
	CHECK_INT(v.f.ngets, gets + 2);
	CHECK_INT(v.f.get_off[gets + 1], 10 * MB);
	CHECK_INT(v.f.get_len[gets + 1], 2 * G);
	dcenv_cleanup(&v);
}

/*
 * A streaming reader's reads (the read-ahead's parts) leave whole blocks:
 * a part that starts after a lookup's first bytes still caches its first
 * block whole, and a block with a few cached granules is one GET, not many.
 */
TEST(disk_cache_sequential_reads_fill_whole_blocks)
{
	long long size = 5 * MB + 777, pos;
	struct store *ra;
	struct store_file *rf;
	struct dcenv v;
	int gets;

	if (dcenv_init(&v, size, 64 << 20, 64 << 20))
		return;
	/* The read-ahead's first part after a 128 KiB head. */
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 128 << 10, MB - (128 << 10), MB - (128 << 10)),
		  0);
	CHECK_INT(v.f.ngets, 1);
	CHECK_INT(v.f.get_off[0], 0);
	CHECK_INT(v.f.get_len[0], MB);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 0, 128 << 10, 128 << 10), 0);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 777 * 1024, 4096, 4096), 0);
	CHECK_INT(v.f.ngets, 1);

	/* Two granules of block 1 read at random, then a part over blocks 1-2: one GET. */
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, MB + 100 * 1024, 4096, 4096), 0);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, MB + 600 * 1024, 4096, 4096), 0);
	gets = v.f.ngets;
	CHECK_INT(gets, 3);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, MB, 2 * MB, 2 * MB), 0);
	CHECK_INT(v.f.ngets, gets + 1);
	CHECK_INT(v.f.get_off[gets], MB);
	CHECK_INT(v.f.get_len[gets], 2 * MB);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 0, 3 * MB, 3 * MB), 0);
	CHECK_INT(v.f.ngets, gets + 1);

	/* 256 KiB cached in the middle of block 3: the part is two GETs around it. */
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 3 * MB + (256 << 10), 128 << 10, 128 << 10), 0);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 3 * MB + (384 << 10), 128 << 10, 128 << 10), 0);
	gets = v.f.ngets;
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 3 * MB, MB, MB), 0);
	CHECK_INT(v.f.ngets, gets + 2);
	CHECK_INT(v.f.get_off[gets], 3 * MB);
	CHECK_INT(v.f.get_len[gets], 256 << 10);
	CHECK_INT(v.f.get_off[gets + 1], 3 * MB + (512 << 10));
	CHECK_INT(v.f.get_len[gets + 1], 512 << 10);

	/* Through the prefetcher, 128 KiB at a time: the rest arrives in parts and stays. */
	ra = readahead_new(v.dc, v.mb, &(struct ra_config){ .part_size = 2 << 20,
							    .concurrency = 4 });
	CHECK(ra != NULL && readahead_start(ra) == 0);
	rf = ra_open(ra, "k", "\"v0\"", size);
	for (pos = 0; pos < size; pos += 128 << 10)
		CHECK_INT(read_check(rf, 0, pos, 128 << 10), want_of(size, pos, 128 << 10));
	ra_close(rf);
	store_destroy(ra);
	gets = v.f.ngets;
	for (pos = 0; pos < size; pos += 4096 * 7)
		CHECK_INT(check_read(v.dc, "\"v0\"", 0, pos, 4096, want_of(size, pos, 4096)), 0);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 0, (size_t)size, (size_t)size), 0);
	CHECK_INT(v.f.ngets, gets);
	dcenv_cleanup(&v);
}

/*
 * A granule that fails its check is a miss: the block is removed and only
 * what the read needs is fetched again. So are a bad header, a bad record
 * and a truncated file.
 */
TEST(disk_cache_a_corrupted_granule_is_refetched)
{
	struct diskcache_stats st;
	struct dcenv v;
	char path[600];
	int gets, fd;

	if (dcenv_init(&v, 3 * MB, 64 << 20, 64 << 20))
		return;
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 0, MB, MB), 0);
	only_block(v.dir, path, sizeof(path));
	poke(path, BLK_DATA + 5 * G + 100);
	/* Granule 4 is still good; granule 5 is not. */
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 4 * G, 4096, 4096), 0);
	CHECK_INT(v.f.ngets, 1);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 5 * G + 4096, 4096, 4096), 0);
	CHECK_INT(v.f.ngets, 2);
	CHECK_INT(v.f.get_off[1], 5 * G);
	CHECK_INT(v.f.get_len[1], G);
	diskcache_stats(v.dc, &st);
	CHECK_INT(st.bad, 1);
	/* The block went with it: granule 4 is fetched again, then both are hits. */
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 4 * G, 4096, 4096), 0);
	CHECK_INT(v.f.ngets, 3);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 4 * G, 2 * G, 2 * G), 0);
	CHECK_INT(v.f.ngets, 3);

	/* A bad magic, a bad record, a truncated file: each a miss. */
	only_block(v.dir, path, sizeof(path));
	poke(path, 3);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 4 * G, 4096, 4096), 0);
	CHECK_INT(v.f.ngets, 4);
	only_block(v.dir, path, sizeof(path));
	poke(path, 56 + 4 * 40 + 20); /* granule 4's SHA-256 in the table */
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 4 * G, 4096, 4096), 0);
	CHECK_INT(v.f.ngets, 5);
	only_block(v.dir, path, sizeof(path));
	fd = open(path, O_RDWR);
	CHECK(fd >= 0 && ftruncate(fd, BLK_DATA + 4 * G + 10) == 0);
	if (fd >= 0)
		close(fd);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 4 * G, 4096, 4096), 0);
	CHECK_INT(v.f.ngets, 6);
	diskcache_stats(v.dc, &st);
	CHECK_INT(st.bad, 4);
	gets = v.f.ngets;
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 4 * G, 4096, 4096), 0);
	CHECK_INT(v.f.ngets, gets);
	dcenv_cleanup(&v);
}

/*
 * A file system that takes O_DIRECT with fcntl and then refuses the I/O
 * (EINVAL), as some FUSE and network file systems do. The test binary is
 * linked with --wrap for pread64 and pwrite64 (meson.build): while
 * refuse_direct is set, a call on an fd with O_DIRECT fails so.
 */
static int refuse_direct, refused;

ssize_t __real_pread64(int fd, void *buf, size_t n, off_t at);
ssize_t __real_pwrite64(int fd, const void *buf, size_t n, off_t at);
ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t at);
ssize_t __wrap_pwrite64(int fd, const void *buf, size_t n, off_t at);

static int direct_refused(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (!refuse_direct || fl < 0 || !(fl & O_DIRECT))
		return 0;
	__atomic_add_fetch(&refused, 1, __ATOMIC_RELAXED);
	errno = EINVAL;
	return 1;
}

ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t at)
{
	return direct_refused(fd) ? -1 : __real_pread64(fd, buf, n, at);
}

ssize_t __wrap_pwrite64(int fd, const void *buf, size_t n, off_t at)
{
	return direct_refused(fd) ? -1 : __real_pwrite64(fd, buf, n, at);
}

/* Read [off, off+len) into a page-aligned buffer (what lets the cache go direct); 0 if right. */
static int aligned_read(struct store *s, long long off, size_t len)
{
	struct store_read rd;
	struct store_error e;
	size_t got = 0, i;
	void *p = NULL;
	int rc, bad = 0;

	CHECK_INT(posix_memalign(&p, 4096, len), 0);
	if (!p)
		return -1;
	store_read_init(&rd, "\"v0\"", -1);
	rc = store_read_range(s, "k", &rd, off, len, p, &got, &e);
	for (i = 0; i < got; i++)
		if (((unsigned char *)p)[i] != byte_at(0, off + (long long)i))
			bad = 1;
	free(p);
	return rc || bad || got != len ? -1 : 0;
}

/* Direct I/O taken by fcntl and refused by the file system: hits stay hits, on the page cache. */
TEST(disk_cache_direct_io_refused_goes_buffered)
{
	char probe[600];
	struct dcenv v;
	int fd, takes;

	if (dcenv_init(&v, 3 * MB, 64 << 20, 64 << 20))
		return;
	snprintf(probe, sizeof(probe), "%s/probe", v.tmpl);
	fd = open(probe, O_RDWR | O_CREAT, 0600);
	CHECK(fd >= 0);
	takes = fd >= 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_DIRECT) == 0;
	close(fd);
	unlink(probe);
	if (!takes)
		fprintf(stderr, "note: the temp dir refuses O_DIRECT outright; only the buffered "
			"path is tested\n");

	/* Block 0 stored direct, then read back with direct I/O refused. */
	CHECK_INT(aligned_read(v.dc, 0, MB), 0);
	CHECK_INT(v.f.ngets, 1);
	refuse_direct = 1;
	CHECK_INT(aligned_read(v.dc, 0, MB), 0);
	CHECK_INT(v.f.ngets, 1);
	if (takes)
		CHECK(refused > 0);
	/* Block 1 stored and read back buffered: a hit, with no GET. */
	CHECK_INT(aligned_read(v.dc, MB, MB), 0);
	CHECK_INT(v.f.ngets, 2);
	CHECK_INT(aligned_read(v.dc, MB, MB), 0);
	CHECK_INT(v.f.ngets, 2);
	refuse_direct = 0;
	dcenv_cleanup(&v);
}

/* Granules read at random across many blocks: the bytes on disk stay under the limit. */
TEST(disk_cache_evicts_by_bytes)
{
	const size_t limit = 3 * (DISKCACHE_BLOCK + 4096);
	long long size = 16 * MB + 5;
	struct diskcache_stats st;
	unsigned long long x = 99;
	struct dcenv v;
	int i, n, most = 0;

	if (dcenv_init(&v, size, 64 << 20, limit))
		return;
	for (i = 0; i < 400; i++) {
		long long off;

		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		off = (long long)(x >> 33) % (size / 4096 + 1) * 4096;
		CHECK_INT(check_read(v.dc, "\"v0\"", 0, off, 4096, want_of(size, off, 4096)), 0);
		diskcache_stats(v.dc, &st);
		CHECK(st.bytes <= limit);
		CHECK(dir_bytes(v.dir, &n) <= (long long)limit);
		most = n > most ? n : most;
	}
	/* Far more than three block files were kept at once: they hold granules, not blocks. */
	CHECK(most > 3);
	diskcache_stats(v.dc, &st);
	CHECK(st.evicted > 0);
	CHECK(st.bytes >= limit - G - 4096 - DISKCACHE_BLOCK / 4);
	dcenv_cleanup(&v);
}

struct dc_reader {
	struct store *dc;
	int seed;
};

static void *dc_reader_main(void *arg)
{
	struct dc_reader *r = arg;
	unsigned long long x = (unsigned long long)r->seed;
	long long size = 6 * MB + 999;
	int i;

	for (i = 0; i < 120; i++) {
		long long off;
		size_t len;

		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		off = (long long)(x >> 33) % size;
		len = i % 5 == 0 ? (size_t)MB : i % 5 == 1 ? 128 << 10 : 4096;
		check_read(r->dc, "\"v0\"", 0, off, len, want_of(size, off, len));
	}
	return NULL;
}

/* Readers at once, random and streaming, over a cache that keeps evicting: right bytes. */
TEST(disk_cache_concurrent_readers)
{
	struct dc_reader r[4];
	pthread_t t[4];
	struct dcenv v;
	int i;

	if (dcenv_init(&v, 6 * MB + 999, 8 << 20, 3 * (DISKCACHE_BLOCK + 4096)))
		return;
	for (i = 0; i < 4; i++) {
		r[i] = (struct dc_reader){ v.dc, i + 1 };
		CHECK_INT(pthread_create(&t[i], NULL, dc_reader_main, &r[i]), 0);
	}
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	dcenv_cleanup(&v);
}

TEST(disk_cache_buffers_are_in_the_budget)
{
	long long size = 5 * MB + 777;
	struct dcenv v;
	void *all;
	int gets;

	if (dcenv_init(&v, size, 4 << 20, 64 << 20))
		return;
	/* The read-ahead's first part after a lookup's bytes: the whole first block, through a
	 * bounce buffer in the budget. */
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 128 << 10, MB - (128 << 10), MB - (128 << 10)),
		  0);
	CHECK_INT(v.f.ngets, 1);
	CHECK_INT(v.f.get_len[0], MB);
	CHECK_INT(membudget_used(v.mb), 0);
	CHECK_INT(membudget_peak(v.mb), MB);
	/* A whole block in the caller's buffer needs none. */
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, MB, MB, MB), 0);
	CHECK_INT(membudget_peak(v.mb), MB);

	/* With the budget all taken: */
	all = membudget_alloc(v.mb, 4 << 20);
	CHECK(all != NULL);
	gets = v.f.ngets;
	/* cached blocks, whole or in part, are checked without a buffer of their own; */
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 5000, 4096, 4096), 0);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, MB + 12345, 200000, 200000), 0);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 0, 2 * MB, 2 * MB), 0);
	CHECK_INT(v.f.ngets, gets);
	/* part of a missing granule is fetched alone and not cached; */
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 2 * MB + 4096, 8192, 8192), 0);
	CHECK_INT(v.f.ngets, gets + 1);
	CHECK_INT(v.f.get_off[gets], 2 * MB + 4096);
	CHECK_INT(v.f.get_len[gets], 8192);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 2 * MB + 4096, 8192, 8192), 0);
	CHECK_INT(v.f.ngets, gets + 2);
	/* granules it covers whole are; */
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 2 * MB + 4096, 3 * G, 3 * G), 0);
	CHECK_INT(v.f.ngets, gets + 3);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 2 * MB + G, 2 * G, 2 * G), 0);
	CHECK_INT(v.f.ngets, gets + 3);
	/* and so is the object's short last granule. */
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 5 * MB, 4096, 777), 0);
	CHECK_INT(v.f.ngets, gets + 4);
	membudget_release(v.mb, all, 4 << 20);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 5 * MB + 10, 4096, 767), 0);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 5 * MB + 700, 4096, 77), 0);
	CHECK_INT(v.f.ngets, gets + 4);
	/* Room again: part of a missing granule is fetched whole and then found on disk. */
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 4 * MB + 100, 4096, 4096), 0);
	CHECK_INT(v.f.ngets, gets + 5);
	CHECK_INT(v.f.get_len[gets + 4], G);
	CHECK_INT(check_read(v.dc, "\"v0\"", 0, 4 * MB + 8000, 4096, 4096), 0);
	CHECK_INT(v.f.ngets, gets + 5);
	CHECK(membudget_peak(v.mb) <= 4 << 20);
	dcenv_cleanup(&v);
}

int main(void)
{
	RUN(budget_never_exceeded);
	RUN(released_buffers_are_reused_within_the_limit);
	RUN(disk_cache_hits_checks_and_limits);
	RUN(disk_cache_random_reads_fetch_granules);
	RUN(disk_cache_sequential_reads_fill_whole_blocks);
	RUN(disk_cache_a_corrupted_granule_is_refetched);
	RUN(disk_cache_evicts_by_bytes);
	RUN(disk_cache_direct_io_refused_goes_buffered);
	RUN(disk_cache_concurrent_readers);
	RUN(disk_cache_buffers_are_in_the_budget);
	return harness_done();
}
