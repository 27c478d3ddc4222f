/*
 * cache/: the memory budget, the prefetcher and the disk cache, over a fake store that keeps
 * one object in memory, records every ranged GET, and can change the object
 * (a new ETag) between two reads.
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
#include "s3/store.h"

#define MAX_GETS 4096

struct fake {
	struct store base;
	pthread_mutex_t lock;
	char *data;
	long long size;
	char etag[32];
	int version;
	int ngets;
	long long get_off[MAX_GETS];
	size_t get_len[MAX_GETS];
	long long bytes;
	int fail_rc;		/* every read fails with this when not 0 */
	int block;		/* reads wait while set (or until cancelled) */
	int change_every;	/* a new version after every this many GETs */
	int cancelled;		/* reads that saw their cancel flag */
};

/*
 * The read-ahead's files through the store interface, by the names these
 * cases were written with.
 */
#define ra_read store_file_read
#define ra_span_release store_span_release
#define ra_close store_file_close
#define ra_interrupt store_file_interrupt

static struct membudget *shim_mb;	/* the budget of the read-ahead under test */

static struct store_file *ra_open(struct store *ra, const char *key, const char *etag,
				  long long size)
{
	struct store_attr a;

	memset(&a, 0, sizeof(a));
	snprintf(a.etag, sizeof(a.etag), "%s", etag ? etag : "");
	a.size = size;
	return store_open(ra, key, &a, NULL);
}

static void shim_release(void *mb, char *buf, size_t cap)
{
	membudget_release(mb, buf, cap);
}

/* An open with the first got bytes in *head (from shim_mb), which it takes. */
static struct store_file *ra_open_head(struct store *ra, const char *key, const char *etag,
				       long long size, struct membuf *head, size_t got)
{
	struct store_head h = { head->p, head->n, got, shim_release, shim_mb };
	struct store_attr a;

	memset(&a, 0, sizeof(a));
	snprintf(a.etag, sizeof(a.etag), "%s", etag ? etag : "");
	a.size = size;
	*head = MEMBUF_EMPTY;
	return store_open(ra, key, &a, &h);
}

/* The detail of a failed ra_read (each thread its own). */
static __thread struct store_error ra_err;

static unsigned char byte_at(int version, long long i)
{
	return (unsigned char)((i * 2654435761u >> 7) + (unsigned)version * 101);
}

static int fake_read(struct store *s, const char *key, struct store_read *rd, long long off,
		     size_t len, char *dst, size_t *got, struct store_error *e)
{
	struct fake *f = (struct fake *)s;
	const char *etag = rd ? rd->etag : NULL;
	long long i, n;

	store_error_clear(e);
	pthread_mutex_lock(&f->lock);
	if (f->ngets < MAX_GETS) {
		f->get_off[f->ngets] = off;
		f->get_len[f->ngets] = len;
	}
	f->ngets++;
	while (f->block) {
		/* A stalled server: the GET ends only when the caller calls it off. */
		if (rd && rd->cancel && __atomic_load_n(rd->cancel, __ATOMIC_ACQUIRE)) {
			f->cancelled++;
			pthread_mutex_unlock(&f->lock);
			return -EINTR;
		}
		pthread_mutex_unlock(&f->lock);
		usleep(2000);
		pthread_mutex_lock(&f->lock);
	}
	if (f->fail_rc) {
		pthread_mutex_unlock(&f->lock);
		e->http_status = 500;
		return f->fail_rc;
	}
	if (etag && *etag && strcmp(etag, f->etag) != 0) {
		pthread_mutex_unlock(&f->lock);
		e->http_status = 412;
		return -ESTALE;
	}
	n = off >= f->size ? 0 : (long long)len < f->size - off ? (long long)len : f->size - off;
	for (i = 0; i < n; i++)
		dst[i] = (char)byte_at(f->version, off + i);
	/* Unpinned: say which version answered, as the S3 store does. */
	if (rd && !rd->etag[0])
		snprintf(rd->etag, sizeof(rd->etag), "%s", f->etag);
	f->bytes += n;
	*got = (size_t)n;
	if (f->change_every && f->ngets % f->change_every == 0) {
		f->version++;
		snprintf(f->etag, sizeof(f->etag), "\"v%d\"", f->version);
	}
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static void fake_set(struct fake *f, int *field, int value)
{
	pthread_mutex_lock(&f->lock);
	*field = value;
	pthread_mutex_unlock(&f->lock);
}

static int fake_get(struct fake *f, const int *field)
{
	int v;

	pthread_mutex_lock(&f->lock);
	v = *field;
	pthread_mutex_unlock(&f->lock);
	return v;
}

static void fake_destroy(struct store *s)
{
}

static const struct store_ops fake_ops = { .read_range = fake_read, .destroy = fake_destroy };

static void fake_init(struct fake *f, long long size)
{
	memset(f, 0, sizeof(*f));
	f->base.ops = &fake_ops;
	pthread_mutex_init(&f->lock, NULL);
	f->size = size;
	strcpy(f->etag, "\"v0\"");
}

static void fake_change(struct fake *f)
{
	pthread_mutex_lock(&f->lock);
	f->version++;
	snprintf(f->etag, sizeof(f->etag), "\"v%d\"", f->version);
	pthread_mutex_unlock(&f->lock);
}

/* Read [off, off+len) through the prefetcher; check every byte. Returns bytes or -errno. */
static long long read_check(struct store_file *rf, int version, long long off, size_t len)
{
	struct store_span sp;
	long long pos = off;
	int i, rc, bad = 0;
	size_t j;

	rc = ra_read(rf, off, len, NULL, &sp, &ra_err);
	if (rc)
		return rc;
	for (i = 0; i < sp.niov; i++) {
		const unsigned char *b = sp.iov[i].iov_base;

		for (j = 0; j < sp.iov[i].iov_len; j++, pos++)
			if (b[j] != byte_at(version, pos))
				bad = 1;
	}
	CHECK(!bad);
	CHECK_INT(pos - off, sp.len);
	ra_span_release(rf, &sp);
	return (long long)(pos - off);
}

/* No byte was fetched twice: sum of GET lengths (clipped to the object). */
static long long fetched(struct fake *f)
{
	long long n;

	/* The fetch threads may still be writing it. */
	pthread_mutex_lock(&f->lock);
	n = f->bytes;
	pthread_mutex_unlock(&f->lock);
	return n;
}

struct env {
	struct fake fake;
	struct membudget *mb;
	struct store *ra;
};

static void env_init(struct env *v, long long size, size_t budget, size_t part, unsigned conc)
{
	struct ra_config cfg = { .part_size = part, .concurrency = conc };

	fake_init(&v->fake, size);
	v->mb = membudget_new(budget);
	shim_mb = v->mb;
	v->ra = readahead_new(&v->fake.base, v->mb, &cfg);
	CHECK(v->ra != NULL);
	CHECK_INT(readahead_start(v->ra), 0);
}

static void env_cleanup(struct env *v)
{
	store_destroy(v->ra);
	CHECK_INT(membudget_used(v->mb), 0);
	membudget_free(v->mb);
	pthread_mutex_destroy(&v->fake.lock);
}

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

/* What a lookup's GET brought: the first got bytes of the object, in a budget buffer. */
static struct membuf *head_of(struct env *v, struct membuf *m, size_t cap, size_t got)
{
	size_t i;

	CHECK_INT(membudget_get(v->mb, cap, m), 0);
	for (i = 0; m->p && i < got; i++)
		m->p[i] = (char)byte_at(0, (long long)i);
	return m;
}

TEST(a_head_from_the_lookup_is_read_first_and_not_fetched_again)
{
	long long size = 5LL << 20, off = 0, n;
	struct membuf head;
	struct store_file *rf;
	struct env v;
	int i;

	env_init(&v, size, 64 << 20, 4 << 20, 4);
	rf = ra_open_head(v.ra, "k", "\"v0\"", size, head_of(&v, &head, 128 << 10, 128 << 10),
			  128 << 10);
	CHECK(head.p == NULL && head.n == 0); /* the file owns it now */
	/* The first read (the kernel's 16 KiB for a 1-byte read) needs no GET. */
	CHECK_INT(read_check(rf, 0, 0, 16384), 16384);
	/* Read-ahead then fetches the rest of the first window, and only that. */
	for (i = 0; i < 200 && fetched(&v.fake) < (1 << 20) - (128 << 10); i++)
		usleep(5000);
	usleep(20000);
	CHECK_INT(fetched(&v.fake), (1 << 20) - (128 << 10));
	CHECK_INT(v.fake.get_off[0], 128 << 10);
	while ((n = read_check(rf, 0, off, 131072)) > 0)
		off += n;
	CHECK_INT(off, size);
	CHECK_INT(fetched(&v.fake), size - (128 << 10));
	/* Parts after the head are back on 1 MiB boundaries. */
	for (i = 1; i < v.fake.ngets; i++)
		CHECK_INT(v.fake.get_off[i] % (1 << 20), 0);
	ra_close(rf);
	env_cleanup(&v);

	/* A whole small object: no GET at all. */
	env_init(&v, 5000, 64 << 20, 4 << 20, 4);
	rf = ra_open_head(v.ra, "k", "\"v0\"", 5000, head_of(&v, &head, 128 << 10, 5000), 5000);
	CHECK_INT(read_check(rf, 0, 0, 131072), 5000);
	CHECK_INT(read_check(rf, 0, 5000, 131072), 0);
	ra_close(rf);
	CHECK_INT(v.fake.ngets, 0);
	env_cleanup(&v);
}

TEST(an_out_of_order_read_inside_the_window_keeps_it)
{
	long long size = 24LL << 20, off = 0, n;
	struct store_file *rf;
	struct ra_stats st;
	struct env v;

	env_init(&v, size, 64 << 20, 4 << 20, 4);
	rf = ra_open(v.ra, "k", "\"v0\"", size);
	while (off < (7LL << 19) && (n = read_check(rf, 0, off, 131072)) > 0)
		off += n;
	/*
	 * 3.5 MiB in: a read at 2.25 MiB is more than the back tolerance (1 MiB)
	 * behind, but the part [1 MiB, 3 MiB) is still held.
	 */
	CHECK_INT(read_check(rf, 0, 9LL << 18, 131072), 131072);
	while ((n = read_check(rf, 0, off, 131072)) > 0)
		off += n;
	CHECK_INT(off, size);
	ra_close(rf);
	readahead_stats(v.ra, &st);
	CHECK_INT(st.direct_gets, 0);
	CHECK_INT(fetched(&v.fake), size);
	env_cleanup(&v);
}

TEST(sequential_fetches_each_byte_once)
{
	static const size_t sizes[] = { 4096, 131072, 70000, 1 << 20 };
	long long size = 40LL << 20 | 12345;
	unsigned k;

	for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct env v;
		struct store_file *rf;
		struct ra_stats st;
		long long off = 0, n;

		env_init(&v, size, 64 << 20, 4 << 20, 4);
		rf = ra_open(v.ra, "k", "\"v0\"", size);
		while ((n = read_check(rf, 0, off, sizes[k])) > 0)
			off += n;
		CHECK_INT(n, 0);
		CHECK_INT(off, size);
		ra_close(rf);
		readahead_stats(v.ra, &st);
		CHECK_INT(fetched(&v.fake), size);
		CHECK_INT(st.direct_gets, 0);
		/* The window grew: far fewer GETs than reads, and none above the part size. */
		CHECK(v.fake.ngets < 25);
		for (n = 0; n < v.fake.ngets; n++)
			CHECK(v.fake.get_len[n] <= 4 << 20);
		/* The window (4 parts) plus the part being read and the one kept behind. */
		CHECK(membudget_peak(v.mb) <= 24 << 20);
		env_cleanup(&v);
	}
}

TEST(first_read_fetches_only_the_first_window)
{
	struct env v;
	struct store_file *rf;

	env_init(&v, 100 << 20, 64 << 20, 8 << 20, 8);
	rf = ra_open(v.ra, "k", "\"v0\"", 100 << 20);
	CHECK_INT(read_check(rf, 0, 0, 4096), 4096);
	ra_close(rf);
	env_cleanup(&v);
	CHECK_INT(v.fake.ngets, 1);
	CHECK_INT(v.fake.get_off[0], 0);
	CHECK_INT(v.fake.get_len[0], 1 << 20);
}

TEST(small_skips_keep_streaming)
{
	long long size = 24 << 20, off = 0;
	struct ra_stats st;
	struct store_file *rf;
	struct env v;
	int i = 0;

	env_init(&v, size, 64 << 20, 2 << 20, 4);
	rf = ra_open(v.ra, "k", "\"v0\"", size);
	while (off < size) {
		CHECK(read_check(rf, 0, off, 131072) > 0);
		if (i % 7 == 3)
			CHECK(read_check(rf, 0, off - 65536, 4096) > 0); /* a little back */
		off += 131072;
		if (i++ % 5 == 4)
			off += 300000; /* a little forward */
	}
	ra_close(rf);
	readahead_stats(v.ra, &st);
	CHECK_INT(st.direct_gets, 0);
	/* Skipped bytes may be fetched; none twice. */
	CHECK(fetched(&v.fake) <= size);
	env_cleanup(&v);
}

TEST(a_jump_past_the_window_is_a_seek)
{
	long long off, jump = 12 << 20;
	struct ra_stats before, after;
	struct store_file *rf;
	struct env v;
	int i, found = 0;

	env_init(&v, 100 << 20, 64 << 20, 8 << 20, 8);
	rf = ra_open(v.ra, "k", "\"v0\"", 100 << 20);
	/* Stream 2 MiB: the window has grown to a few MiB, far short of 12. */
	for (off = 0; off < 2 << 20; off += 128 << 10)
		CHECK_INT(read_check(rf, 0, off, 128 << 10), 128 << 10);
	readahead_stats(v.ra, &before);
	/*
	 * 10 MiB past the last read and past everything requested: a random
	 * reader's next read, not a skip. It fetches its own bytes; it used to
	 * count as sequential (anything up to 16 MiB ahead) and pull a 4 MiB
	 * window.
	 */
	CHECK_INT(read_check(rf, 0, jump, 128 << 10), 128 << 10);
	readahead_stats(v.ra, &after);
	CHECK_INT(after.direct_gets, before.direct_gets + 1);
	ra_close(rf);
	env_cleanup(&v);
	for (i = 0; i < v.fake.ngets && i < MAX_GETS; i++)
		if (v.fake.get_off[i] == jump)
			found = v.fake.get_len[i] == 128 << 10;
	CHECK(found);
}

TEST(out_of_order_reads_after_a_seek_stream)
{
	long long size = 64 << 20, base = 20 << 20, off;
	struct ra_stats st;
	struct store_file *rf;
	struct env v;
	int i;

	env_init(&v, size, 64 << 20, 8 << 20, 8);
	rf = ra_open(v.ra, "k", "\"v0\"", size);
	/* 128 KiB reads in pairs, the second half first, as async kernel reads come. */
	for (i = 0; i < 64; i += 2) {
		off = base + (long long)i * (128 << 10);
		CHECK_INT(read_check(rf, 0, off + (128 << 10), 128 << 10), 128 << 10);
		CHECK_INT(read_check(rf, 0, off, 128 << 10), 128 << 10);
	}
	ra_close(rf);
	readahead_stats(v.ra, &st);
	/* Only the first few reads go direct; then the window takes over. */
	CHECK(st.direct_gets <= 4);
	CHECK(st.gets >= 1);
	env_cleanup(&v);
}

TEST(random_reads_fetch_what_is_asked)
{
	long long size = 100 << 20, asked = 0;
	unsigned seed = 42;
	struct store_file *rf;
	struct env v;
	int i;

	env_init(&v, size, 64 << 20, 8 << 20, 8);
	rf = ra_open(v.ra, "k", "\"v0\"", size);
	for (i = 0; i < 300; i++) {
		long long off = (long long)(rand_r(&seed) % (size / 4096)) * 4096;

		if (i == 0 && off == 0)
			off = 4096;
		CHECK_INT(read_check(rf, 0, off, 4096), 4096);
		asked += 4096;
	}
	/* Random 256 KiB reads come as two adjacent 128 KiB kernel reads. */
	for (i = 0; i < 50; i++) {
		long long off = (long long)(rand_r(&seed) % (size / (256 << 10))) * (256 << 10);

		CHECK_INT(read_check(rf, 0, off, 128 << 10), 128 << 10);
		CHECK_INT(read_check(rf, 0, off + (128 << 10), 128 << 10), 128 << 10);
		asked += 256 << 10;
	}
	/* Unaligned: rounded out to 4 KiB blocks. */
	CHECK_INT(read_check(rf, 0, 5000, 100), 100);
	asked += 100;
	ra_close(rf);
	CHECK(fetched(&v.fake) <= 2 * asked);
	CHECK_INT(v.fake.ngets, 401);
	env_cleanup(&v);
}

TEST(reads_at_and_past_the_end)
{
	long long size = 1000003;
	struct store_file *rf;
	struct store_span sp;
	struct env v;

	env_init(&v, size, 64 << 20, 8 << 20, 8);
	rf = ra_open(v.ra, "k", "\"v0\"", size);
	CHECK_INT(read_check(rf, 0, 0, 1 << 20), size);
	CHECK_INT(read_check(rf, 0, size - 3, 4096), 3);
	CHECK_INT(ra_read(rf, size, 4096, NULL, &sp, &ra_err), 0);
	CHECK_INT(sp.len, 0);
	ra_span_release(rf, &sp);
	CHECK_INT(ra_read(rf, size + 99, 4096, NULL, &sp, &ra_err), 0);
	CHECK_INT(sp.len, 0);
	ra_span_release(rf, &sp);
	ra_close(rf);
	/*
	 * The object is shorter than the listing said: only the size given at
	 * open ends it, so the bytes that do not come are an error, never a
	 * short read that looks like the end of the file.
	 */
	rf = ra_open(v.ra, "k", "\"v0\"", size + 5000);
	CHECK_INT(read_check(rf, 0, 0, 1 << 20), -EIO);
	CHECK_INT(read_check(rf, 0, size - 4096, 1 << 20), -EIO);
	ra_close(rf);
	env_cleanup(&v);
}

TEST(changed_object_gives_estale_never_mixed_bytes)
{
	long long size = 32 << 20, off = 0, n;
	struct store_file *rf, *rf2;
	struct env v;

	env_init(&v, size, 64 << 20, 1 << 20, 2);
	rf = ra_open(v.ra, "k", "\"v0\"", size);
	for (n = 0; n < 8; n++) {
		CHECK_INT(read_check(rf, 0, off, 131072), 131072);
		off += 131072;
	}
	fake_change(&v.fake);
	/* Bytes already fetched may still be served; once past them, ESTALE. */
	while ((n = read_check(rf, 0, off, 131072)) > 0)
		off += n;
	CHECK_INT(n, -ESTALE);
	CHECK(off < size);
	CHECK_INT(read_check(rf, 0, 0, 4096), -ESTALE);
	CHECK_INT(read_check(rf, 0, size - 4096, 4096), -ESTALE);
	ra_close(rf);
	/* A new open with the new ETag reads the new bytes. */
	rf2 = ra_open(v.ra, "k", v.fake.etag, size);
	CHECK_INT(read_check(rf2, 1, 12345, 4096), 4096);
	ra_close(rf2);
	env_cleanup(&v);
}

TEST(an_unpinned_file_is_pinned_to_its_first_answer)
{
	long long size = 8LL << 20, off = 0, n;
	struct store_file *rf;
	struct env v;

	/* The listing gave no ETag: the first answer's pins the rest. */
	env_init(&v, size, 64 << 20, 1 << 20, 2);
	rf = ra_open(v.ra, "k", "", size);
	CHECK_INT(read_check(rf, 0, 0, 131072), 131072);
	fake_change(&v.fake);
	while ((n = read_check(rf, 0, off, 131072)) > 0)
		off += n;
	CHECK_INT(n, -ESTALE);
	CHECK(off < size);
	ra_close(rf);
	env_cleanup(&v);

	/* A listing's ETag that could split a header pins nothing either. */
	env_init(&v, size, 64 << 20, 1 << 20, 2);
	rf = ra_open(v.ra, "k", "\"v0\"\r\nX: 1", size);
	CHECK_INT(read_check(rf, 0, 0, 131072), 131072);
	ra_close(rf);
	env_cleanup(&v);
}

/* The version whose byte at pos is b (versions differ in every byte). */
static int version_of(unsigned char b, long long pos)
{
	int w;

	for (w = 0; w < 256 && b != byte_at(w, pos); w++)
		;
	return w;
}

TEST(unpinned_parts_of_two_versions_are_never_mixed)
{
	long long size = 16LL << 20, off, n;
	int round;

	for (round = 0; round < 20; round++) {
		struct store_file *rf;
		struct store_span sp;
		struct env v;
		int version = -1, mixed = 0, rc = 0, i;
		size_t j;

		/* A new version after every GET: parallel unpinned parts differ. */
		env_init(&v, size, 64 << 20, 256 << 10, 4);
		v.fake.change_every = 1;
		rf = ra_open(v.ra, "k", "", size);
		for (off = 0; off < size; off += n) {
			long long pos = off;

			rc = ra_read(rf, off, 131072, NULL, &sp, &ra_err);
			if (rc || !sp.len)
				break;
			/* Every byte served is of one version, the first one's. */
			for (i = 0; i < sp.niov; i++) {
				const unsigned char *p = sp.iov[i].iov_base;

				for (j = 0; j < sp.iov[i].iov_len; j++, pos++) {
					if (version < 0)
						version = version_of(p[j], pos);
					if (p[j] != byte_at(version, pos))
						mixed = 1;
				}
			}
			n = (long long)sp.len;
			ra_span_release(rf, &sp);
		}
		CHECK(!mixed);
		CHECK_INT(rc, -ESTALE); /* the change was noticed */
		ra_close(rf);
		env_cleanup(&v);
	}
}

TEST(a_failed_read_is_answered_again_at_once_then_asked_again)
{
	long long size = 16LL << 20;
	struct store_file *rf;
	struct env v;
	int gets;

	env_init(&v, size, 64 << 20, 1 << 20, 2);
	rf = ra_open(v.ra, "k", "\"v0\"", size);
	fake_set(&v.fake, &v.fake.fail_rc, -ETIMEDOUT);
	/* A seek: the reader's own GET fails after its budget ... */
	CHECK_INT(read_check(rf, 0, 5 << 20, 131072), -ETIMEDOUT);
	gets = fake_get(&v.fake, &v.fake.ngets);
	/* ... and the kernel's retry of its first page costs no second one. */
	CHECK_INT(read_check(rf, 0, 5 << 20, 4096), -ETIMEDOUT);
	CHECK_INT(fake_get(&v.fake, &v.fake.ngets), gets);
	/* Elsewhere, reads ask. */
	CHECK_INT(read_check(rf, 0, 9 << 20, 4096), -ETIMEDOUT);
	CHECK(fake_get(&v.fake, &v.fake.ngets) > gets);
	/* The fault is over: the same handle reads again (after the short memory). */
	fake_set(&v.fake, &v.fake.fail_rc, 0);
	usleep(2100 * 1000);
	CHECK_INT(read_check(rf, 0, 5 << 20, 131072), 131072);
	ra_close(rf);

	/* The same through the window: a failed part is not kept. */
	rf = ra_open(v.ra, "k", "\"v0\"", size);
	fake_set(&v.fake, &v.fake.fail_rc, -EIO);
	CHECK_INT(read_check(rf, 0, 0, 131072), -EIO);
	gets = fake_get(&v.fake, &v.fake.ngets);
	CHECK_INT(read_check(rf, 0, 0, 4096), -EIO);
	CHECK_INT(fake_get(&v.fake, &v.fake.ngets), gets);
	fake_set(&v.fake, &v.fake.fail_rc, 0);
	usleep(2100 * 1000);
	CHECK_INT(read_check(rf, 0, 0, 131072), 131072);
	ra_close(rf);
	env_cleanup(&v);
}

struct blocked_reader {
	struct store_file *rf;
	long long off;
	int cancel;
	int rc;
	int done;
};

static void *blocked_reader_main(void *arg)
{
	struct blocked_reader *b = arg;
	struct store_span sp;

	b->rc = ra_read(b->rf, b->off, 131072, &b->cancel, &sp, &ra_err);
	if (!b->rc)
		ra_span_release(b->rf, &sp);
	__atomic_store_n(&b->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Interrupt a reader stuck on a stalled GET; 1 when it gave up within 2 s. */
static int interrupt_reader(struct blocked_reader *b)
{
	int i;

	usleep(50000);
	CHECK(!__atomic_load_n(&b->done, __ATOMIC_ACQUIRE));
	__atomic_store_n(&b->cancel, 1, __ATOMIC_RELEASE);
	ra_interrupt(b->rf);
	for (i = 0; i < 400 && !__atomic_load_n(&b->done, __ATOMIC_ACQUIRE); i++)
		usleep(5000);
	return __atomic_load_n(&b->done, __ATOMIC_ACQUIRE);
}

TEST(an_interrupted_reader_is_released_at_once)
{
	long long size = 16LL << 20;
	struct blocked_reader b;
	struct ra_stats st;
	pthread_t t;
	struct env v;
	int i;

	env_init(&v, size, 64 << 20, 1 << 20, 2);
	v.fake.block = 1;
	/* Waiting for a read-ahead part. */
	memset(&b, 0, sizeof(b));
	b.rf = ra_open(v.ra, "k", "\"v0\"", size);
	pthread_create(&t, NULL, blocked_reader_main, &b);
	CHECK(interrupt_reader(&b));
	pthread_join(t, NULL);
	CHECK_INT(b.rc, -EINTR);
	/* The part's GET goes on for the window; closing the file calls it off. */
	ra_close(b.rf);
	for (i = 0; i < 400 && fake_get(&v.fake, &v.fake.cancelled) < 1; i++)
		usleep(5000);
	CHECK(fake_get(&v.fake, &v.fake.cancelled) >= 1);

	/* Its own GET (a seek). */
	memset(&b, 0, sizeof(b));
	b.rf = ra_open(v.ra, "k", "\"v0\"", size);
	b.off = 7 << 20;
	pthread_create(&t, NULL, blocked_reader_main, &b);
	CHECK(interrupt_reader(&b));
	pthread_join(t, NULL);
	CHECK_INT(b.rc, -EINTR);
	ra_close(b.rf);
	fake_set(&v.fake, &v.fake.block, 0);
	readahead_stats(v.ra, &st);
	CHECK(st.cancelled >= 1);
	env_cleanup(&v);
}

TEST(direct_reads_are_in_the_budget)
{
	long long size = 16LL << 20;
	struct store_file *rf;
	struct store_span sp;
	struct env v;

	env_init(&v, size, 4 << 20, 1 << 20, 2);
	rf = ra_open(v.ra, "k", "\"v0\"", size);
	/* A seek: the reader's own GET, into a buffer counted in the budget. */
	CHECK_INT(ra_read(rf, 5 << 20, 131072, NULL, &sp, &ra_err), 0);
	CHECK_INT(sp.len, 131072);
	CHECK(sp.owned != NULL);
	CHECK(membudget_used(v.mb) >= 131072);
	ra_span_release(rf, &sp);
	CHECK_INT(membudget_used(v.mb), 0);
	ra_close(rf);
	env_cleanup(&v);
}

TEST(a_size_past_any_object_is_bounded)
{
	struct store_file *rf;
	struct store_span sp;
	struct env v;

	/* A listing's <Size> of 2^63-1: offsets near it must not overflow (UBSan). */
	env_init(&v, 1 << 20, 64 << 20, 1 << 20, 2);
	rf = ra_open(v.ra, "k", "\"v0\"", 0x7fffffffffffffffLL);
	CHECK_INT(ra_read(rf, 0x7fffffffffffff00LL, 4096, NULL, &sp, &ra_err), 0);
	CHECK_INT(sp.len, 0);
	/* Bounded to STORE_SIZE_MAX; the object is much shorter: an error, not EOF. */
	CHECK_INT(ra_read(rf, STORE_SIZE_MAX - 100, 4096, NULL, &sp, &ra_err), -EIO);
	CHECK_INT(read_check(rf, 0, 0, 4096), 4096);
	ra_close(rf);
	env_cleanup(&v);
}

struct reader {
	struct store *ra;
	long long size;
	size_t chunk;
	int ok;
	struct store_file *shared;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	struct store_file *rf = r->shared ? r->shared : ra_open(r->ra, "k", "\"v0\"", r->size);
	long long off = 0, n;

	while ((n = read_check(rf, 0, off, r->chunk)) > 0)
		off += n;
	r->ok = n == 0 && off == r->size;
	if (!r->shared)
		ra_close(rf);
	return NULL;
}

TEST(many_handles_and_a_small_budget)
{
	struct reader r[4];
	pthread_t t[4];
	struct env v;
	int i;

	/* 6 MiB for four streams of 4 MiB parts: read-ahead shrinks, never exceeds. */
	env_init(&v, 20 << 20, 6 << 20, 4 << 20, 8);
	for (i = 0; i < 4; i++) {
		r[i] = (struct reader){ v.ra, 20 << 20, (size_t)(65536 << (i % 3)), 0, NULL };
		pthread_create(&t[i], NULL, reader_main, &r[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK(r[i].ok);
	}
	CHECK(membudget_peak(v.mb) <= 6 << 20);
	env_cleanup(&v);
}

TEST(concurrent_reads_on_one_handle)
{
	struct reader r = { 0 };
	struct store_file *rf;
	long long size = 16 << 20, off;
	struct env v;
	pthread_t t;

	env_init(&v, size, 64 << 20, 2 << 20, 4);
	rf = ra_open(v.ra, "k", "\"v0\"", size);
	r = (struct reader){ v.ra, size, 131072, 0, rf };
	pthread_create(&t, NULL, reader_main, &r);
	/* Meanwhile, out-of-order reads on the same handle. */
	for (off = size - 131072; off >= 0; off -= 3 * 131072)
		CHECK(read_check(rf, 0, off, 131072) == 131072);
	pthread_join(t, NULL);
	CHECK(r.ok);
	ra_close(rf);
	env_cleanup(&v);
}

TEST(close_before_the_span_is_released)
{
	struct store_file *rf;
	struct store_span sp;
	struct env v;
	int i;

	/* The kernel may send RELEASE as soon as a reply is out. */
	env_init(&v, 4096, 64 << 20, 8 << 20, 8);
	for (i = 0; i < 50; i++) {
		rf = ra_open(v.ra, "k", "\"v0\"", 4096);
		CHECK_INT(ra_read(rf, 0, 4096, NULL, &sp, &ra_err), 0);
		CHECK_INT(sp.len, 4096);
		ra_close(rf);
		CHECK(sp.niov == 1 && ((unsigned char *)sp.iov[0].iov_base)[4095] == byte_at(0, 4095));
		ra_span_release(rf, &sp);
	}
	env_cleanup(&v);
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
	RUN(a_head_from_the_lookup_is_read_first_and_not_fetched_again);
	RUN(an_out_of_order_read_inside_the_window_keeps_it);
	RUN(sequential_fetches_each_byte_once);
	RUN(first_read_fetches_only_the_first_window);
	RUN(small_skips_keep_streaming);
	RUN(a_jump_past_the_window_is_a_seek);
	RUN(out_of_order_reads_after_a_seek_stream);
	RUN(random_reads_fetch_what_is_asked);
	RUN(reads_at_and_past_the_end);
	RUN(changed_object_gives_estale_never_mixed_bytes);
	RUN(an_unpinned_file_is_pinned_to_its_first_answer);
	RUN(unpinned_parts_of_two_versions_are_never_mixed);
	RUN(a_failed_read_is_answered_again_at_once_then_asked_again);
	RUN(an_interrupted_reader_is_released_at_once);
	RUN(direct_reads_are_in_the_budget);
	RUN(a_size_past_any_object_is_bounded);
	RUN(many_handles_and_a_small_budget);
	RUN(concurrent_reads_on_one_handle);
	RUN(close_before_the_span_is_released);
	RUN(disk_cache_hits_checks_and_limits);
	RUN(disk_cache_random_reads_fetch_granules);
	RUN(disk_cache_sequential_reads_fill_whole_blocks);
	RUN(disk_cache_a_corrupted_granule_is_refetched);
	RUN(disk_cache_evicts_by_bytes);
	RUN(disk_cache_concurrent_readers);
	RUN(disk_cache_buffers_are_in_the_budget);
	return harness_done();
}
