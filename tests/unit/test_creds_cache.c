/*
 * Unit tests for the refreshing credentials cache (auth/creds.c), with a fake
 * provider that counts fetches, fails on command and blocks until released
 * (no network): one refresh per lifetime, valid credentials kept through
 * failures, a single fetch in flight, rejections, expired answers, and the
 * wait's deadline.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/creds.h"
#include "core/log.h"
#include "core/strutil.h"
#include "harness.h"

/* A fake provider: counts fetches, can fail, can block until released. */
struct fake {
	struct creds_provider base;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int fetches;
	int fail;		/* 1: fail (EACCES); 2: called off (EINTR) */
	int hold;		/* fetch waits while set */
	long life;		/* seconds of validity of what it hands out */
};

static int fake_fetch(struct creds_provider *p, struct creds **out, char *why, size_t whylen)
{
	struct fake *f = (struct fake *)p;
	char ak[32];
	int n;

	pthread_mutex_lock(&f->lock);
	n = ++f->fetches;
	while (f->hold)
		pthread_cond_wait(&f->cond, &f->lock);
	pthread_mutex_unlock(&f->lock);
	if (f->fail == 2) {
		snprintf(why, whylen, "fake call off %d", n);
		return -EINTR; /* what a closing HTTP client gives */
	}
	if (f->fail) {
		snprintf(why, whylen, "fake failure %d", n);
		return -EACCES;
	}
	snprintf(ak, sizeof(ak), "AK%d", n);
	*out = creds_new(ak, "SK", "ST", time(NULL) + f->life, "arn:fake");
	return *out ? 0 : -ENOMEM;
}

static void fake_destroy(struct creds_provider *p)
{
	(void)p;
}

static void fake_init(struct fake *f, long life)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	f->base.name = "fake";
	f->base.fetch = fake_fetch;
	f->base.destroy = fake_destroy;
	f->life = life;
}

static int fake_count(struct fake *f)
{
	int n;

	pthread_mutex_lock(&f->lock);
	n = f->fetches;
	pthread_mutex_unlock(&f->lock);
	return n;
}

static void fake_hold(struct fake *f, int hold)
{
	pthread_mutex_lock(&f->lock);
	f->hold = hold;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

/* The access key id of what acquire hands out, or "" on error. */
static const char *acquire_ak(struct creds_cache *c, int *rc)
{
	static __thread char ak[32];
	char why[CREDS_WHY_LEN];
	struct creds *cr = NULL;

	*rc = creds_cache_acquire(c, &cr, why, sizeof(why));
	ak[0] = '\0';
	if (cr) {
		snprintf(ak, sizeof(ak), "%s", cr->access_key_id);
		creds_release(cr);
	}
	return ak;
}

TEST(cache_refreshes_once_per_lifetime)
{
	struct creds_cache *c;
	struct fake f;
	int rc, i;

	fake_init(&f, 3600);
	c = creds_cache_new(&f.base);
	for (i = 0; i < 5; i++)
		CHECK_STR(acquire_ak(c, &rc), "AK1");
	CHECK_INT(fake_count(&f), 1);
	/* 3600 s credentials: refreshed 5 minutes ahead, not earlier. */
	creds_cache_set_clock_offset(c, 3600 - 301);
	CHECK_STR(acquire_ak(c, &rc), "AK1");
	CHECK_INT(fake_count(&f), 1);
	creds_cache_set_clock_offset(c, 3600 - 299);
	CHECK_STR(acquire_ak(c, &rc), "AK2");
	CHECK_INT(fake_count(&f), 2);
	creds_cache_free(c);

	/* 60 s credentials: a quarter of the lifetime ahead (15 s). */
	fake_init(&f, 60);
	c = creds_cache_new(&f.base);
	CHECK_STR(acquire_ak(c, &rc), "AK1");
	creds_cache_set_clock_offset(c, 44);
	CHECK_STR(acquire_ak(c, &rc), "AK1");
	creds_cache_set_clock_offset(c, 46);
	CHECK_STR(acquire_ak(c, &rc), "AK2");
	CHECK_INT(fake_count(&f), 2);
	creds_cache_free(c);
}

/*
 * A cache of 60 s credentials, 50 s on: due, and its refresh fails as fail
 * says (struct fake). The first failed refresh is behind it, and the
 * still-valid credentials kept serving.
 */
static struct creds_cache *due_and_failing(struct fake *f, int fail)
{
	struct creds_cache *c;
	int rc;

	fake_init(f, 60);
	c = creds_cache_new(&f->base);
	CHECK_STR(acquire_ak(c, &rc), "AK1");
	f->fail = fail;
	creds_cache_set_clock_offset(c, 50);
	CHECK_STR(acquire_ak(c, &rc), "AK1");
	CHECK_INT(rc, 0);
	CHECK_INT(fake_count(f), 2);
	return c;
}

TEST(cache_failures_keep_valid_creds_then_ekeyexpired)
{
	char why[CREDS_WHY_LEN];
	struct creds_cache *c;
	struct creds *cr = NULL;
	struct fake f;
	int rc;

	c = due_and_failing(&f, 1);
	/* Past expiry: EKEYEXPIRED with the provider's reason, and no storm. */
	creds_cache_set_clock_offset(c, 70);
	rc = creds_cache_acquire(c, &cr, why, sizeof(why));
	CHECK_INT(rc, -EKEYEXPIRED);
	CHECK(cr == NULL);
	CHECK(strstr(why, "fake failure") != NULL);
	rc = creds_cache_acquire(c, &cr, why, sizeof(why));
	CHECK_INT(rc, -EKEYEXPIRED);
	rc = creds_cache_acquire(c, &cr, why, sizeof(why));
	CHECK_INT(rc, -EKEYEXPIRED);
	CHECK(fake_count(&f) <= 3);
	/* Recovers without a new cache once the retry time has come. */
	f.fail = 0;
	f.life = 200;
	creds_cache_set_clock_offset(c, 70 + 31);
	CHECK_STR(acquire_ak(c, &rc), "AK4");
	CHECK_INT(rc, 0);
	creds_cache_free(c);
}

/* At shutdown the HTTP client calls a refresh off (-EINTR): no failure, no backoff. */
TEST(cache_called_off_refresh_is_not_a_failure)
{
	struct creds_cache *c;
	struct fake f;
	int rc;

	c = due_and_failing(&f, 2);
	/* A failure would back off; a call-off does not: the next acquire asks again. */
	CHECK_STR(acquire_ak(c, &rc), "AK1");
	CHECK_INT(fake_count(&f), 3);
	f.fail = 0;
	CHECK_STR(acquire_ak(c, &rc), "AK4");
	CHECK_INT(rc, 0);
	creds_cache_free(c);
}

TEST(cache_invalidate_forces_one_refresh)
{
	char why[CREDS_WHY_LEN];
	struct creds_cache *c;
	struct creds *cr = NULL;
	struct fake f;
	int rc;

	fake_init(&f, 3600);
	c = creds_cache_new(&f.base);
	CHECK_INT(creds_cache_acquire(c, &cr, why, sizeof(why)), 0);
	creds_cache_invalidate(c, cr, NULL);
	creds_release(cr);
	CHECK_STR(acquire_ak(c, &rc), "AK2");
	CHECK_STR(acquire_ak(c, &rc), "AK2");
	CHECK_INT(fake_count(&f), 2);
	/* Invalidating credentials that are no longer current changes nothing. */
	fake_init(&f, 3600);
	creds_cache_free(c);
	c = creds_cache_new(&f.base);
	CHECK_STR(acquire_ak(c, &rc), "AK1");
	creds_cache_invalidate(c, (const struct creds *)&f, NULL);
	CHECK_STR(acquire_ak(c, &rc), "AK1");
	CHECK_INT(fake_count(&f), 1);
	creds_cache_free(c);
}

struct racer {
	struct creds_cache *c;
	int rc;
	char ak[32];
};

static void *race(void *arg)
{
	struct racer *r = arg;

	snprintf(r->ak, sizeof(r->ak), "%s", acquire_ak(r->c, &r->rc));
	return NULL;
}

TEST(cache_one_fetch_in_flight)
{
	struct racer r[8];
	pthread_t t[8];
	struct creds_cache *c;
	struct fake f;
	int i, rc;

	fake_init(&f, 3600);
	fake_hold(&f, 1);
	c = creds_cache_new(&f.base);
	for (i = 0; i < 8; i++) {
		r[i].c = c;
		pthread_create(&t[i], NULL, race, &r[i]);
	}
	/* Let the first caller reach the provider, then release it. */
	while (fake_count(&f) == 0)
		usleep(1000);
	usleep(20000);
	fake_hold(&f, 0);
	for (i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		CHECK_INT(r[i].rc, 0);
		CHECK_STR(r[i].ak, "AK1");
	}
	CHECK_INT(fake_count(&f), 1);

	/*
	 * With background refreshes on, a due refresh runs in its own thread:
	 * callers get the valid old credentials at once, even while the
	 * provider is stuck.
	 */
	creds_cache_background(c);
	fake_hold(&f, 1);
	creds_cache_set_clock_offset(c, 3600 - 200);
	for (i = 0; i < 4; i++)
		CHECK_STR(acquire_ak(c, &rc), "AK1");
	while (fake_count(&f) < 2)
		usleep(1000);
	CHECK_STR(acquire_ak(c, &rc), "AK1");
	creds_cache_set_clock_offset(c, 0);
	fake_hold(&f, 0);
	/* The background refresh lands; then its result is handed out. */
	for (i = 0; i < 5000 && strcmp(acquire_ak(c, &rc), "AK2") != 0; i++)
		usleep(1000);
	CHECK_STR(acquire_ak(c, &rc), "AK2");
	CHECK_INT(fake_count(&f), 2);
	creds_cache_free(c);
}

/* One thread that saw the credentials rejected: invalidate, then acquire again. */
struct rejecter {
	struct creds_cache *c;
	struct creds *seen;
	int again;
	int rc;
	char ak[32];
};

static void *reject_and_reacquire(void *arg)
{
	struct rejecter *r = arg;

	r->again = creds_cache_invalidate(r->c, r->seen, "400 ExpiredToken");
	snprintf(r->ak, sizeof(r->ak), "%s", acquire_ak(r->c, &r->rc));
	return NULL;
}

/*
 * A revoked session: 32 threads see their requests rejected with the same
 * credentials at once. One fetch replaces them for all (single flight), every
 * thread may try again, and all get the new credentials.
 */
TEST(cache_rejection_single_flight)
{
	struct rejecter r[32];
	pthread_t t[32];
	struct creds_cache *c;
	struct creds *cr = NULL;
	char why[CREDS_WHY_LEN];
	struct fake f;
	int i, rc;

	fake_init(&f, 3600);
	c = creds_cache_new(&f.base);
	CHECK_INT(creds_cache_acquire(c, &cr, why, sizeof(why)), 0);
	fake_hold(&f, 1);
	for (i = 0; i < 32; i++) {
		r[i].c = c;
		r[i].seen = cr;
		pthread_create(&t[i], NULL, reject_and_reacquire, &r[i]);
	}
	while (fake_count(&f) < 2)
		usleep(1000);
	usleep(20000);
	fake_hold(&f, 0);
	for (i = 0; i < 32; i++) {
		pthread_join(t[i], NULL);
		CHECK_INT(r[i].again, 1);
		CHECK_INT(r[i].rc, 0);
		CHECK_STR(r[i].ak, "AK2");
	}
	CHECK_INT(fake_count(&f), 2);
	creds_release(cr);
	/*
	 * The same with background refreshes (the mounted daemon), once S3 has
	 * accepted AK2 (until then, a rejection of AK2 would be a failed refresh).
	 */
	creds_cache_background(c);
	CHECK_INT(creds_cache_acquire(c, &cr, why, sizeof(why)), 0);
	creds_cache_accepted(c, cr);
	for (i = 0; i < 32; i++) {
		r[i].c = c;
		r[i].seen = cr;
		pthread_create(&t[i], NULL, reject_and_reacquire, &r[i]);
	}
	for (i = 0; i < 32; i++) {
		pthread_join(t[i], NULL);
		CHECK_INT(r[i].rc, 0);
		CHECK_STR(r[i].ak, "AK3");
	}
	CHECK_INT(fake_count(&f), 3);
	creds_release(cr);
	(void)rc;
	creds_cache_free(c);
}

/*
 * S3 rejects every session (ExpiredToken always): the first rejection costs
 * one refresh; the fresh credentials rejected too are a failed refresh, with
 * its backoff, so further operations fail at once with EKEYEXPIRED and cost
 * no STS call until the backoff is over. A later acceptance ends it all.
 */
TEST(cache_rejected_after_refresh_backs_off)
{
	char why[CREDS_WHY_LEN];
	struct creds_cache *c;
	struct creds *cr = NULL;
	struct fake f;
	int rc, i;

	fake_init(&f, 3600);
	c = creds_cache_new(&f.base);
	CHECK_INT(creds_cache_acquire(c, &cr, why, sizeof(why)), 0);
	CHECK_INT(creds_cache_invalidate(c, cr, "400 ExpiredToken"), 1);
	creds_release(cr);
	CHECK_INT(creds_cache_acquire(c, &cr, why, sizeof(why)), 0);
	CHECK_STR(cr->access_key_id, "AK2");
	CHECK_INT(fake_count(&f), 2);
	/* Rejected again, right after the refresh: do not try again. */
	CHECK_INT(creds_cache_invalidate(c, cr, "400 ExpiredToken"), 0);
	/* Other threads rejected with the same ones: no again either. */
	CHECK_INT(creds_cache_invalidate(c, cr, "400 ExpiredToken"), 0);
	creds_release(cr);
	for (i = 0; i < 100; i++) {
		rc = creds_cache_acquire(c, &cr, why, sizeof(why));
		CHECK_INT(rc, -EKEYEXPIRED);
	}
	CHECK(strstr(why, "even right after a refresh") != NULL);
	CHECK(strstr(why, "clock") != NULL);
	CHECK_INT(fake_count(&f), 2);
	/* After the backoff, one refresh; rejected again, a longer backoff. */
	creds_cache_set_clock_offset(c, 10);
	CHECK_STR(acquire_ak(c, &rc), "AK3");
	CHECK_INT(fake_count(&f), 3);
	/* This time the server accepts them: a later rejection refreshes again at once. */
	CHECK_INT(creds_cache_acquire(c, &cr, why, sizeof(why)), 0);
	creds_cache_accepted(c, cr);
	CHECK_INT(creds_cache_invalidate(c, cr, "400 ExpiredToken"), 1);
	creds_release(cr);
	CHECK_STR(acquire_ak(c, &rc), "AK4");
	CHECK_INT(fake_count(&f), 4);
	creds_cache_free(c);
}

/*
 * Regression (issue 12.4): an STS that hands out credentials already expired
 * (or a clock running ahead of their lifetime) made one STS call per file
 * operation. Such an answer is a failed refresh with backoff, and the reason
 * names the clock.
 */
TEST(cache_expired_answer_is_a_failed_refresh)
{
	char why[CREDS_WHY_LEN];
	struct creds_cache *c;
	struct creds *cr = NULL;
	struct fake f;
	int rc, i;

	fake_init(&f, -60);
	c = creds_cache_new(&f.base);
	for (i = 0; i < 100; i++) {
		rc = creds_cache_acquire(c, &cr, why, sizeof(why));
		CHECK_INT(rc, -EKEYEXPIRED);
		CHECK(cr == NULL);
	}
	CHECK_INT(fake_count(&f), 1);
	CHECK(strstr(why, "already") != NULL && strstr(why, "clock") != NULL);
	/* Valid ones once the backoff is over. */
	f.life = 3600;
	creds_cache_set_clock_offset(c, 10);
	CHECK_STR(acquire_ak(c, &rc), "AK2");
	CHECK_INT(rc, 0);
	/* While valid ones last, an expired answer keeps them in use. */
	f.life = -60;
	creds_cache_set_clock_offset(c, 10 + 3600 - 200);
	for (i = 0; i < 100; i++)
		CHECK_STR(acquire_ak(c, &rc), "AK2");
	CHECK_INT(fake_count(&f), 3);
	creds_cache_free(c);
}

/*
 * A hung STS (12.7): with no valid credentials, an operation waits for the
 * refresh in flight only until its deadline, then fails with EKEYEXPIRED; the
 * wait never outlasts the operation's budget.
 */
TEST(cache_wait_ends_at_the_deadline)
{
	char why[CREDS_WHY_LEN];
	struct creds_cache *c;
	struct creds *cr = NULL;
	long long t0;
	struct fake f;
	int rc;

	fake_init(&f, 3600);
	c = creds_cache_new(&f.base);
	CHECK_INT(creds_cache_acquire(c, &cr, why, sizeof(why)), 0);
	creds_cache_background(c);
	fake_hold(&f, 1);
	creds_cache_invalidate(c, cr, "400 InvalidToken");
	creds_release(cr);
	cr = NULL;
	t0 = clock_mono_ms();
	rc = creds_cache_acquire_until(c, t0 + 200, &cr, why, sizeof(why));
	CHECK_INT(rc, -EKEYEXPIRED);
	CHECK(cr == NULL);
	/* "Did not hang": far below the provider's stuck time, which is for ever. */
	CHECK(clock_mono_ms() - t0 < 10000);
	CHECK(strstr(why, "time budget") != NULL);
	/* A deadline already past: no wait at all. */
	rc = creds_cache_acquire_until(c, clock_mono_ms(), &cr, why, sizeof(why));
	CHECK_INT(rc, -EKEYEXPIRED);
	fake_hold(&f, 0);
	CHECK_STR(acquire_ak(c, &rc), "AK2");
	creds_cache_free(c);
}

int main(void)
{
	log_set_level(LOG_CRIT);
	RUN(cache_refreshes_once_per_lifetime);
	RUN(cache_failures_keep_valid_creds_then_ekeyexpired);
	RUN(cache_called_off_refresh_is_not_a_failure);
	RUN(cache_invalidate_forces_one_refresh);
	RUN(cache_one_fetch_in_flight);
	RUN(cache_rejection_single_flight);
	RUN(cache_rejected_after_refresh_backs_off);
	RUN(cache_expired_answer_is_a_failed_refresh);
	RUN(cache_wait_ends_at_the_deadline);
	return harness_done();
}
