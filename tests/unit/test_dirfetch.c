/*
 * Unit tests for cache/dirfetch.c: one fetch per directory however many read it,
 * an open answered at the first page and reads answered as pages come, a
 * waiter that leaves is answered at once and the fetch it leaves behind is
 * abandoned, the thread cap, stopping; and for a listing larger than the
 * cache: streamed in a window (the fetch waits for its reader, without a
 * thread), not cached, a seek back or a second reader reading a fetch of its
 * own, a waiting fetch abandoned when its reader closes.
 *
 * The store serves ListObjectsV2 pages through a gate the test opens, so a
 * fetch can be held mid-page; "endless" stores hand out a new token with
 * every page for ever.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/dirfetch.h"
#include "cache/listing.h"
#include "cache/metatable.h"
#include "core/err.h"
#include "core/log.h"
#include "core/strutil.h"
#include "harness.h"
#include "s3/store.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;

struct gated {
	struct store base;	/* first */
	int open;		/* pages pass the gate */
	int until;		/* pages with a number below this pass even when closed */
	int endless;		/* always truncated, with a new token */
	int pages;		/* else: this many pages (0: 1) */
	int per_page;		/* keys per page (0: 1) */
	int fail;		/* answer this negative errno instead */
	int calls, inside, most_inside;
};

static int gated_list(struct store *st, const char *prefix, const char *token, int max_keys,
		      struct store_page *page, struct store_error *e)
{
	struct gated *g = (struct gated *)st;
	int n, per, k, more;

	(void)max_keys;
	store_error_clear(e);
	memset(page, 0, sizeof(*page));
	pthread_mutex_lock(&lock);
	/* the page asked for: 0 without a token, else the token's number + 1 */
	n = token ? atoi(token + 1) + 1 : 0;
	g->calls++;
	g->inside++;
	if (g->inside > g->most_inside)
		g->most_inside = g->inside;
	pthread_cond_broadcast(&changed);
	while (!g->open && n >= g->until)
		pthread_cond_wait(&changed, &lock);
	g->inside--;
	pthread_cond_broadcast(&changed);
	per = g->per_page ? g->per_page : 1;
	more = g->endless || n + 1 < g->pages;
	pthread_mutex_unlock(&lock);
	if (g->fail) {
		/* The denial's detail, as the S3 store gives it (the opendir notes it). */
		if (g->fail == -EACCES) {
			e->cls = ERR_DENIED;
			snprintf(e->key, sizeof(e->key), "%s", prefix);
		}
		return g->fail;
	}
	page->objects = calloc((size_t)per, sizeof(*page->objects));
	for (k = 0; k < per; k++) {
		if (asprintf(&page->objects[k].key, "%sf%07d", prefix, n * per + k) < 0)
			abort();
		strcpy(page->objects[k].storage_class, "STANDARD");
	}
	page->nobjects = (size_t)per;
	if (more) {
		page->truncated = 1;
		if (asprintf(&page->next_token, "t%d", n) < 0)
			abort();
	}
	return 0;
}

static const struct store_ops gated_ops = { .list_page = gated_list };

static void gate(struct gated *g, int open)
{
	pthread_mutex_lock(&lock);
	g->open = open;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
}

/* Wait (at most 10 s) until *v >= want, under the lock. */
static int wait_for(const int *v, int want)
{
	long long end = clock_mono_ms() + 10000;
	struct timespec ts;
	int ok;

	pthread_mutex_lock(&lock);
	while (*v < want && clock_mono_ms() < end) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&changed, &lock, &ts);
	}
	ok = *v >= want;
	pthread_mutex_unlock(&lock);
	return ok;
}

/* Wait until *v stops moving (100 ms without a change, at most 10 s); its value. */
static int settled(const int *v)
{
	long long end = clock_mono_ms() + 10000;
	int last = -1, now;

	for (;;) {
		pthread_mutex_lock(&lock);
		now = *v;
		pthread_mutex_unlock(&lock);
		if (now == last || clock_mono_ms() > end)
			return now;
		last = now;
		usleep(100000);
	}
}

struct tw {
	struct store_dir_waiter w;	/* first */
	int called;
	int rc;
	enum err_class cls;		/* of the error handed with rc (ERR_OK: none) */
};

static int answered;

static void tw_done(struct store_dir_waiter *w, int rc, const struct store_error *e)
{
	struct tw *t = (struct tw *)w;

	pthread_mutex_lock(&lock);
	t->called++;
	t->rc = rc;
	t->cls = e ? e->cls : ERR_OK;
	answered++;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
}

static void tw_init(struct tw *t)
{
	memset(t, 0, sizeof(*t));
	t->w.done = tw_done;
	t->w.tag = t;
}

static int finished_calls, finished_rc;

/* As the metadata cache does: a finished listing is kept in its table (when kept whole). */
static void on_finished(void *ctx, const char *key, int rc, struct store_dir *d)
{
	if (!rc && d)
		metatable_set_dir(ctx, key, d);
	pthread_mutex_lock(&lock);
	finished_calls++;
	finished_rc = rc;
	pthread_mutex_unlock(&lock);
}

static int on_reserve(void *ctx, size_t bytes)
{
	return metatable_reserve(ctx, bytes);
}

static void on_unreserve(void *ctx, size_t bytes)
{
	metatable_unreserve(ctx, bytes);
}

struct bed {
	struct gated g;
	struct metatable *t;
	struct dirfetch *df;
};

/* cache: the metadata cache's bytes (0: the default); window: 0 for the default. */
static void bed_init_sized(struct bed *b, unsigned threads, size_t cache, size_t window)
{
	struct dirfetch_config cfg = { .page_size = 1000, .timeout_ms = 60000,
				       .threads = threads, .window = window,
				       .finished = on_finished, .reserve = on_reserve,
				       .unreserve = on_unreserve };

	memset(&b->g, 0, sizeof(b->g));
	b->g.base.ops = &gated_ops;
	b->t = metatable_new();
	metatable_set_limits(b->t, &(struct metatable_limits){ .ttl_ms = 60000,
				.negative_ttl_ms = 1000, .max_listing_bytes = cache });
	cfg.store = &b->g.base;
	cfg.ctx = b->t;
	b->df = dirfetch_new(&cfg);
	pthread_mutex_lock(&lock);
	answered = 0;
	finished_calls = 0;
	pthread_mutex_unlock(&lock);
}

static void bed_init(struct bed *b, unsigned threads)
{
	bed_init_sized(b, threads, 0, 0);
}

static void bed_free(struct bed *b)
{
	gate(&b->g, 1);
	dirfetch_free(b->df);
	metatable_free(b->t);
}

/* Open and wait for the answer; the reader, or NULL (then *rc says why). */
static struct store_dir_reader *open_dir(struct bed *b, const char *key, int *rc)
{
	struct store_dir_reader *r;
	struct tw w;
	int started;

	tw_init(&w);
	started = dirfetch_open(b->df, key, &r, &w.w);
	if (started < 0) {
		*rc = started;
		return NULL;
	}
	dirfetch_arm(b->df, &w.w);
	CHECK(wait_for(&w.called, 1));
	*rc = w.rc;
	return w.rc ? NULL : r;
}

struct names {
	size_t n, max;		/* max: take at most this many in one read (0: all there are) */
	int wrong;
	size_t k;		/* the next entry index expected */
};

static int take(void *ctx, size_t i, const struct store_dirent *ent)
{
	struct names *s = ctx;
	char want[16];

	if (s->max && s->n >= s->max)
		return 1;
	snprintf(want, sizeof(want), "f%07zu", i);
	if (i != s->k || strcmp(ent->name, want))
		s->wrong++;
	s->k = i + 1;
	s->n++;
	return 0;
}

/*
 * Read from off on, up to max entries (0: to the end), waiting for pages as a
 * readdir does. Returns the entries read, or a negative errno.
 */
static long read_from(struct bed *b, struct store_dir_reader *r, size_t off, size_t max)
{
	struct names s = { .k = off };
	ssize_t got;

	for (;;) {
		size_t room = max ? max - s.n : 0;
		struct names one = { .k = off + s.n, .max = room };

		if (max && s.n >= max)
			break;
		got = dirfetch_read(b->df, r, off + s.n, take, &one);
		s.wrong += one.wrong;
		if (got > 0) {
			s.n += (size_t)got;
			continue;
		}
		if (got == 0)
			break;
		if (got == -EAGAIN) {
			struct tw w;
			int rc;

			tw_init(&w);
			rc = dirfetch_wait(b->df, r, off + s.n, &w.w);
			if (rc == 1)
				continue;
			if (rc < 0)
				return rc;
			dirfetch_arm(b->df, &w.w);
			CHECK(wait_for(&w.called, 1));
			if (w.rc)
				return w.rc;
			continue;
		}
		return (long)got;
	}
	CHECK_INT(s.wrong, 0);
	return (long)s.n;
}

/* Ten opens of one directory: one fetch, ten readers of the same entries, cached. */
TEST(one_fetch_for_many_readers)
{
	struct bed b;
	struct tw w[10];
	struct store_dir_reader *r[10];
	struct store_dir *cached;
	int i;

	bed_init(&b, 0);
	b.g.pages = 3;
	b.g.per_page = 10;
	for (i = 0; i < 10; i++) {
		tw_init(&w[i]);
		CHECK_INT(dirfetch_open(b.df, "d/", &r[i], &w[i].w), i == 0 ? 1 : 0);
		dirfetch_arm(b.df, &w[i].w);
	}
	CHECK(wait_for(&b.g.calls, 1));
	gate(&b.g, 1);
	CHECK(wait_for(&answered, 10));
	for (i = 0; i < 10; i++) {
		CHECK(w[i].called == 1 && w[i].rc == 0);
		CHECK_INT(read_from(&b, r[i], 0, 0), 30);
	}
	CHECK_INT(b.g.calls, 3);
	CHECK_INT(dirfetch_started(b.df), 1);
	CHECK_INT(finished_calls, 1);
	cached = metatable_get_dir(b.t, "d/", 60000);
	CHECK(cached != NULL && cached->n == 30);
	store_dir_release(cached);
	for (i = 0; i < 10; i++)
		dirfetch_close(b.df, r[i]);
	bed_free(&b);
}

/*
 * An open is answered when the first page is in, and a read that finds
 * nothing waits for the next page: the first entries reach the reader while
 * the last page has not been served.
 */
TEST(first_entries_before_the_last_page)
{
	struct bed b;
	struct store_dir_reader *r;
	struct tw w;
	int rc;

	bed_init(&b, 0);
	b.g.pages = 3;
	b.g.per_page = 100;
	b.g.until = 1; /* the first page passes, the others wait at the gate */
	r = open_dir(&b, "d/", &rc);
	CHECK(r != NULL && rc == 0);
	/* page 1 holds 100 keys; the last waits to see whether "f0000099/" comes */
	CHECK_INT(read_from(&b, r, 0, 99), 99);
	CHECK(wait_for(&b.g.inside, 1)); /* the second page asked, not served */
	CHECK_INT(b.g.calls, 2);
	tw_init(&w);
	CHECK_INT(dirfetch_read(b.df, r, 99, take, &(struct names){ .k = 99 }), -EAGAIN);
	CHECK_INT(dirfetch_wait(b.df, r, 99, &w.w), 0);
	dirfetch_arm(b.df, &w.w);
	usleep(20000);
	CHECK_INT(w.called, 0);
	gate(&b.g, 1);
	CHECK(wait_for(&w.called, 1));
	CHECK_INT(w.rc, 0);
	CHECK_INT(read_from(&b, r, 99, 0), 201);
	dirfetch_close(b.df, r);
	bed_free(&b);
}

/*
 * A waiter that leaves (its reader was killed) is answered -EINTR at once,
 * while the page is still hanging; the fetch, endless, stops at the next page
 * once its reader has closed too.
 */
TEST(cancel_answers_at_once_and_abandons)
{
	struct bed b;
	struct store_dir_reader *r;
	struct tw w;
	unsigned long long n;
	int rc;

	bed_init(&b, 0);
	b.g.endless = 1;
	tw_init(&w);
	CHECK_INT(dirfetch_open(b.df, "d/", &r, &w.w), 1);
	dirfetch_arm(b.df, &w.w);
	CHECK(wait_for(&b.g.inside, 1));
	dirfetch_cancel(b.df, &w);
	CHECK(w.called == 1 && w.rc == -EINTR); /* its reader is closed by then */
	dirfetch_cancel(b.df, &w); /* a second interrupt finds nothing */
	CHECK_INT(w.called, 1);
	gate(&b.g, 1);
	for (n = 0; n < 1000 && dirfetch_abandoned(b.df) == 0; n++)
		usleep(10000);
	CHECK_INT(dirfetch_abandoned(b.df), 1);
	usleep(50000);
	CHECK_INT(b.g.calls, 1); /* no page after the one in flight */
	CHECK_INT(finished_calls, 0);
	/* the directory can be listed afresh */
	b.g.endless = 0;
	r = open_dir(&b, "d/", &rc);
	CHECK(r && rc == 0);
	CHECK_INT(read_from(&b, r, 0, 0), 1);
	dirfetch_close(b.df, r);

	/* a read waiting for a page leaves the same way */
	b.g.endless = 1;
	b.g.until = 1;
	gate(&b.g, 0);
	r = open_dir(&b, "e/", &rc);
	CHECK(r && rc == 0);
	CHECK_INT(dirfetch_read(b.df, r, 0, take, &(struct names){ 0 }), -EAGAIN);
	tw_init(&w);
	CHECK_INT(dirfetch_wait(b.df, r, 0, &w.w), 0);
	dirfetch_arm(b.df, &w.w);
	CHECK(wait_for(&b.g.inside, 1));
	dirfetch_cancel(b.df, &w);
	CHECK(w.called == 1 && w.rc == -EINTR);
	n = (unsigned long long)b.g.calls;
	dirfetch_close(b.df, r);
	gate(&b.g, 1);
	while (dirfetch_live(b.df))
		usleep(10000);
	CHECK_INT(dirfetch_abandoned(b.df), 2);
	CHECK_INT(b.g.calls, n);
	bed_free(&b);
}

/* Between open (or wait) and arm the waiter is the caller's: what arrives then waits for arm. */
TEST(arm_delivers_what_came_early)
{
	struct bed b;
	struct store_dir_reader *r1, *r2;
	struct tw w, other;

	bed_init(&b, 0);
	/* an interrupt before arm (fuse_req_interrupt_func calls back at once) */
	tw_init(&w);
	tw_init(&other);
	CHECK_INT(dirfetch_open(b.df, "d/", &r1, &w.w), 1);
	CHECK_INT(dirfetch_open(b.df, "d/", &r2, &other.w), 0);
	dirfetch_arm(b.df, &other.w);
	dirfetch_cancel(b.df, &w);
	CHECK_INT(w.called, 0);
	dirfetch_arm(b.df, &w.w);
	CHECK(w.called == 1 && w.rc == -EINTR);
	/* ... the fetch goes on for the other reader */
	gate(&b.g, 1);
	CHECK(wait_for(&other.called, 1));
	CHECK_INT(other.rc, 0);
	CHECK_INT(read_from(&b, r2, 0, 0), 1);
	dirfetch_close(b.df, r2);

	/* the answer before arm */
	tw_init(&w);
	CHECK_INT(dirfetch_open(b.df, "e/", &r1, &w.w), 1);
	CHECK(wait_for(&finished_calls, 2));
	usleep(20000);
	CHECK_INT(w.called, 0);
	dirfetch_arm(b.df, &w.w);
	CHECK(w.called == 1 && w.rc == 0);
	CHECK_INT(read_from(&b, r1, 0, 0), 1);
	dirfetch_close(b.df, r1);
	bed_free(&b);
}

/* Two threads: a third directory waits for one of them; nothing runs beyond the cap. */
TEST(thread_cap)
{
	struct bed b;
	struct tw w[3];
	struct store_dir_reader *r[3];
	char key[8];
	int i;

	bed_init(&b, 2);
	for (i = 0; i < 3; i++) {
		tw_init(&w[i]);
		snprintf(key, sizeof(key), "d%d/", i);
		CHECK_INT(dirfetch_open(b.df, key, &r[i], &w[i].w), 1);
		dirfetch_arm(b.df, &w[i].w);
	}
	CHECK(wait_for(&b.g.inside, 2));
	usleep(50000);
	CHECK_INT(b.g.calls, 2);
	gate(&b.g, 1);
	CHECK(wait_for(&answered, 3));
	CHECK_INT(b.g.most_inside, 2);
	for (i = 0; i < 3; i++) {
		CHECK_INT(w[i].rc, 0);
		dirfetch_close(b.df, r[i]);
	}
	bed_free(&b);
}

/* An error on the first page reaches every opener and the finished hook, once. */
TEST(errors_reach_everyone)
{
	struct bed b;
	struct tw w[3];
	struct store_dir_reader *r[3];
	int i;

	bed_init(&b, 0);
	b.g.fail = -EACCES;
	for (i = 0; i < 3; i++) {
		tw_init(&w[i]);
		dirfetch_open(b.df, "denied/", &r[i], &w[i].w);
		dirfetch_arm(b.df, &w[i].w);
	}
	gate(&b.g, 1);
	CHECK(wait_for(&answered, 3));
	/* each opener gets the denial's detail, to show it on the directory */
	for (i = 0; i < 3; i++)
		CHECK(w[i].called == 1 && w[i].rc == -EACCES && w[i].cls == ERR_DENIED);
	CHECK(finished_calls == 1 && finished_rc == -EACCES);
	CHECK_INT(dirfetch_live(b.df), 0);
	bed_free(&b);
}

/* An error after the first page: the open worked, the reader gets the entries, then the error. */
TEST(error_after_the_first_page)
{
	struct bed b;
	struct store_dir_reader *r;
	int rc;

	bed_init(&b, 0);
	b.g.pages = 3;
	b.g.per_page = 10;
	b.g.until = 1;
	r = open_dir(&b, "d/", &rc);
	CHECK(r && rc == 0);
	b.g.fail = -EIO;
	gate(&b.g, 1);
	CHECK_INT(read_from(&b, r, 0, 9), 9);
	CHECK_INT(read_from(&b, r, 9, 0), -EIO);
	dirfetch_close(b.df, r);
	bed_free(&b);
}

/* What a reader of a stopped mount reads at its first entry. */
static long dirstream_read_end(struct store_dir_reader *r)
{
	return (long)dirfetch_read(NULL, r, 0, take, &(struct names){ 0 });
}

static void *free_it(void *arg)
{
	dirfetch_free(arg);
	return NULL;
}

/* Stopping: a queued fetch is answered -EIO at once, a running one at its next page. */
TEST(free_answers_everyone)
{
	struct bed b;
	struct tw run, queued;
	struct store_dir_reader *r1, *r2;
	pthread_t th;

	bed_init(&b, 1);
	b.g.endless = 1;
	tw_init(&run);
	tw_init(&queued);
	dirfetch_open(b.df, "a/", &r1, &run.w);
	dirfetch_arm(b.df, &run.w);
	CHECK(wait_for(&b.g.inside, 1));
	dirfetch_open(b.df, "b/", &r2, &queued.w);
	dirfetch_arm(b.df, &queued.w);
	CHECK_INT(pthread_create(&th, NULL, free_it, b.df), 0);
	CHECK(wait_for(&queued.called, 1));
	CHECK_INT(queued.rc, -EIO);
	CHECK_INT(run.called, 0);
	gate(&b.g, 1);
	pthread_join(th, NULL);
	/* its first page came in before it stopped: the open worked, the listing ended there */
	CHECK(run.called == 1 && run.rc == 0);
	CHECK_INT(b.g.calls, 1);
	CHECK_INT(dirstream_read_end(r1), -EINTR);
	dirfetch_close(NULL, r1);
	metatable_free(b.t);
}

/*
 * A listing larger than the cache (64 KiB here; 100 pages of 500 keys, some
 * 2.8 MB): streamed in a window of 256 KiB, every entry once and in order,
 * not cached, nothing left reserved. The fetch waits while its reader does
 * not read (it does not run ahead: a few pages past the window, no more)
 * and goes on when it reads.
 */
TEST(too_large_for_the_cache_is_streamed_in_a_window)
{
	struct bed b;
	struct store_dir_reader *r;
	int rc, calls;

	bed_init_sized(&b, 0, 64 << 10, 256 << 10);
	b.g.pages = 100;
	b.g.per_page = 500;
	gate(&b.g, 1);
	r = open_dir(&b, "big/", &rc);
	CHECK(r && rc == 0);
	CHECK_INT(read_from(&b, r, 0, 1000), 1000);
	calls = settled(&b.g.calls);
	CHECK(calls > 2 && calls < 30);
	CHECK_INT(dirfetch_live(b.df), 1); /* waiting, with no thread */
	CHECK_INT(read_from(&b, r, 1000, 0), 49000);
	CHECK_INT(b.g.calls, 100);
	CHECK_INT(finished_calls, 1);
	CHECK(metatable_get_dir(b.t, "big/", 60000) == NULL);
	dirfetch_close(b.df, r);
	/* every byte reserved went back: a 64 KiB listing fits again */
	CHECK_INT(metatable_reserve(b.t, 64 << 10), 0);
	metatable_unreserve(b.t, 64 << 10);
	bed_free(&b);
}

/*
 * A seek back past what the window let go reads the directory again (a new
 * fetch), and a second open of a windowed directory starts its own; both
 * read every entry from where they are.
 */
TEST(seek_back_and_second_reader_start_their_own)
{
	struct bed b;
	struct store_dir_reader *r, *r2;
	int rc;

	bed_init_sized(&b, 0, 64 << 10, 256 << 10);
	b.g.pages = 40;
	b.g.per_page = 500;
	gate(&b.g, 1);
	r = open_dir(&b, "big/", &rc);
	CHECK(r && rc == 0);
	CHECK_INT(read_from(&b, r, 0, 15000), 15000);
	r2 = open_dir(&b, "big/", &rc);
	CHECK(r2 && rc == 0);
	CHECK_INT(dirfetch_started(b.df), 2);
	CHECK_INT(read_from(&b, r2, 0, 0), 20000);
	dirfetch_close(b.df, r2);
	/* rewinddir: entries 0.. were let go long ago */
	CHECK_INT(read_from(&b, r, 3, 10), 10);
	CHECK_INT(dirfetch_started(b.df), 3);
	CHECK_INT(read_from(&b, r, 13, 0), 19987);
	dirfetch_close(b.df, r);
	bed_free(&b);
}

/* A fetch waiting for a reader that closes is abandoned: no page after. */
TEST(waiting_fetch_abandoned_when_its_reader_closes)
{
	struct bed b;
	struct store_dir_reader *r;
	int rc, calls;

	bed_init_sized(&b, 0, 64 << 10, 256 << 10);
	b.g.endless = 1;
	b.g.per_page = 500;
	gate(&b.g, 1);
	r = open_dir(&b, "big/", &rc);
	CHECK(r && rc == 0);
	CHECK_INT(read_from(&b, r, 0, 10), 10);
	calls = settled(&b.g.calls);
	CHECK(calls < 30);
	dirfetch_close(b.df, r);
	CHECK_INT(dirfetch_live(b.df), 0);
	CHECK_INT(dirfetch_abandoned(b.df), 1);
	usleep(50000);
	CHECK_INT(b.g.calls, calls);
	bed_free(&b);
}

int main(void)
{
	log_set_level(LOG_CRIT);
	RUN(one_fetch_for_many_readers);
	RUN(first_entries_before_the_last_page);
	RUN(cancel_answers_at_once_and_abandons);
	RUN(arm_delivers_what_came_early);
	RUN(thread_cap);
	RUN(errors_reach_everyone);
	RUN(error_after_the_first_page);
	RUN(free_answers_everyone);
	RUN(too_large_for_the_cache_is_streamed_in_a_window);
	RUN(seek_back_and_second_reader_start_their_own);
	RUN(waiting_fetch_abandoned_when_its_reader_closes);
	return harness_done();
}
