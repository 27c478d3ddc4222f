/*
 * cache/dirahead: files fetched ahead of a reader that opens a directory's
 * files in listing order. Checked: in-order opens start it and every file
 * after the first two is then taken with the right bytes, one GET each; a
 * break stops it and gives back everything, and random opens fetch almost
 * nothing; a file never opened costs at most one GET, released after
 * keep_ms; the bytes held and the memory budget never pass their bounds;
 * another ETag never gets the bytes; failing GETs stop the stream; and
 * several readers at once (run it under TSan too).
 *
 * The store computes every byte from the key's number and the offset, counts
 * the GETs of each key, can take a while (watching its cancel flag, as the
 * S3 store's transfer does) and can fail the keys it is told to.
 */
#include "cache/dirahead.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/membudget.h"
#include "core/err.h"
#include "harness.h"
#include "s3/store.h"

#define MAXF 2048

/* ---- the store -------------------------------------------------------------------- */

static int gets[MAXF];		/* atomic: GETs per file number */
static int heads[MAXF];		/* atomic: HEADs per file number */
static long long sizes[MAXF];	/* what a HEAD says (fdir_new sets them) */
static int aborted;		/* atomic: GETs that saw their cancel flag */
static int inflight, max_inflight;	/* atomic */
static int delay_us;		/* each GET takes this long */
static int fail_from = MAXF;	/* files numbered from here fail (EIO) */

static unsigned char byte_at(int n, long long off)
{
	return (unsigned char)((n * 131 + off * 7 + (off >> 9)) & 0xff);
}

/* The file number in a key "DIR/fNNNN", or -1. */
static int key_num(const char *key)
{
	const char *f = strrchr(key, 'f');

	return f ? atoi(f + 1) : -1;
}

static int fake_read(struct store *s, const char *key, struct store_read *rd, long long off,
		     size_t len, char *dst, size_t *got, struct store_error *e)
{
	int n = key_num(key), now, t;
	size_t i;

	(void)s;
	store_error_clear(e);
	*got = 0;
	if (n < 0 || n >= MAXF)
		return -ENOENT;
	__atomic_add_fetch(&gets[n], 1, __ATOMIC_RELAXED);
	now = __atomic_add_fetch(&inflight, 1, __ATOMIC_RELAXED);
	t = __atomic_load_n(&max_inflight, __ATOMIC_RELAXED);
	while (now > t && !__atomic_compare_exchange_n(&max_inflight, &t, now, 0,
						       __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	for (t = 0; t < __atomic_load_n(&delay_us, __ATOMIC_RELAXED); t += 200) {
		if (rd && rd->cancel && __atomic_load_n(rd->cancel, __ATOMIC_ACQUIRE)) {
			__atomic_add_fetch(&aborted, 1, __ATOMIC_RELAXED);
			__atomic_sub_fetch(&inflight, 1, __ATOMIC_RELAXED);
			return -EINTR;
		}
		usleep(200);
	}
	__atomic_sub_fetch(&inflight, 1, __ATOMIC_RELAXED);
	if (n >= __atomic_load_n(&fail_from, __ATOMIC_RELAXED))
		return -EIO;
	if (rd && rd->size >= 0 && (long long)len > rd->size - off)
		len = off < rd->size ? (size_t)(rd->size - off) : 0;
	for (i = 0; i < len; i++)
		dst[i] = (char)byte_at(n, off + (long long)i);
	*got = len;
	if (rd && rd->headers) {
		memset(rd->headers, 0, sizeof(*rd->headers));
		snprintf(rd->headers->etag, sizeof(rd->headers->etag), "%s", rd->etag);
		snprintf(rd->headers->content_type, sizeof(rd->headers->content_type),
			 "text/x-%d", n);
	}
	return 0;
}

static int fake_stat(struct store *s, const char *key, struct store_attr *out, struct store_error *e)
{
	int n = key_num(key);

	(void)s;
	store_error_clear(e);
	if (n < 0 || n >= MAXF)
		return -ENOENT;
	__atomic_add_fetch(&heads[n], 1, __ATOMIC_RELAXED);
	memset(out, 0, sizeof(*out));
	out->size = sizes[n];
	snprintf(out->etag, sizeof(out->etag), "\"e\"");
	snprintf(out->content_type, sizeof(out->content_type), "text/x-%d", n);
	return 0;
}

static void fake_destroy(struct store *s)
{
	(void)s;
}

static const struct store_ops fake_ops = {
	.stat = fake_stat, .read_range = fake_read, .destroy = fake_destroy,
};
static struct store fake_store = { &fake_ops };

/* ---- the directory ---------------------------------------------------------------- */

struct fdir {
	int refs;			/* atomic: references lent and not given back */
	size_t n;
	struct {
		char name[16];
		int is_dir;
		long long size;
		int num;
	} e[MAXF];
};

static size_t d_count(void *d)
{
	return ((struct fdir *)d)->n;
}

static void d_entry(void *d, size_t i, struct dirahead_entry *out)
{
	struct fdir *fd = d;

	out->name = fd->e[i].name;
	out->is_dir = fd->e[i].is_dir;
	out->size = fd->e[i].size;
	out->etag = "\"e\"";
}

static long d_find(void *d, const char *name)
{
	struct fdir *fd = d;
	size_t lo = 0, hi = fd->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(fd->e[mid].name, name);

		if (!c)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static void d_release(void *d)
{
	__atomic_sub_fetch(&((struct fdir *)d)->refs, 1, __ATOMIC_ACQ_REL);
}

static void *d_ref(void *d)
{
	__atomic_add_fetch(&((struct fdir *)d)->refs, 1, __ATOMIC_ACQ_REL);
	return d;
}

static const struct dirahead_dir_ops dops = { d_count, d_entry, d_find, d_release, d_ref };

/* n files f0000.., sizes from size_of; file numbers from first. */
static struct fdir *fdir_new(size_t n, int first, long long (*size_of)(int))
{
	struct fdir *d = calloc(1, sizeof(*d));
	size_t i;

	d->n = n;
	for (i = 0; i < n; i++) {
		d->e[i].num = first + (int)i;
		snprintf(d->e[i].name, sizeof(d->e[i].name), "f%04d", first + (int)i);
		d->e[i].size = size_of(first + (int)i);
		sizes[first + i] = d->e[i].size;
	}
	return d;
}

static struct fdir *lend(struct fdir *d)
{
	__atomic_add_fetch(&d->refs, 1, __ATOMIC_ACQ_REL);
	return d;
}

/* Varied small sizes, 1 byte to 40 KiB, and a few of 3 MiB. */
static long long varied(int n)
{
	if (n % 97 == 50)
		return 3 << 20;
	return 1 + (long long)((n * 2654435761u) % (40 << 10));
}

static long long small4k(int n)
{
	(void)n;
	return 4096;
}

/* ---- helpers ---------------------------------------------------------------------- */

static void reset_store(void)
{
	memset(gets, 0, sizeof(gets));
	memset(heads, 0, sizeof(heads));
	aborted = inflight = max_inflight = 0;
	delay_us = 0;
	fail_from = MAXF;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Wait (at most 10 s: only a bug takes longer) until pred(arg) holds. */
static int wait_for(int (*pred)(void *), void *arg)
{
	long long end = now_ms() + 10000;

	while (!pred(arg)) {
		if (now_ms() > end)
			return 0;
		usleep(500);
	}
	return 1;
}

static int fetched(void *arg)
{
	return __atomic_load_n(&gets[*(int *)arg], __ATOMIC_RELAXED) > 0;
}

struct idle_arg {
	struct dirahead *da;
};

static int nothing_held(void *arg)
{
	struct dirahead_stats st;

	dirahead_stats(((struct idle_arg *)arg)->da, &st);
	return st.held == 0;
}

/*
 * Open file i of d as an open would: 1 when its bytes were fetched ahead
 * (checked byte for byte against the size it was opened at), else 0.
 */
static int open_file(struct dirahead *da, struct membudget *mb, const char *dir_key,
		     struct fdir *d, size_t i, const char *etag, int give_dir)
{
	struct dirahead_file f;
	long long size = d->e[i].size;
	size_t want = (unsigned long long)size < (1u << 20) ? (size_t)size : 1u << 20, j;
	char ct[32];
	int r, bad = 0;

	memset(&f, 0, sizeof(f));
	r = dirahead_open(da, dir_key, d->e[i].name, give_dir ? lend(d) : NULL, etag, size, &f);
	if (!r) {
		CHECK(f.buf.p == NULL && f.buf.n == 0);
		return 0;
	}
	CHECK_INT(f.got, want);
	for (j = 0; j < f.got && j < want; j++)
		if ((unsigned char)f.buf.p[j] != byte_at(d->e[i].num, (long long)j))
			bad = 1;
	CHECK(!bad);
	snprintf(ct, sizeof(ct), "text/x-%d", d->e[i].num);
	CHECK_STR(f.content_type, ct);
	CHECK(f.fetched_ms > 0);
	membudget_put(mb, &f.buf);
	return 1;
}

static struct dirahead *make(struct membudget *mb, unsigned inflight_, unsigned files,
			     size_t max_bytes, long long keep_ms)
{
	struct dirahead_config cfg = {
		.max_inflight = inflight_, .max_files = files, .max_bytes = max_bytes,
		.keep_ms = keep_ms,
	};
	struct dirahead *da = dirahead_new(&fake_store, mb, &dops, &cfg);

	CHECK(da != NULL);
	CHECK_INT(dirahead_start(da), 0);
	return da;
}

/* ---- tests ------------------------------------------------------------------------ */

TEST(in_order_opens_take_every_file_after_the_first_two_with_one_get_each)
{
	struct membudget *mb = membudget_new(64 << 20);
	struct fdir *d = fdir_new(300, 0, varied);
	struct dirahead *da = make(mb, 8, 64, 16 << 20, 5000);
	struct dirahead_stats st;
	size_t i;
	int hits = 0, k;

	reset_store();
	for (i = 0; i < d->n; i++) {
		k = (int)i;
		/* From the third file on it was asked for: wait for it, then it must be there. */
		if (i >= 2)
			CHECK(wait_for(fetched, &k));
		hits += open_file(da, mb, "dir/", d, i, "\"e\"", 1);
	}
	CHECK_INT(hits, 298);
	for (i = 0; i < d->n; i++)
		CHECK_INT(gets[i], i < 2 ? 0 : 1);
	dirahead_stats(da, &st);
	CHECK_INT(st.hits, 298);
	CHECK_INT(st.wasted, 0);
	CHECK_INT(st.breaks, 0);
	CHECK(st.peak <= 16u << 20);
	CHECK_INT(st.held, 0);
	CHECK_INT(membudget_used(mb), 0);
	dirahead_free(da);
	CHECK_INT(d->refs, 0);
	membudget_free(mb);
	free(d);
}

TEST(a_break_stops_it_and_releases_everything)
{
	struct membudget *mb = membudget_new(64 << 20);
	struct fdir *d = fdir_new(400, 0, small4k);
	struct dirahead *da = make(mb, 4, 64, 16 << 20, 5000);
	struct idle_arg ia = { da };
	struct dirahead_stats st;
	int before, i, total = 0, k;
	static const size_t jumps[] = { 200, 17, 333, 90, 250, 5, 120 };

	reset_store();
	delay_us = 2000;
	for (i = 0; i < 20; i++) {
		k = i;
		if (i >= 2)
			CHECK(wait_for(fetched, &k));
		open_file(da, mb, "dir/", d, (size_t)i, "\"e\"", 1);
	}
	dirahead_stats(da, &st);
	CHECK(st.held > 0); /* files 20.. are being fetched */
	/* A jump: nothing more is fetched, and what was goes back (GETs in flight aborted). */
	open_file(da, mb, "dir/", d, 200, "\"e\"", 1);
	CHECK(wait_for(nothing_held, &ia));
	CHECK_INT(membudget_used(mb), 0);
	dirahead_stats(da, &st);
	CHECK_INT(st.breaks, 1);
	/* What the break wasted is bounded by the window the run had grown to. */
	CHECK(st.wasted + st.cancelled <= 2 * 20);
	for (i = 0; i < 400; i++)
		total += gets[i];
	before = total;
	/* Opens out of order fetch nothing more. */
	for (i = 0; i < (int)(sizeof(jumps) / sizeof(jumps[0])); i++)
		CHECK_INT(open_file(da, mb, "dir/", d, jumps[i], "\"e\"", 1), 0);
	usleep(20000);
	for (total = 0, i = 0; i < 400; i++)
		total += gets[i];
	CHECK_INT(total, before);
	/* Two in order again: it starts again from there. */
	open_file(da, mb, "dir/", d, 121, "\"e\"", 1);
	k = 122;
	CHECK(wait_for(fetched, &k));
	CHECK_INT(open_file(da, mb, "dir/", d, 122, "\"e\"", 1), 1);
	dirahead_free(da);
	CHECK_INT(membudget_used(mb), 0);
	CHECK_INT(d->refs, 0);
	membudget_free(mb);
	free(d);
}

TEST(random_opens_waste_a_bounded_number_of_gets)
{
	struct membudget *mb = membudget_new(64 << 20);
	struct fdir *d = fdir_new(1000, 0, varied);
	struct dirahead *da = make(mb, 8, 64, 16 << 20, 5000);
	struct idle_arg ia = { da };
	struct dirahead_stats st;
	size_t perm[1000], i, j, t;
	unsigned seed = 7;
	int pairs = 0, total = 0;

	reset_store();
	for (i = 0; i < 1000; i++)
		perm[i] = i;
	for (i = 999; i > 0; i--) {
		seed = seed * 1103515245u + 12345u;
		j = (seed >> 8) % (i + 1);
		t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (i = 0; i < 1000; i++) {
		open_file(da, mb, "dir/", d, perm[i], "\"e\"", 1);
		pairs += i > 0 && perm[i] == perm[i - 1] + 1;
	}
	CHECK(wait_for(nothing_held, &ia));
	for (i = 0; i < 1000; i++) {
		total += gets[i];
		CHECK(gets[i] <= 1);
	}
	/* Each accidental pair in order opens a window of 4 files; nothing else fetches. */
	CHECK(total <= 4 * pairs + 4);
	dirahead_stats(da, &st);
	CHECK(st.breaks >= 1000 - 2 * (unsigned)pairs - 2);
	dirahead_free(da);
	CHECK_INT(membudget_used(mb), 0);
	CHECK_INT(d->refs, 0);
	membudget_free(mb);
	free(d);
}

TEST(a_file_never_opened_costs_one_get_and_is_released_after_keep_ms)
{
	struct membudget *mb = membudget_new(64 << 20);
	struct fdir *d = fdir_new(100, 0, small4k);
	struct dirahead *da = make(mb, 4, 16, 16 << 20, 1500);
	struct idle_arg ia = { da };
	struct dirahead_stats st;
	int i, k, total = 0;

	reset_store();
	for (i = 0; i < 10; i++) {
		k = i;
		if (i >= 2)
			CHECK(wait_for(fetched, &k));
		open_file(da, mb, "dir/", d, (size_t)i, "\"e\"", 1);
	}
	/* The reader stops: after keep_ms the idle threads drop what it never opened. */
	k = 15;
	CHECK(wait_for(fetched, &k));
	CHECK(wait_for(nothing_held, &ia));
	CHECK_INT(membudget_used(mb), 0);
	CHECK_INT(d->refs, 0); /* the stream gave its directory back */
	for (i = 0; i < 100; i++) {
		CHECK(gets[i] <= 1);
		total += gets[i];
	}
	dirahead_stats(da, &st);
	CHECK_INT(st.hits, 8);
	CHECK_INT(st.wasted, (unsigned long long)total - 8);
	CHECK(st.wasted <= 16);
	dirahead_free(da);
	membudget_free(mb);
	free(d);
}

/*
 * A reader through a 4 MiB budget: 3 MiB files fetched as 1 MiB heads, and
 * files of up to 40 KiB. Neither max_bytes nor the budget less keep_free is
 * ever passed (the test gives each buffer back as soon as it is taken, so
 * what the budget holds is what dirahead holds).
 */
static void budget_run(size_t max_bytes, size_t keep_free, size_t bound)
{
	struct membudget *mb = membudget_new(4 << 20);
	struct fdir *d = fdir_new(400, 0, varied);
	struct dirahead_config cfg = {
		.max_inflight = 8, .max_files = 64, .max_bytes = max_bytes,
		.keep_free = keep_free, .keep_ms = 5000,
	};
	struct dirahead *da = dirahead_new(&fake_store, mb, &dops, &cfg);
	struct dirahead_stats st;
	size_t i;
	int hits = 0;

	reset_store();
	delay_us = 400;
	CHECK_INT(dirahead_start(da), 0);
	for (i = 0; i < d->n; i++) {
		hits += open_file(da, mb, "dir/", d, i, "\"e\"", 1);
		CHECK(membudget_used(mb) <= bound);
		dirahead_stats(da, &st);
		CHECK(st.held <= bound);
		usleep(300); /* what a reader does with a file */
	}
	dirahead_stats(da, &st);
	CHECK(st.peak <= bound);
	CHECK(st.peak > 0);
	CHECK(hits > 0);
	for (i = 0; i < d->n; i++)
		CHECK(gets[i] <= 1);
	dirahead_free(da);
	CHECK_INT(membudget_used(mb), 0);
	CHECK(membudget_peak(mb) <= bound);
	CHECK_INT(d->refs, 0);
	membudget_free(mb);
	free(d);
}

TEST(the_bytes_held_and_the_budget_are_never_exceeded)
{
	budget_run(1536 << 10, 1 << 20, 1536 << 10);	/* max_bytes bounds it */
	budget_run(64 << 20, 1 << 20, 3 << 20);		/* the budget less keep_free does */
}

TEST(another_etag_or_size_never_gets_the_bytes)
{
	struct membudget *mb = membudget_new(16 << 20);
	struct fdir *d = fdir_new(20, 0, small4k);
	struct dirahead *da = make(mb, 4, 16, 4 << 20, 5000);
	struct dirahead_file f;
	struct dirahead_stats st;
	int k = 2;

	reset_store();
	open_file(da, mb, "dir/", d, 0, "\"e\"", 1);
	open_file(da, mb, "dir/", d, 1, "\"e\"", 1);
	CHECK(wait_for(fetched, &k));
	usleep(20000);
	/* The object changed since the listing: the opener sees another ETag. */
	memset(&f, 0, sizeof(f));
	CHECK_INT(dirahead_open(da, "dir/", "f0002", NULL, "\"new\"", 4096, &f), 0);
	CHECK(f.buf.p == NULL);
	k = 3;
	CHECK(wait_for(fetched, &k));
	usleep(20000);
	CHECK_INT(dirahead_open(da, "dir/", "f0003", NULL, "\"e\"", 4000, &f), 0);
	dirahead_stats(da, &st);
	CHECK_INT(st.hits, 0);
	CHECK(st.wasted >= 2);
	/* And the stream goes on (the opens were in order). */
	k = 4;
	CHECK(wait_for(fetched, &k));
	CHECK_INT(open_file(da, mb, "dir/", d, 4, "\"e\"", 0), 1);
	dirahead_free(da);
	CHECK_INT(membudget_used(mb), 0);
	CHECK_INT(d->refs, 0);
	membudget_free(mb);
	free(d);
}

TEST(directories_and_empty_files_do_not_break_the_order)
{
	struct membudget *mb = membudget_new(16 << 20);
	struct fdir *d = fdir_new(60, 0, small4k);
	struct dirahead *da = make(mb, 4, 64, 4 << 20, 5000);
	struct dirahead_stats st;
	int i, k, hits = 0;

	reset_store();
	d->e[10].is_dir = 1;
	d->e[11].size = 0;
	d->e[30].is_dir = 1;
	for (i = 0; i < 60; i++) {
		if (d->e[i].is_dir || d->e[i].size == 0)
			continue;
		k = i;
		if (i == 31) {
			/* Fetching waited at the directory until a file after it was opened. */
			usleep(20000);
			CHECK_INT(gets[31], 0);
		} else if (i >= 2 && i != 12) {
			CHECK(wait_for(fetched, &k));
		}
		hits += open_file(da, mb, "dir/", d, (size_t)i, "\"e\"", 1);
	}
	dirahead_stats(da, &st);
	CHECK_INT(st.breaks, 0);
	CHECK_INT(gets[10] + gets[11] + gets[30], 0);
	CHECK(hits >= 60 - 3 - 2 - 2);
	dirahead_free(da);
	CHECK_INT(membudget_used(mb), 0);
	CHECK_INT(d->refs, 0);
	membudget_free(mb);
	free(d);
}

TEST(a_queued_file_is_not_waited_for_and_failing_gets_stop_the_stream)
{
	struct membudget *mb = membudget_new(16 << 20);
	struct fdir *d = fdir_new(200, 0, small4k), *d2 = fdir_new(50, 1000, small4k);
	struct dirahead *da = make(mb, 1, 64, 4 << 20, 5000);
	struct idle_arg ia = { da };
	struct dirahead_stats st;
	int i, total = 0;

	reset_store();
	delay_us = 3000000; /* one thread, slow GETs (aborted at the end): the queue stays */
	open_file(da, mb, "dir/", d, 0, "\"e\"", 1);
	open_file(da, mb, "dir/", d, 1, "\"e\"", 1);
	/* The thread is busy with dir/'s files: dirb/f1002 is queued behind them. */
	open_file(da, mb, "dirb/", d2, 0, "\"e\"", 1);
	open_file(da, mb, "dirb/", d2, 1, "\"e\"", 1);
	CHECK_INT(open_file(da, mb, "dirb/", d2, 2, "\"e\"", 1), 0);
	dirahead_stats(da, &st);
	CHECK_INT(st.breaks, 0);
	CHECK_INT(st.cancelled, 1);
	CHECK_INT(gets[1002], 0);
	dirahead_free(da);
	CHECK_INT(d->refs, 0);
	CHECK_INT(d2->refs, 0);
	CHECK_INT(membudget_used(mb), 0);

	/* Every GET fails: after three, the stream fetches nothing more. */
	reset_store();
	fail_from = 0;
	da = make(mb, 2, 64, 4 << 20, 5000);
	ia.da = da;
	for (i = 0; i < 100; i++) {
		CHECK_INT(open_file(da, mb, "dir/", d, (size_t)i, "\"e\"", 1), 0);
		usleep(2000);
	}
	CHECK(wait_for(nothing_held, &ia));
	for (i = 0; i < 200; i++)
		total += gets[i];
	CHECK(total <= 3 + 64);
	CHECK(total < 100);
	dirahead_free(da);
	CHECK_INT(membudget_used(mb), 0);
	CHECK_INT(d->refs, 0);
	membudget_free(mb);
	free(d);
	free(d2);
}

TEST(lookups_count_like_opens_and_wait_for_their_file)
{
	struct membudget *mb = membudget_new(16 << 20);
	struct fdir *d = fdir_new(100, 0, small4k);
	struct dirahead *da = make(mb, 4, 64, 4 << 20, 5000);
	struct dirahead_stats st;
	struct dirahead_file info;
	char ct[32];
	int i, found = 0, hits = 0;

	reset_store();
	delay_us = 1000;
	d->e[40].is_dir = 1;
	for (i = 0; i < 100; i++) {
		memset(&info, 0, sizeof(info));
		if (dirahead_lookup(da, "dir/", d->e[i].name, lend(d), "\"e\"", 4096, &info)) {
			found++;
			snprintf(ct, sizeof(ct), "text/x-%d", i);
			CHECK_STR(info.content_type, ct);
			CHECK(info.buf.p == NULL && info.buf.n == 0);
			CHECK(info.fetched_ms > 0);
		}
		if (!d->e[i].is_dir)
			hits += open_file(da, mb, "dir/", d, (size_t)i, "\"e\"", 1);
	}
	/*
	 * The lookup of each file from the third on waits for its GET (a queued
	 * one goes first), and its open then takes the bytes: one GET each. Not
	 * for the file after the subdirectory: fetching waited there.
	 */
	CHECK_INT(found, 100 - 2 - 2);
	CHECK_INT(hits, 100 - 2 - 2);
	for (i = 0; i < 100; i++)
		CHECK_INT(gets[i], i < 2 || i == 40 || i == 41 ? 0 : 1);
	dirahead_stats(da, &st);
	CHECK_INT(st.breaks, 0);
	CHECK_INT(st.wasted, 0);
	dirahead_free(da);
	CHECK_INT(membudget_used(mb), 0);
	CHECK_INT(d->refs, 0);
	membudget_free(mb);
	free(d);
}

struct lookup_arg {
	struct dirahead *da;
	struct fdir *d;
	size_t i;
	int rc;
};

static void *lookup_main(void *arg)
{
	struct lookup_arg *a = arg;
	struct dirahead_file info;

	memset(&info, 0, sizeof(info));
	a->rc = dirahead_lookup(a->da, "dir/", a->d->e[a->i].name, NULL, "\"e\"", 4096, &info);
	return NULL;
}

TEST(a_lookup_waiting_for_a_queued_file_wakes_when_a_break_drops_it)
{
	struct membudget *mb = membudget_new(16 << 20);
	struct fdir *d = fdir_new(100, 0, small4k), *d2 = fdir_new(10, 1000, small4k);
	struct dirahead *da = make(mb, 1, 64, 4 << 20, 60000);
	struct lookup_arg a = { da, d, 2, -1 };
	pthread_t th;
	int k = 1002;

	reset_store();
	delay_us = 30000000; /* the one thread is busy with dirb/f1002 (aborted at the end) */
	open_file(da, mb, "dirb/", d2, 0, "\"e\"", 1);
	open_file(da, mb, "dirb/", d2, 1, "\"e\"", 1);
	CHECK(wait_for(fetched, &k));
	open_file(da, mb, "dir/", d, 0, "\"e\"", 1);
	open_file(da, mb, "dir/", d, 1, "\"e\"", 1);
	/* The lookup of dir/f0002 moves its queued GET first and waits for it... */
	CHECK_INT(pthread_create(&th, NULL, lookup_main, &a), 0);
	usleep(50000);
	/* ... until a jump elsewhere drops it: the lookup returns at once, without it. */
	open_file(da, mb, "dir/", d, 60, "\"e\"", 1);
	pthread_join(th, NULL);
	CHECK_INT(a.rc, 0);
	CHECK_INT(__atomic_load_n(&inflight, __ATOMIC_RELAXED), 1); /* dirb's GET still runs */
	dirahead_free(da);
	CHECK_INT(membudget_used(mb), 0);
	CHECK_INT(d->refs, 0);
	CHECK_INT(d2->refs, 0);
	membudget_free(mb);
	free(d);
	free(d2);
}

static long long some_empty(int n)
{
	return n % 5 == 3 ? 0 : 4096;
}

TEST(an_empty_file_gets_a_head_ahead_and_one_never_opened_is_passed_over)
{
	struct membudget *mb = membudget_new(16 << 20);
	struct fdir *d = fdir_new(100, 0, some_empty);
	struct dirahead *da = make(mb, 4, 64, 4 << 20, 5000);
	struct idle_arg ia = { da };
	struct dirahead_stats st;
	struct dirahead_file info;
	int i, k, hits = 0, found = 0;

	reset_store();
	for (i = 0; i < 100; i++) {
		k = i;
		/* Like tar: every file looked up, the empty ones never opened. */
		if (i >= 2 && d->e[i].size)
			CHECK(wait_for(fetched, &k));
		if (i >= 3 && !d->e[i].size)
			while (!__atomic_load_n(&heads[i], __ATOMIC_RELAXED))
				usleep(500);
		memset(&info, 0, sizeof(info));
		found += dirahead_lookup(da, "dir/", d->e[i].name, lend(d), "\"e\"",
					 d->e[i].size, &info);
		if (d->e[i].size)
			hits += open_file(da, mb, "dir/", d, (size_t)i, "\"e\"", 1);
	}
	dirahead_stats(da, &st);
	CHECK_INT(st.breaks, 0);
	CHECK_INT(hits, 80 - 2);
	CHECK_INT(found, 100 - 2); /* all but the first two */
	for (i = 0; i < 100; i++) {
		CHECK_INT(gets[i], d->e[i].size && i >= 2 ? 1 : 0);
		CHECK_INT(heads[i], !d->e[i].size ? 1 : 0);
	}
	/* The empty files were passed over and dropped as the opens went by; none wasted. */
	CHECK(wait_for(nothing_held, &ia));
	dirahead_stats(da, &st);
	CHECK_INT(st.wasted, 0);
	dirahead_free(da);

	/* Opened (as cp does): the open takes the HEAD's answer, with no bytes. */
	reset_store();
	da = make(mb, 4, 64, 4 << 20, 5000);
	open_file(da, mb, "dir/", d, 0, "\"e\"", 1);
	open_file(da, mb, "dir/", d, 1, "\"e\"", 1);
	k = 2;
	CHECK(wait_for(fetched, &k));
	open_file(da, mb, "dir/", d, 2, "\"e\"", 1);
	while (!__atomic_load_n(&heads[3], __ATOMIC_RELAXED))
		usleep(500);
	usleep(20000);
	memset(&info, 0, sizeof(info));
	CHECK_INT(dirahead_open(da, "dir/", "f0003", NULL, "\"e\"", 0, &info), 1);
	CHECK(info.buf.p == NULL && info.buf.n == 0);
	CHECK_INT(info.got, 0);
	CHECK_STR(info.content_type, "text/x-3");
	dirahead_free(da);
	CHECK_INT(membudget_used(mb), 0);
	CHECK_INT(d->refs, 0);
	membudget_free(mb);
	free(d);
}

/* Several readers at once: each its own directory in order, one opening at random. */
struct reader {
	struct dirahead *da;
	struct membudget *mb;
	struct fdir *d;
	char dir_key[16];
	int random;
	int hits;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	unsigned seed = 1;
	size_t i, j;

	for (i = 0; i < r->d->n; i++) {
		j = i;
		if (r->random) {
			seed = seed * 1103515245u + 12345u;
			j = (seed >> 8) % r->d->n;
		}
		r->hits += open_file(r->da, r->mb, r->dir_key, r->d, j, "\"e\"", 1);
		usleep(300); /* what a reader does with a file */
	}
	return NULL;
}

TEST(readers_at_once_get_the_right_bytes_and_give_everything_back)
{
	struct membudget *mb = membudget_new(8 << 20);
	struct dirahead *da = make(mb, 6, 32, 2 << 20, 5000);
	struct idle_arg ia = { da };
	struct reader r[5];
	pthread_t th[5];
	int i;

	reset_store();
	delay_us = 300;
	for (i = 0; i < 5; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		r[i].da = da;
		r[i].mb = mb;
		r[i].d = fdir_new(300, i * 300, varied);
		snprintf(r[i].dir_key, sizeof(r[i].dir_key), "d%d/", i);
		r[i].random = i == 4;
		CHECK_INT(pthread_create(&th[i], NULL, reader_main, &r[i]), 0);
	}
	for (i = 0; i < 5; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < 4; i++)
		CHECK(r[i].hits > 0);
	CHECK(wait_for(nothing_held, &ia));
	/* The random reader may open a file twice, and have it fetched twice. */
	for (i = 0; i < 1200; i++)
		CHECK(gets[i] <= 1);
	CHECK(max_inflight <= 6);
	dirahead_free(da);
	CHECK_INT(membudget_used(mb), 0);
	for (i = 0; i < 5; i++) {
		CHECK_INT(r[i].d->refs, 0);
		free(r[i].d);
	}
	membudget_free(mb);
}

TEST(free_aborts_the_gets_in_flight)
{
	struct membudget *mb = membudget_new(16 << 20);
	struct fdir *d = fdir_new(50, 0, small4k);
	struct dirahead *da = make(mb, 4, 16, 4 << 20, 5000);
	long long t0;
	int k = 2;

	reset_store();
	delay_us = 5000000; /* 5 s: only an abort ends them soon */
	open_file(da, mb, "dir/", d, 0, "\"e\"", 1);
	open_file(da, mb, "dir/", d, 1, "\"e\"", 1);
	CHECK(wait_for(fetched, &k));
	t0 = now_ms();
	dirahead_free(da);
	CHECK(now_ms() - t0 < 4000);
	CHECK(aborted >= 1);
	CHECK_INT(membudget_used(mb), 0);
	CHECK_INT(d->refs, 0);
	membudget_free(mb);
	free(d);
}

TEST(a_slow_reader_gets_no_further_ahead_than_half_the_fresh_time)
{
	struct membudget *mb = membudget_new(64 << 20);
	struct fdir *d = fdir_new(100, 0, small4k);
	struct dirahead_config cfg = {
		.max_inflight = 8, .max_files = 64, .max_bytes = 16 << 20, .fresh_ms = 200,
	};
	struct dirahead *da = dirahead_new(&fake_store, mb, &dops, &cfg);
	int i, far = 0;

	reset_store();
	CHECK_INT(dirahead_start(da), 0);
	/* 50 opens a second at most: half of 200 ms is 5 files ahead, not 2 x the run (24). */
	for (i = 0; i < 12; i++) {
		open_file(da, mb, "dir/", d, (size_t)i, "\"e\"", 1);
		usleep(20000);
	}
	usleep(100000);
	for (i = 0; i < 100; i++)
		if (__atomic_load_n(&gets[i], __ATOMIC_RELAXED))
			far = i;
	CHECK(far >= 12);
	CHECK(far <= 11 + 5);
	dirahead_free(da);
	CHECK_INT(membudget_used(mb), 0);
	membudget_free(mb);
	free(d);
}

int main(void)
{
	RUN(in_order_opens_take_every_file_after_the_first_two_with_one_get_each);
	RUN(a_break_stops_it_and_releases_everything);
	RUN(random_opens_waste_a_bounded_number_of_gets);
	RUN(a_file_never_opened_costs_one_get_and_is_released_after_keep_ms);
	RUN(the_bytes_held_and_the_budget_are_never_exceeded);
	RUN(another_etag_or_size_never_gets_the_bytes);
	RUN(directories_and_empty_files_do_not_break_the_order);
	RUN(a_queued_file_is_not_waited_for_and_failing_gets_stop_the_stream);
	RUN(lookups_count_like_opens_and_wait_for_their_file);
	RUN(a_lookup_waiting_for_a_queued_file_wakes_when_a_break_drops_it);
	RUN(an_empty_file_gets_a_head_ahead_and_one_never_opened_is_passed_over);
	RUN(readers_at_once_get_the_right_bytes_and_give_everything_back);
	RUN(free_aborts_the_gets_in_flight);
	RUN(a_slow_reader_gets_no_further_ahead_than_half_the_fresh_time);
	return harness_done();
}
