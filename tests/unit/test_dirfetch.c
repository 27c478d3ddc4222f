/*
 * Unit tests for cache/dirfetch.c: one fetch per directory however many wait,
 * a waiter that leaves is answered at once and the fetch it leaves behind
 * is abandoned, the thread cap, and stopping.
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

#include "core/err.h"
#include "core/log.h"
#include "core/strutil.h"
#include "cache/dirfetch.h"
#include "cache/listing.h"
#include "cache/metatable.h"
#include "harness.h"
#include "s3/store.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;

struct gated {
	struct store base;	/* first */
	int open;		/* pages pass the gate */
	int endless;		/* always truncated, with a new token */
	int fail;		/* answer this negative errno instead */
	int calls, inside, most_inside;
};

static int gated_list(struct store *st, const char *prefix, const char *token, int max_keys,
		      struct store_page *page, struct store_error *e)
{
	struct gated *g = (struct gated *)st;
	int n;

	(void)max_keys;
	(void)token;
	store_error_clear(e);
	memset(page, 0, sizeof(*page));
	pthread_mutex_lock(&lock);
	n = g->calls++;
	g->inside++;
	if (g->inside > g->most_inside)
		g->most_inside = g->inside;
	pthread_cond_broadcast(&changed);
	while (!g->open)
		pthread_cond_wait(&changed, &lock);
	g->inside--;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
	if (g->fail)
		return g->fail;
	page->objects = calloc(1, sizeof(*page->objects));
	if (asprintf(&page->objects[0].key, "%sfile-%d", prefix, n) < 0)
		abort();
	strcpy(page->objects[0].storage_class, "STANDARD");
	page->nobjects = 1;
	if (g->endless) {
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

struct tw {
	struct store_dir_waiter w;	/* first */
	int called;
	int rc;
	struct store_dir *l;
};

static int answered;

static void tw_done(struct store_dir_waiter *w, int rc, struct store_dir *l,
		    const struct store_error *e)
{
	struct tw *t = (struct tw *)w;

	(void)e;
	pthread_mutex_lock(&lock);
	t->called++;
	t->rc = rc;
	t->l = l;
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

/* As the metadata cache does: a finished listing is kept in its table. */
static void on_finished(void *ctx, const char *key, int rc, struct store_dir *d)
{
	if (!rc)
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

static void bed_init(struct bed *b, unsigned threads)
{
	struct dirfetch_config cfg = { .page_size = 1000, .timeout_ms = 60000,
				       .max_bytes = 64 << 20, .threads = threads,
				       .finished = on_finished, .reserve = on_reserve,
				       .unreserve = on_unreserve };

	memset(&b->g, 0, sizeof(b->g));
	b->g.base.ops = &gated_ops;
	b->t = metatable_new();
	metatable_set_limits(b->t, &(struct metatable_limits){ .ttl_ms = 60000,
							      .negative_ttl_ms = 60000 });
	cfg.store = &b->g.base;
	cfg.ctx = b->t;
	b->df = dirfetch_new(&cfg);
	pthread_mutex_lock(&lock);
	answered = 0;
	finished_calls = 0;
	pthread_mutex_unlock(&lock);
}

static void bed_free(struct bed *b)
{
	gate(&b->g, 1);
	dirfetch_free(b->df);
	metatable_free(b->t);
}

/* Ten opens of one directory: one fetch, ten answers with the same listing, cached. */
TEST(one_fetch_for_many_waiters)
{
	struct bed b;
	struct tw w[10];
	struct store_dir *cached;
	int i;

	bed_init(&b, 0);
	for (i = 0; i < 10; i++) {
		tw_init(&w[i]);
		CHECK_INT(dirfetch_join(b.df, "d/", &w[i].w), i == 0 ? 1 : 0);
		dirfetch_arm(b.df, &w[i].w);
	}
	CHECK(wait_for(&b.g.calls, 1));
	gate(&b.g, 1);
	CHECK(wait_for(&answered, 10));
	for (i = 0; i < 10; i++) {
		CHECK(w[i].called == 1 && w[i].rc == 0 && w[i].l == w[0].l);
		store_dir_release(w[i].l);
	}
	CHECK_INT(b.g.calls, 1);
	CHECK_INT(dirfetch_started(b.df), 1);
	CHECK_INT(finished_calls, 1);
	cached = metatable_get_dir(b.t, "d/", 60000);
	CHECK(cached != NULL && cached == w[0].l && cached->n == 1);
	store_dir_release(cached);
	bed_free(&b);
}

/*
 * A waiter that leaves (its reader was killed) is answered -EINTR at once,
 * while the page is still hanging; the fetch, endless, stops at the next page.
 */
TEST(cancel_answers_at_once_and_abandons)
{
	struct bed b;
	struct tw w;
	unsigned long long n;

	bed_init(&b, 0);
	b.g.endless = 1;
	tw_init(&w);
	CHECK_INT(dirfetch_join(b.df, "d/", &w.w), 1);
	dirfetch_arm(b.df, &w.w);
	CHECK(wait_for(&b.g.inside, 1));
	dirfetch_cancel(b.df, &w);
	CHECK(w.called == 1 && w.rc == -EINTR && w.l == NULL);
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
	tw_init(&w);
	CHECK_INT(dirfetch_join(b.df, "d/", &w.w), 1);
	dirfetch_arm(b.df, &w.w);
	CHECK(wait_for(&w.called, 1));
	CHECK_INT(w.rc, 0);
	store_dir_release(w.l);
	bed_free(&b);
}

/* Between join and arm the waiter is the caller's: what arrives then waits for arm. */
TEST(arm_delivers_what_came_early)
{
	struct bed b;
	struct tw w, other;

	bed_init(&b, 0);
	/* an interrupt before arm (fuse_req_interrupt_func calls back at once) */
	tw_init(&w);
	tw_init(&other);
	CHECK_INT(dirfetch_join(b.df, "d/", &w.w), 1);
	CHECK_INT(dirfetch_join(b.df, "d/", &other.w), 0);
	dirfetch_arm(b.df, &other.w);
	dirfetch_cancel(b.df, &w);
	CHECK_INT(w.called, 0);
	dirfetch_arm(b.df, &w.w);
	CHECK(w.called == 1 && w.rc == -EINTR);
	/* ... the fetch goes on for the other waiter */
	gate(&b.g, 1);
	CHECK(wait_for(&other.called, 1));
	CHECK_INT(other.rc, 0);
	store_dir_release(other.l);

	/* the result before arm */
	tw_init(&w);
	CHECK_INT(dirfetch_join(b.df, "e/", &w.w), 1);
	CHECK(wait_for(&finished_calls, 2));
	usleep(20000);
	CHECK_INT(w.called, 0);
	dirfetch_arm(b.df, &w.w);
	CHECK(w.called == 1 && w.rc == 0 && w.l && w.l->n == 1);
	store_dir_release(w.l);
	bed_free(&b);
}

/* Two threads: a third directory waits for one of them; nothing runs beyond the cap. */
TEST(thread_cap)
{
	struct bed b;
	struct tw w[3];
	char key[8];
	int i;

	bed_init(&b, 2);
	for (i = 0; i < 3; i++) {
		tw_init(&w[i]);
		snprintf(key, sizeof(key), "d%d/", i);
		CHECK_INT(dirfetch_join(b.df, key, &w[i].w), 1);
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
		store_dir_release(w[i].l);
	}
	bed_free(&b);
}

/* An error reaches every waiter and the finished hook, once. */
TEST(errors_reach_everyone)
{
	struct bed b;
	struct tw w[3];
	int i;

	bed_init(&b, 0);
	b.g.fail = -EACCES;
	for (i = 0; i < 3; i++) {
		tw_init(&w[i]);
		dirfetch_join(b.df, "denied/", &w[i].w);
		dirfetch_arm(b.df, &w[i].w);
	}
	gate(&b.g, 1);
	CHECK(wait_for(&answered, 3));
	for (i = 0; i < 3; i++)
		CHECK(w[i].called == 1 && w[i].rc == -EACCES && !w[i].l);
	CHECK(finished_calls == 1 && finished_rc == -EACCES);
	bed_free(&b);
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
	pthread_t th;

	bed_init(&b, 1);
	b.g.endless = 1;
	tw_init(&run);
	tw_init(&queued);
	dirfetch_join(b.df, "a/", &run.w);
	dirfetch_arm(b.df, &run.w);
	CHECK(wait_for(&b.g.inside, 1));
	dirfetch_join(b.df, "b/", &queued.w);
	dirfetch_arm(b.df, &queued.w);
	CHECK_INT(pthread_create(&th, NULL, free_it, b.df), 0);
	CHECK(wait_for(&queued.called, 1));
	CHECK_INT(queued.rc, -EIO);
	CHECK_INT(run.called, 0);
	gate(&b.g, 1);
	pthread_join(th, NULL);
	CHECK(run.called == 1 && run.rc == -EINTR);
	CHECK_INT(b.g.calls, 1);
	metatable_free(b.t);
}

int main(void)
{
	log_set_level(LOG_CRIT);
	RUN(one_fetch_for_many_waiters);
	RUN(cancel_answers_at_once_and_abandons);
	RUN(arm_delivers_what_came_early);
	RUN(thread_cap);
	RUN(errors_reach_everyone);
	RUN(free_answers_everyone);
	return harness_done();
}
