/*
 * cache/headcache: the first bytes a lookup fetched, kept for the open that
 * follows, and their reservation in the memory budget as it moves from the
 * lookup to the head cache to an open's read-ahead, all through the store
 * interface (the head cache over the read-ahead, as the mount stacks them). The budget must come back
 * to exactly 0 however the buffers leave (taken and read, pushed out, another
 * ETag, never opened), and the ceiling must hold after any number of them.
 * The read-ahead reads from a store that computes every byte from its offset.
 */
#include "cache/headcache.h"
#include "cache/membudget.h"
#include "cache/readahead.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "harness.h"
#include "s3/store.h"

#define CAP (128u << 10)

/* What the next stat_read of this thread answers (a lookup sets it). */
static __thread const char *next_etag;
static __thread long long next_size;
static __thread int next_rc;

static unsigned char byte_at(long long i)
{
	return (unsigned char)(i * 2654435761u >> 9);
}

/* The store below: every byte computed from its offset; GETs counted. */
struct calc {
	struct store base;
	int gets;		/* atomic: read_range calls */
};

static int calc_read(struct store *s, const char *key, struct store_read *rd, long long off,
		     size_t len, char *dst, size_t *got, struct store_error *e)
{
	size_t i;

	store_error_clear(e);
	__atomic_add_fetch(&((struct calc *)s)->gets, 1, __ATOMIC_RELAXED);
	for (i = 0; i < len; i++)
		dst[i] = (char)byte_at(off + (long long)i);
	*got = len;
	return 0;
}

/* A lookup's GET of the first len bytes of an object of next_size bytes. */
static int calc_stat_read(struct store *s, const char *key, size_t len, char *dst, size_t *got,
			  struct store_attr *out, struct store_error *e)
{
	size_t i, n = (long long)len < next_size ? len : (size_t)next_size;

	store_error_clear(e);
	if (next_rc)
		return next_rc;
	for (i = 0; i < n; i++)
		dst[i] = (char)byte_at((long long)i);
	*got = n;
	memset(out, 0, sizeof(*out));
	out->size = next_size;
	snprintf(out->etag, sizeof(out->etag), "%s", next_etag);
	return 0;
}

static void calc_destroy(struct store *s)
{
}

static const struct store_ops calc_ops = {
	.read_range = calc_read, .stat_read = calc_stat_read, .destroy = calc_destroy,
};

/* calc -> read-ahead -> head cache, in one budget, as the mount stacks them. */
struct env {
	struct calc calc;
	struct membudget *mb;
	struct store *ra;
	struct store *hc;
};

static void env_init(struct env *v, size_t budget, unsigned slots)
{
	struct ra_config cfg = { .part_size = 1 << 20, .concurrency = 2 };

	memset(v, 0, sizeof(*v));
	v->calc.base.ops = &calc_ops;
	v->mb = membudget_new(budget);
	v->ra = readahead_new(&v->calc.base, v->mb, &cfg);
	v->hc = headcache_new(v->ra, v->mb, slots, CAP);
	CHECK(v->mb && v->hc && v->ra);
	CHECK_INT(readahead_start(v->ra), 0);
}

static void env_cleanup(struct env *v)
{
	store_destroy(v->hc);
	store_destroy(v->ra);
	CHECK_INT(membudget_used(v->mb), 0);
	membudget_free(v->mb);
}

static int gets(struct env *v)
{
	return __atomic_load_n(&v->calc.gets, __ATOMIC_RELAXED);
}

/*
 * What a lookup does: a stat that brings the first got bytes of key at etag
 * (the object is got bytes long, as far as the GET can tell). 0, or -1 when
 * the budget had no buffer (the lookup then uses a HEAD).
 */
static int lookup(struct env *v, const char *key, const char *etag, size_t got)
{
	struct store_error e;
	struct store_attr a;
	int rc;

	next_etag = etag;
	next_size = (long long)got;
	rc = store_stat_head(v->hc, key, &a, &e);
	if (rc == -ENOSYS)
		return -1;
	CHECK_INT(rc, 0);
	return rc;
}

/* What open, read and release do; returns the bytes read (all checked), or -1. */
static long long open_read_close(struct env *v, const char *key, const char *etag,
				 long long size)
{
	struct store_error e;
	struct store_file *f;
	struct store_span sp;
	struct store_attr a;
	long long off = 0, pos;
	size_t j;
	int i, bad = 0;

	memset(&a, 0, sizeof(a));
	snprintf(a.etag, sizeof(a.etag), "%s", etag);
	a.size = size;
	f = store_open(v->hc, key, &a, NULL);
	if (!f)
		return -1;
	while (store_file_read(f, off, 65536, NULL, &sp, &e) == 0 && sp.len > 0) {
		pos = off;
		for (i = 0; i < sp.niov; i++)
			for (j = 0; j < sp.iov[i].iov_len; j++, pos++)
				if (((unsigned char *)sp.iov[i].iov_base)[j] != byte_at(pos))
					bad = 1;
		off += (long long)sp.len;
		store_span_release(f, &sp);
	}
	store_file_close(f);
	CHECK(!bad);
	return off;
}

TEST(a_taken_head_is_released_once)
{
	struct env v;
	int i;

	env_init(&v, 1 << 20, 4);
	for (i = 0; i < 3; i++) {
		CHECK_INT(lookup(&v, "k", "\"e\"", 5000), 0);
		CHECK_INT(membudget_used(v.mb), CAP);
		/* Taken: still reserved, now by the open, which reads it without a GET. */
		CHECK_INT(open_read_close(&v, "k", "\"e\"", 5000), 5000);
		CHECK_INT(gets(&v), 0);
		/* Released by the read-ahead, once (it went to -128 KiB per open). */
		CHECK_INT(membudget_used(v.mb), 0);
	}
	env_cleanup(&v);
}

TEST(the_ceiling_holds_after_many_looked_up_files)
{
	char key[32];
	struct env v;
	void *p;
	int i;

	/* The mount test's figures: 1,500 looked-up files opened under 32 MiB. */
	env_init(&v, 32 << 20, 16);
	for (i = 0; i < 1500; i++) {
		snprintf(key, sizeof(key), "f%04d", i);
		CHECK_INT(lookup(&v, key, "\"e\"", 100 + (size_t)i), 0);
		CHECK_INT(open_read_close(&v, key, "\"e\"", 100 + i), 100 + i);
	}
	CHECK_INT(membudget_used(v.mb), 0);
	/* Not a byte more than the limit fits (it had grown by 1,500 x 128 KiB). */
	CHECK(membudget_alloc(v.mb, (32 << 20) + 1) == NULL);
	p = membudget_alloc(v.mb, 32 << 20);
	CHECK(p != NULL);
	CHECK(membudget_alloc(v.mb, 4096) == NULL);
	membudget_release(v.mb, p, 32 << 20);
	env_cleanup(&v);
}

TEST(a_head_larger_than_the_object_and_a_long_object)
{
	struct env v;

	env_init(&v, 8 << 20, 4);
	/* The object shrank below what the lookup saw: the head is clipped. */
	CHECK_INT(lookup(&v, "k", "\"e\"", 6000), 0);
	CHECK_INT(open_read_close(&v, "k", "\"e\"", 4000), 4000);
	CHECK_INT(membudget_used(v.mb), 0);
	/* 3 MiB: the head, then read-ahead parts; all released at close. */
	CHECK_INT(lookup(&v, "big", "\"e\"", CAP), 0);
	CHECK_INT(open_read_close(&v, "big", "\"e\"", 3 << 20), 3 << 20);
	CHECK_INT(membudget_used(v.mb), 0);
	/* An empty head (the object was empty): nothing kept by the file. */
	CHECK_INT(lookup(&v, "empty", "\"e\"", 0), 0);
	CHECK_INT(open_read_close(&v, "empty", "\"e\"", 0), 0);
	CHECK_INT(membudget_used(v.mb), 0);
	env_cleanup(&v);
}

TEST(another_etag_never_gets_the_bytes_and_the_entry_goes)
{
	struct env v;

	env_init(&v, 1 << 20, 4);
	CHECK_INT(lookup(&v, "k", "\"old\"", 5000), 0);
	/* Another version: its bytes are fetched, and the old entry is gone. */
	CHECK_INT(open_read_close(&v, "k", "\"new\"", 5000), 5000);
	CHECK(gets(&v) > 0);
	CHECK_INT(membudget_used(v.mb), 0);
	v.calc.gets = 0;
	CHECK_INT(open_read_close(&v, "k", "\"old\"", 5000), 5000);
	CHECK(gets(&v) > 0);
	env_cleanup(&v);
}

TEST(pushed_out_replaced_discarded_and_freed_heads_are_released)
{
	struct store_error e;
	struct store_attr a;
	struct env v;

	env_init(&v, 1 << 20, 2);
	CHECK_INT(lookup(&v, "a", "\"e\"", 10), 0);
	CHECK_INT(lookup(&v, "b", "\"e\"", 10), 0);
	CHECK_INT(membudget_used(v.mb), 2 * CAP);
	/* Two slots: c pushes a (the oldest) out. */
	CHECK_INT(lookup(&v, "c", "\"e\"", 10), 0);
	CHECK_INT(membudget_used(v.mb), 2 * CAP);
	CHECK_INT(open_read_close(&v, "a", "\"e\"", 10), 10);
	CHECK(gets(&v) > 0);
	/* The same key again replaces its entry. */
	CHECK_INT(lookup(&v, "c", "\"f\"", 10), 0);
	CHECK_INT(membudget_used(v.mb), 2 * CAP);
	v.calc.gets = 0;
	CHECK_INT(open_read_close(&v, "c", "\"f\"", 10), 10);
	CHECK_INT(gets(&v), 0);
	CHECK_INT(membudget_used(v.mb), CAP);
	/* A lookup whose GET failed keeps nothing. */
	next_rc = -ENOENT;
	CHECK_INT(store_stat_head(v.hc, "x", &a, &e), -ENOENT);
	next_rc = 0;
	CHECK_INT(membudget_used(v.mb), CAP);
	/* An entry without an ETag is not kept. */
	CHECK_INT(lookup(&v, "d", "", 10), 0);
	CHECK_INT(membudget_used(v.mb), CAP);
	/* b is still there; freeing the cache releases it. */
	env_cleanup(&v);
}

TEST(a_short_budget_gives_no_buffer)
{
	struct env v;

	env_init(&v, 200 << 10, 4);
	CHECK_INT(lookup(&v, "a", "\"e\"", 10), 0);
	/* No room for a second buffer: the lookup is told to ask with a HEAD. */
	CHECK_INT(lookup(&v, "b", "\"e\"", 10), -1);
	CHECK_INT(membudget_used(v.mb), CAP);
	env_cleanup(&v);
}

TEST(a_transfer_empties_the_giver)
{
	struct membudget *mb = membudget_new(1 << 20);
	struct membuf a = MEMBUF_EMPTY, b = MEMBUF_EMPTY;

	CHECK_INT(membudget_get(mb, 4096, &a), 0);
	CHECK(a.p != NULL && a.n == 4096);
	membudget_transfer(&b, &a);
	CHECK(a.p == NULL && a.n == 0);
	CHECK(b.p != NULL && b.n == 4096);
	membudget_put(mb, &a); /* the giver's is empty: releases nothing */
	CHECK_INT(membudget_used(mb), 4096);
	membudget_put(mb, &b);
	membudget_put(mb, &b); /* twice: the second does nothing */
	CHECK_INT(membudget_used(mb), 0);
	CHECK_INT(membudget_get(mb, (1 << 20) + 1, &a), -1);
	CHECK(a.p == NULL && a.n == 0);
	membudget_free(mb);
}

struct worker {
	struct env *v;
	int id;
	int ok;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char key[32];
	int i;

	w->ok = 1;
	for (i = 0; i < 200; i++) {
		long long size = 1000 + (i * 7919 + w->id * 104729) % 400000;

		/* Keys shared between threads: a take may find another's entry, or none. */
		snprintf(key, sizeof(key), "k%d", i % 5);
		if (lookup(w->v, key, "\"e\"", (size_t)(size < CAP ? size : CAP)) != 0)
			continue; /* the budget was short: a lookup then uses a HEAD */
		if (open_read_close(w->v, key, "\"e\"", size) < 0)
			w->ok = 0;
	}
	return NULL;
}

TEST(concurrent_lookups_and_opens_balance)
{
	struct worker w[4];
	pthread_t t[4];
	struct env v;
	int i;

	env_init(&v, 4 << 20, 4);
	for (i = 0; i < 4; i++) {
		w[i] = (struct worker){ &v, i, 0 };
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK(w[i].ok);
	}
	CHECK(membudget_peak(v.mb) <= 4 << 20);
	env_cleanup(&v);
}

int main(void)
{
	RUN(a_taken_head_is_released_once);
	RUN(the_ceiling_holds_after_many_looked_up_files);
	RUN(a_head_larger_than_the_object_and_a_long_object);
	RUN(another_etag_never_gets_the_bytes_and_the_entry_goes);
	RUN(pushed_out_replaced_discarded_and_freed_heads_are_released);
	RUN(a_short_budget_gives_no_buffer);
	RUN(a_transfer_empties_the_giver);
	RUN(concurrent_lookups_and_opens_balance);
	return harness_done();
}
