/*
 * cache/rafetch: what the prefetcher stops fetching, over the fake store of
 * fakestore.h: GETs of parts nobody will read (a close, a seek, a reader that
 * stopped) are aborted and never asked again; streams share the fetch
 * threads; quarter readers of one object do not read ahead into each other.
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

/* ---- What nobody will read is not fetched ------------------------------------------ */

/* GETs the fake store is running now, for all keys. */
static int busy(struct fake *f)
{
	int i, n = 0;

	pthread_mutex_lock(&f->lock);
	for (i = 0; i < FAKE_KEYS; i++)
		n += f->busy[i];
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* Wait (up to 10 s) until a GET runs; 1 when one does. */
static int wait_busy(struct fake *f)
{
	int i;

	for (i = 0; i < 1000 && !busy(f); i++)
		usleep(10000);
	return busy(f) > 0;
}

/* Wait (up to 10 s) until no GET has run for 50 ms; 1 when so. */
static int wait_quiet(struct fake *f)
{
	int i, quiet = 0;

	for (i = 0; i < 1000 && quiet < 5; i++) {
		quiet = busy(f) ? 0 : quiet + 1;
		usleep(10000);
	}
	return quiet >= 5;
}

/* What all GETs asked for, in bytes. */
static long long requested(struct fake *f)
{
	long long n = 0;
	int i;

	pthread_mutex_lock(&f->lock);
	for (i = 0; i < f->ngets && i < MAX_GETS; i++)
		n += (long long)f->get_len[i];
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* Stream [from, to) in 128 KiB reads, checking every byte. */
static void stream(struct store_file *rf, long long from, long long to)
{
	long long off;

	for (off = from; off < to; off += 128 << 10)
		CHECK_INT(read_check(rf, 0, off, 128 << 10), 128 << 10);
}

TEST(a_close_aborts_the_gets_in_flight_and_none_is_asked_again)
{
	long long size = 64 << 20;
	struct ra_stats st;
	struct store_file *rf;
	struct env v;
	int gets;

	env_init(&v, size, 64 << 20, 1 << 20, 8);
	/* The server stalls from 6 MiB on: the window's parts there stay in flight. */
	v.fake.block_from = 6 << 20;
	rf = ra_open(v.ra, "k", "\"v0\"", size);
	stream(rf, 0, 4 << 20);
	/* The window has grown past the reader: parts are in flight. */
	CHECK(wait_busy(&v.fake));
	ra_close(rf);
	CHECK(wait_quiet(&v.fake));
	readahead_stats(v.ra, &st);
	/* Each GET nobody would read saw its cancel flag and stopped, short of its bytes. */
	CHECK(fake_get(&v.fake, &v.fake.cancelled) >= 1);
	CHECK_INT(st.aborted, fake_get(&v.fake, &v.fake.cancelled));
	CHECK(fetched(&v.fake) < requested(&v.fake));
	/* An aborted GET is not asked again, nor counted as a failure. */
	gets = fake_get(&v.fake, &v.fake.ngets);
	usleep(100000);
	CHECK_INT(fake_get(&v.fake, &v.fake.ngets), gets);
	CHECK_INT(st.gets + st.aborted + st.direct_gets, gets);
	env_cleanup(&v);
}

TEST(a_seek_away_aborts_the_window_and_reading_there_again_fetches_it)
{
	long long size = 64 << 20;
	struct ra_stats st;
	struct store_file *rf;
	struct env v;

	env_init(&v, size, 64 << 20, 1 << 20, 8);
	v.fake.block_from = 6 << 20;
	rf = ra_open(v.ra, "k", "\"v0\"", size);
	stream(rf, 0, 4 << 20);
	CHECK(wait_busy(&v.fake));
	/* A seek back to the start: the window's GETs are called off. */
	CHECK_INT(read_check(rf, 0, 0, 4096), 4096);
	CHECK(wait_quiet(&v.fake));
	readahead_stats(v.ra, &st);
	CHECK(st.aborted >= 1);
	CHECK_INT(st.aborted, fake_get(&v.fake, &v.fake.cancelled));
	fake_set_ll(&v.fake, &v.fake.block_from, 0);
	/* Aborted is not failed: the bytes they were fetching are read again. */
	CHECK_INT(read_check(rf, 0, 6 << 20, 131072), 131072);
	CHECK_INT(read_check(rf, 0, 7 << 20, 4096), 4096);
	ra_close(rf);
	env_cleanup(&v);
}

TEST(a_reader_that_stops_leaves_at_most_a_window_fetched_ahead)
{
	struct ra_config cfg = { .part_size = 1 << 20, .concurrency = 8, .idle_ms = 50 };
	long long size = 256 << 20, stop = 40 << 20;
	struct store_file *rf;
	struct env v;

	env_start(&v, size, 64 << 20, &cfg);
	rf = ra_open(v.ra, "k", "\"v0\"", size);
	stream(rf, 0, stop);
	/* It stops; however long the file stays open, the window does not run on. */
	usleep(300000);
	CHECK(wait_quiet(&v.fake));
	CHECK(fetched(&v.fake) <= stop + (8 << 20));
	ra_close(rf);
	env_cleanup(&v);
}

/* GETs running now for key slot k. */
static int busy_of(struct fake *f, int k)
{
	int n;

	pthread_mutex_lock(&f->lock);
	n = f->busy[k];
	pthread_mutex_unlock(&f->lock);
	return n;
}

TEST(four_streams_share_the_fetch_threads)
{
	struct ra_config cfg = { .part_size = 256 << 10, .concurrency = 32, .max_window = 64 << 20 };
	long long size = 64 << 20;
	struct store_file *rf[4];
	char key[3] = "k0";
	struct env v;
	int i, n = 0;

	/*
	 * Three files stream, and the server stalls their GETs past 512 KiB:
	 * each keeps parts in flight. A fourth then streams 4 MiB, and its
	 * window asks for far more. It takes its share, a quarter of the 32
	 * threads, and leaves the rest to the others: it used to take every
	 * thread free, and then every part the others asked for waited behind
	 * its own.
	 */
	env_start(&v, size, 64 << 20, &cfg);
	for (i = 1; i < 4; i++)
		v.fake.block_at[i] = 512 << 10;
	v.fake.block_at[0] = 4 << 20;
	for (i = 0; i < 4; i++) {
		key[1] = (char)('0' + i);
		rf[i] = ra_open(v.ra, key, "\"v0\"", size);
	}
	for (i = 1; i < 4; i++)
		stream(rf[i], 0, 512 << 10);
	stream(rf[0], 0, 4 << 20);
	for (i = 0; i < 200 && n < 8; i++) {
		usleep(10000);
		n = busy_of(&v.fake, 0);
	}
	usleep(50000);
	CHECK_INT(busy_of(&v.fake, 0), 8);
	for (i = 1; i < 4; i++)
		CHECK(busy_of(&v.fake, i) >= 1);
	for (i = 0; i < 4; i++)
		ra_close(rf[i]);
	CHECK(wait_quiet(&v.fake));
	env_cleanup(&v);
}

TEST(a_stream_whose_reader_stopped_takes_no_share)
{
	struct ra_config cfg = { .part_size = 1 << 20, .concurrency = 32, .max_window = 8 << 20,
				 .idle_ms = 50 };
	long long size = 32 << 20;
	struct store_file *a, *b;
	struct env v;
	int i;

	/*
	 * a's reader stops with parts still in flight (the server stalls past
	 * 5 MiB); its file stays open. Once it has been away for idle_ms, b
	 * streams as if alone: its whole window (8 MiB, parts of 1 MiB, stalled
	 * past 4 MiB) in flight, not half of it.
	 */
	env_start(&v, size, 64 << 20, &cfg);
	v.fake.block_at[0] = 5 << 20;
	v.fake.block_at[1] = 4 << 20;
	a = ra_open(v.ra, "k0", "\"v0\"", size);
	stream(a, 0, 4 << 20);
	CHECK(wait_busy(&v.fake));
	usleep(200000);
	b = ra_open(v.ra, "k1", "\"v0\"", size);
	stream(b, 0, 4 << 20);
	/* Up to 20 s: a loaded machine under ASan starts the fetches late (2 s was too short once). */
	for (i = 0; i < 2000 && busy_of(&v.fake, 1) < 7; i++)
		usleep(10000);
	usleep(50000);
	CHECK(busy_of(&v.fake, 1) > 4);
	CHECK(busy_of(&v.fake, 0) >= 1);
	ra_close(a);
	ra_close(b);
	CHECK(wait_quiet(&v.fake));
	env_cleanup(&v);
}

TEST(quarter_readers_do_not_read_ahead_into_each_other)
{
	long long size = 32 << 20, q = size / 4, off;
	struct store_file *rf[4];
	struct env v;
	int i;

	/*
	 * Four readers of one object, a quarter each, in turns: read-ahead of
	 * each stops where the next one began (those bytes are in the page
	 * cache, and its reader stops there). It used to run a whole window
	 * (8 MiB here) past each quarter, and to fetch again the first bytes
	 * each reader had read before its window opened: up to 57 MiB fetched
	 * for 32 read.
	 */
	env_init(&v, size, 64 << 20, 1 << 20, 8);
	for (i = 0; i < 4; i++)
		rf[i] = ra_open(v.ra, "k", "\"v0\"", size);
	for (off = 0; off < q; off += 128 << 10)
		for (i = 0; i < 4; i++)
			CHECK_INT(read_check(rf[i], 0, i * q + off, 128 << 10), 128 << 10);
	CHECK(wait_quiet(&v.fake));
	CHECK_INT(fetched(&v.fake), size);
	/*
	 * The kernel's read-ahead may go on past where a reader stops (when
	 * the next quarter's pages were evicted): 256 KiB past each quarter
	 * cost one first window (1 MiB), not a window.
	 */
	for (i = 0; i < 3; i++)
		stream(rf[i], (i + 1) * q, (i + 1) * q + (256 << 10));
	for (i = 0; i < 4; i++)
		ra_close(rf[i]);
	CHECK(wait_quiet(&v.fake));
	CHECK_INT(fetched(&v.fake), size + (3 << 20));
	env_cleanup(&v);

	/* The same when the next reader has finished and closed before: its range is remembered. */
	env_init(&v, size, 64 << 20, 1 << 20, 8);
	for (i = 3; i >= 0; i--) {
		struct store_file *r = ra_open(v.ra, "k", "\"v0\"", size);

		stream(r, i * q, i < 3 ? (i + 1) * q + (256 << 10) : size);
		ra_close(r);
	}
	CHECK(wait_quiet(&v.fake));
	CHECK_INT(fetched(&v.fake), size + (3 << 20));
	/* Another object's streams do not clip this one's read-ahead, ... */
	rf[0] = ra_open(v.ra, "other", "\"v0\"", size);
	stream(rf[0], 0, 4 << 20);
	CHECK(wait_quiet(&v.fake));
	CHECK(fetched(&v.fake) >= size + (3 << 20) + (10 << 20));
	ra_close(rf[0]);
	/*
	 * ... and a reader that reads on through the ranges others read (their
	 * pages were evicted) gets every byte, each fetched once.
	 */
	rf[0] = ra_open(v.ra, "k", "\"v0\"", size);
	off = fetched(&v.fake);
	stream(rf[0], 0, size);
	CHECK(wait_quiet(&v.fake));
	CHECK_INT(fetched(&v.fake), off + size);
	ra_close(rf[0]);
	env_cleanup(&v);
}

int main(void)
{
	RUN(a_close_aborts_the_gets_in_flight_and_none_is_asked_again);
	RUN(a_seek_away_aborts_the_window_and_reading_there_again_fetches_it);
	RUN(a_reader_that_stops_leaves_at_most_a_window_fetched_ahead);
	RUN(four_streams_share_the_fetch_threads);
	RUN(a_stream_whose_reader_stopped_takes_no_share);
	RUN(quarter_readers_do_not_read_ahead_into_each_other);
	return harness_done();
}
