/*
 * cache/readahead: the prefetcher, over the fake store of fakestore.h: what
 * it fetches for sequential, skipping, random and concurrent readers; the
 * ETag pin; failures. What it stops fetching is test_rafetch.c's.
 */
#include "cache/readahead.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/membudget.h"
#include "core/err.h"
#include "harness.h"
#include "fakestore.h"
#include "s3/store.h"

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
	CHECK(st.cancelled + st.aborted >= 1);
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

/*
 * FUSE answers a read, then releases its span; the kernel may have sent the
 * RELEASE in between and another thread closed the file: the span is
 * released after the close (ASan saw a use after free here).
 */
TEST(a_span_is_released_after_its_file_is_closed)
{
	long long size = 16LL << 20;
	struct store_file *rf;
	struct store_span direct, held;
	struct env v;

	env_init(&v, size, 4 << 20, 1 << 20, 2);
	rf = ra_open(v.ra, "k", "\"v0\"", size);
	CHECK_INT(ra_read(rf, 0, 4096, NULL, &held, &ra_err), 0);
	CHECK(held.nheld > 0);
	ra_span_release(rf, &held);
	/* A read the window does not cover: a span that holds no part of the file. */
	CHECK_INT(ra_read(rf, 9 << 20, 4096, NULL, &direct, &ra_err), 0);
	CHECK(direct.owned != NULL && direct.nheld == 0);
	ra_close(rf);
	ra_span_release(rf, &direct);
	CHECK_INT(membudget_used(v.mb), 0);
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

int main(void)
{
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
	RUN(a_span_is_released_after_its_file_is_closed);
	RUN(a_size_past_any_object_is_bounded);
	RUN(many_handles_and_a_small_budget);
	RUN(concurrent_reads_on_one_handle);
	RUN(close_before_the_span_is_released);
	return harness_done();
}
