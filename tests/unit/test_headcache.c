/*
 * cache/headcache: the first bytes a lookup fetched, kept for the open that
 * follows, and their reservation in the memory budget as it moves from the
 * lookup to the head cache to an open's read-ahead. The budget must come back
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

/* The detail of a failed ra_read (each thread its own). */
static __thread struct store_error ra_err;

static unsigned char byte_at(long long i)
{
	return (unsigned char)(i * 2654435761u >> 9);
}

static int calc_read(struct store *s, const char *key, struct store_read *rd, long long off,
		     size_t len, char *dst, size_t *got, struct store_error *e)
{
	size_t i;

	store_error_clear(e);
	for (i = 0; i < len; i++)
		dst[i] = (char)byte_at(off + (long long)i);
	*got = len;
	return 0;
}

static void calc_destroy(struct store *s)
{
}

static const struct store_ops calc_ops = { .read_range = calc_read, .destroy = calc_destroy };

struct env {
	struct store store;
	struct membudget *mb;
	struct headcache *hc;
	struct readahead *ra;
};

static void env_init(struct env *v, size_t budget, unsigned slots)
{
	struct ra_config cfg = { .part_size = 1 << 20, .concurrency = 2 };

	v->store.ops = &calc_ops;
	v->mb = membudget_new(budget);
	v->hc = headcache_new(v->mb, slots);
	v->ra = readahead_new(&v->store, v->mb, &cfg);
	CHECK(v->mb && v->hc && v->ra);
	CHECK_INT(readahead_start(v->ra), 0);
}

static void env_cleanup(struct env *v)
{
	readahead_free(v->ra);
	headcache_free(v->hc);
	CHECK_INT(membudget_used(v->mb), 0);
	membudget_free(v->mb);
}

/* What a lookup does: a budget buffer with the first got bytes, kept in the cache. */
static int lookup(struct env *v, const char *key, const char *etag, size_t got)
{
	char *buf = headcache_buffer(v->hc, CAP);
	size_t i;

	if (!buf)
		return -1;
	for (i = 0; i < got; i++)
		buf[i] = (char)byte_at((long long)i);
	headcache_put(v->hc, key, etag, buf, CAP, got);
	return 0;
}

/* What open, read and release do; returns the bytes read (all checked), or -1. */
static long long open_read_close(struct env *v, const char *key, const char *etag,
				 long long size)
{
	struct membuf head = MEMBUF_EMPTY;
	struct ra_file *rf;
	struct ra_span sp;
	long long off = 0, pos;
	size_t got = 0, j;
	int i, bad = 0;

	if (headcache_take(v->hc, key, etag, &head, &got)) {
		CHECK_INT(head.n, CAP);
		rf = ra_open_head(v->ra, key, etag, size, &head, got);
		CHECK(head.p == NULL && head.n == 0); /* handed over */
	} else {
		rf = ra_open(v->ra, key, etag, size);
	}
	if (!rf)
		return -1;
	while (ra_read(rf, off, 65536, NULL, &sp, &ra_err) == 0 && sp.len > 0) {
		pos = off;
		for (i = 0; i < sp.niov; i++)
			for (j = 0; j < sp.iov[i].iov_len; j++, pos++)
				if (((unsigned char *)sp.iov[i].iov_base)[j] != byte_at(pos))
					bad = 1;
		off += (long long)sp.len;
		ra_span_release(rf, &sp);
	}
	ra_close(rf);
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
		/* Taken: still reserved, now by the open (it was returned here too). */
		CHECK_INT(open_read_close(&v, "k", "\"e\"", 5000), 5000);
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
	struct membuf m = MEMBUF_EMPTY;
	struct env v;
	size_t got;

	env_init(&v, 1 << 20, 4);
	CHECK_INT(lookup(&v, "k", "\"old\"", 5000), 0);
	CHECK_INT(headcache_take(v.hc, "k", "\"new\"", &m, &got), 0);
	CHECK(m.p == NULL && m.n == 0);
	CHECK_INT(membudget_used(v.mb), 0);
	CHECK_INT(headcache_take(v.hc, "k", "\"old\"", &m, &got), 0);
	env_cleanup(&v);
}

TEST(pushed_out_replaced_discarded_and_freed_heads_are_released)
{
	struct membuf m = MEMBUF_EMPTY;
	struct env v;
	size_t got;
	char *buf;

	env_init(&v, 1 << 20, 2);
	CHECK_INT(lookup(&v, "a", "\"e\"", 10), 0);
	CHECK_INT(lookup(&v, "b", "\"e\"", 10), 0);
	CHECK_INT(membudget_used(v.mb), 2 * CAP);
	/* Two slots: c pushes a (the oldest) out. */
	CHECK_INT(lookup(&v, "c", "\"e\"", 10), 0);
	CHECK_INT(membudget_used(v.mb), 2 * CAP);
	CHECK_INT(headcache_take(v.hc, "a", "\"e\"", &m, &got), 0);
	/* The same key again replaces its entry. */
	CHECK_INT(lookup(&v, "c", "\"f\"", 10), 0);
	CHECK_INT(membudget_used(v.mb), 2 * CAP);
	CHECK_INT(headcache_take(v.hc, "c", "\"f\"", &m, &got), 1);
	CHECK_INT(got, 10);
	CHECK_INT(membudget_used(v.mb), 2 * CAP);
	membudget_put(v.mb, &m);
	CHECK(m.p == NULL && m.n == 0);
	membudget_put(v.mb, &m); /* an empty one: nothing */
	CHECK_INT(membudget_used(v.mb), CAP);
	/* A buffer the lookup does not keep. */
	buf = headcache_buffer(v.hc, CAP);
	CHECK(buf != NULL);
	CHECK_INT(membudget_used(v.mb), 2 * CAP);
	headcache_discard(v.hc, buf, CAP);
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
	char *a, *b;

	env_init(&v, 200 << 10, 4);
	a = headcache_buffer(v.hc, CAP);
	b = headcache_buffer(v.hc, CAP);
	CHECK(a != NULL);
	CHECK(b == NULL);
	headcache_discard(v.hc, a, CAP);
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
