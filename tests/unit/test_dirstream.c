/*
 * Unit tests for cache/dirstream.c: readers at their own offsets while a
 * producer appends, a kept stream against a windowed one, what a window holds
 * (its memory bound), the reservation it gives back, and -ESTALE for a
 * reader that needs what was let go.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/dirstream.h"
#include "cache/listing.h"
#include "harness.h"

/* One page: names f%07d from `from`, n of them. */
static void page(struct dirstream *ds, size_t from, size_t n)
{
	struct listing_batch b = { 0 };
	char name[32];
	size_t i;

	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "f%07zu", from + i);
		CHECK_INT(listing_batch_add(&b, name, strlen(name), 0, NULL), 0);
	}
	CHECK_INT(dirstream_append(ds, &b), 0);
	listing_batch_cleanup(&b);
}

struct taken {
	size_t n, next, max;		/* max: stop after this many (0: all) */
	int wrong;
};

static int take(void *ctx, size_t i, const struct store_dirent *ent)
{
	struct taken *t = ctx;
	char want[32];

	if (t->max && t->n == t->max)
		return 1;
	snprintf(want, sizeof(want), "f%07zu", i);
	if (i != t->next || strcmp(ent->name, want))
		t->wrong++;
	t->next = i + 1;
	t->n++;
	return 0;
}

static ssize_t read_at(struct dirstream *ds, struct dirstream_reader *r, size_t off,
		       size_t max, int *resume)
{
	struct taken t = { .next = off, .max = max };
	int ignored;
	ssize_t got = dirstream_read(ds, r, off, take, &t, resume ? resume : &ignored);

	CHECK_INT(t.wrong, 0);
	return got;
}

static size_t released;

static void on_release(void *ctx, size_t bytes)
{
	(void)ctx;
	released += bytes;
}

/* Kept: every reader reads from 0, whenever it comes; -EAGAIN until more; 0 at the end. */
TEST(kept_stream_serves_every_reader_from_the_start)
{
	struct dirstream *ds = dirstream_new(1 << 20, NULL, NULL);
	struct dirstream_reader a, b;
	struct dirstream_progress p;
	size_t reserved;
	struct store_dir *l;

	dirstream_attach(ds, &a, 0);
	CHECK_INT(read_at(ds, &a, 0, 0, NULL), -EAGAIN);
	page(ds, 0, 1000);
	CHECK_INT(read_at(ds, &a, 0, 600, NULL), 600);
	CHECK_INT(read_at(ds, &a, 600, 0, NULL), 400);
	CHECK_INT(read_at(ds, &a, 1000, 0, NULL), -EAGAIN);
	page(ds, 1000, 1000);
	dirstream_attach(ds, &b, 0);
	CHECK_INT(read_at(ds, &b, 0, 0, NULL), 2000);
	CHECK(dirstream_take_listing(ds, &reserved) == NULL); /* not complete yet */
	dirstream_end(ds, 0);
	CHECK_INT(read_at(ds, &a, 2000, 0, NULL), 0);
	CHECK_INT(read_at(ds, &a, 5, 3, NULL), 3);		/* a seek back */
	dirstream_progress(ds, &p);
	CHECK(p.kept && p.done && p.first == 0 && p.pages == 2 && p.n == 2000);
	l = dirstream_take_listing(ds, &reserved);
	CHECK(l && l->n == 2000 && store_dir_find(l, "f0001999") != NULL);
	store_dir_release(l);
	dirstream_detach(ds, &a);
	dirstream_detach(ds, &b);
	dirstream_release(ds);
}

/*
 * Windowed: a stream of 200 pages of 1,000 entries behind one reader that
 * reads every page as it comes never holds more than its window plus a page
 * and a chunk, whatever the directory's size; the reserved bytes from its
 * kept days go back as they are let go.
 */
TEST(window_bounds_memory_whatever_the_size)
{
	const size_t window = 1 << 20;
	struct dirstream *ds = dirstream_new(window, on_release, NULL);
	struct dirstream_reader r;
	struct dirstream_progress p;
	size_t off = 0, i, most = 0, page_bytes;

	released = 0;
	dirstream_attach(ds, &r, 0);
	page(ds, 0, 1000);
	dirstream_progress(ds, &p);
	page_bytes = p.bytes;
	dirstream_reserved(ds, p.bytes);
	dirstream_unkeep(ds);
	CHECK(!dirstream_over_window(ds));
	for (i = 1; i < 200; i++) {
		int resume;

		off += (size_t)read_at(ds, &r, off, 0, &resume);
		page(ds, i * 1000, 1000);
		dirstream_progress(ds, &p);
		if (p.bytes > most)
			most = p.bytes;
	}
	off += (size_t)read_at(ds, &r, off, 0, NULL);
	CHECK_INT(off, 200000);
	CHECK(most <= window + 2 * page_bytes);
	/* the reader is at the end: everything but the last chunk is gone */
	dirstream_progress(ds, &p);
	CHECK(p.first >= 199000 - STORE_DIR_CHUNK && p.bytes < page_bytes * 2);
	CHECK_INT(released, page_bytes);
	dirstream_end(ds, 0);
	{
		size_t reserved;

		CHECK(dirstream_take_listing(ds, &reserved) == NULL); /* not kept: never cached */
	}
	dirstream_detach(ds, &r);
	dirstream_release(ds);
}

/*
 * Past its window the stream does not wait for a slow reader: it lets go of
 * what the fastest one passed, and the slow one is told -ESTALE (it reads a
 * new stream); a reader at the end lets a waiting producer go on.
 */
TEST(slow_reader_is_left_behind_and_told)
{
	struct dirstream *ds = dirstream_new(256 << 10, NULL, NULL);
	struct dirstream_reader fast, slow;
	struct dirstream_progress p;
	int resume;
	size_t i;

	dirstream_attach(ds, &fast, 0);
	dirstream_attach(ds, &slow, 0);
	dirstream_unkeep(ds);
	for (i = 0; i < 10; i++)
		page(ds, i * 1000, 1000);
	CHECK_INT(read_at(ds, &slow, 0, 10, NULL), 10);
	/* nobody is past 1,024: nothing can go, and the producer must wait */
	CHECK(dirstream_over_window(ds));
	CHECK_INT(read_at(ds, &fast, 0, 0, &resume), 10000);
	/* the fast reader's next read (at the end) lets everything below it go */
	CHECK_INT(read_at(ds, &fast, 10000, 0, &resume), -EAGAIN);
	CHECK(resume);
	CHECK(!dirstream_over_window(ds));
	dirstream_progress(ds, &p);
	CHECK(p.first > 10);
	CHECK_INT(read_at(ds, &slow, 10, 0, NULL), -ESTALE);
	/* a seek back past what went: the same */
	CHECK_INT(read_at(ds, &fast, 0, 0, NULL), -ESTALE);
	dirstream_detach(ds, &slow);
	dirstream_detach(ds, &fast);
	dirstream_release(ds);
}

/* A listing that failed after some pages: its entries, then its error. */
TEST(error_after_the_entries)
{
	struct dirstream *ds = dirstream_new(1 << 20, NULL, NULL);
	struct dirstream_reader r;

	dirstream_attach(ds, &r, 0);
	page(ds, 0, 5);
	dirstream_end(ds, -EIO);
	CHECK_INT(read_at(ds, &r, 0, 0, NULL), 5);
	CHECK_INT(read_at(ds, &r, 5, 0, NULL), -EIO);
	CHECK_INT(dirstream_readers(ds), 1);
	dirstream_detach(ds, &r);
	CHECK_INT(dirstream_readers(ds), 0);
	dirstream_release(ds);
}

/* What is still reserved goes back when the stream is freed. */
TEST(reservation_returned_at_the_end)
{
	struct dirstream *ds = dirstream_new(1 << 20, on_release, NULL);

	released = 0;
	page(ds, 0, 10);
	dirstream_reserved(ds, 4096);
	dirstream_release(ds);
	CHECK_INT(released, 4096);
}

/* A finished stream of a whole listing. */
TEST(of_listing)
{
	struct dirstream *src = dirstream_new(1 << 20, NULL, NULL);
	struct dirstream *ds;
	struct dirstream_reader r;
	struct store_dir *l;
	size_t reserved;

	page(src, 0, 3000);
	dirstream_end(src, 0);
	l = dirstream_take_listing(src, &reserved);
	dirstream_release(src);
	ds = dirstream_of_listing(l);
	store_dir_release(l);
	dirstream_attach(ds, &r, 0);
	CHECK_INT(read_at(ds, &r, 2990, 0, NULL), 10);
	CHECK_INT(read_at(ds, &r, 3000, 0, NULL), 0);
	CHECK_INT(read_at(ds, &r, 0, 0, NULL), 3000);
	dirstream_detach(ds, &r);
	dirstream_release(ds);
}

int main(void)
{
	RUN(kept_stream_serves_every_reader_from_the_start);
	RUN(window_bounds_memory_whatever_the_size);
	RUN(slow_reader_is_left_behind_and_told);
	RUN(error_after_the_entries);
	RUN(reservation_returned_at_the_end);
	RUN(of_listing);
	return harness_done();
}
