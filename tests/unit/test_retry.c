/*
 * Unit tests for http/retry.c: the backoff schedule, the time budget, the
 * one retry loop (retry_run), and the shared token bucket.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/strutil.h"
#include "http/retry.h"
#include "harness.h"

static struct s3_error throttled(void)
{
	struct s3_error e;

	err_clear(&e);
	e.http_status = 503;
	snprintf(e.code, sizeof(e.code), "SlowDown");
	return e;
}

/*
 * Regression: with full jitter (0..cap) all five attempts could land within a
 * few milliseconds, so a 100 ms outage reached the reader. Each sleep must be
 * at least half its cap, so the retries always cover 750 ms.
 */
TEST(sleeps_cover_a_short_outage)
{
	static const struct retry_policy p = {
		.max_attempts = 5, .base_ms = 100, .max_backoff_ms = 2000, .budget_ms = 100000,
	};
	struct s3_error e = throttled();
	int run;

	for (run = 0; run < 200; run++) {
		struct retry r;
		long total = 0, s, cap = 100;
		int n = 0;

		retry_begin(&r, &p, NULL);
		while ((s = retry_next(&r, &e)) >= 0) {
			CHECK(s >= cap / 2 && s <= cap);
			total += s;
			cap *= 2;
			n++;
		}
		CHECK_INT(n, 4);
		CHECK(total >= 750);
	}
}

TEST(budget_stops_retries)
{
	static const struct retry_policy p = {
		.max_attempts = 50, .base_ms = 1000, .max_backoff_ms = 1000, .budget_ms = 500,
	};
	struct s3_error e = throttled();
	struct retry r;
	int i;

	/* Every sleep is at least 500 ms, which with the attempt's 100 ms never fits 500 ms. */
	for (i = 0; i < 100; i++) {
		retry_begin(&r, &p, NULL);
		CHECK_INT(retry_next(&r, &e), -1);
		CHECK(r.stopped != NULL);
	}
}

TEST(single_attempt_never_retries)
{
	static const struct retry_policy p = {
		.max_attempts = 1, .base_ms = 10, .max_backoff_ms = 10, .budget_ms = 10000,
	};
	struct s3_error e = throttled();
	struct retry r;

	retry_begin(&r, &p, NULL);
	CHECK_INT(retry_next(&r, &e), -1);
}

/* What may heal is decided by the one table, for every caller alike. */
TEST(only_the_table_decides_what_is_retried)
{
	static const struct retry_policy p = {
		.max_attempts = 5, .base_ms = 1, .max_backoff_ms = 1, .budget_ms = 10000,
	};
	struct s3_error e;
	struct retry r;

	err_clear(&e);
	e.http_status = 403;
	snprintf(e.code, sizeof(e.code), "AccessDenied");
	retry_begin(&r, &p, NULL);
	CHECK_INT(retry_next(&r, &e), -1);
	err_clear(&e);
	e.curl_code = 60; /* an untrusted certificate */
	retry_begin(&r, &p, NULL);
	CHECK_INT(retry_next(&r, &e), -1);
	err_clear(&e);
	e.curl_code = 7; /* connection refused */
	retry_begin(&r, &p, NULL);
	CHECK(retry_next(&r, &e) >= 0);
}

/* The attempt timeout: what is left, at most attempt_ms, at least 1 s. */
TEST(attempt_timeout)
{
	static const struct retry_policy p = {
		.max_attempts = 5, .base_ms = 1, .max_backoff_ms = 1, .budget_ms = 20000,
		.attempt_ms = 15000,
	};
	static const struct retry_policy tiny = {
		.max_attempts = 5, .base_ms = 1, .max_backoff_ms = 1, .budget_ms = 10,
	};
	struct retry r;

	retry_begin(&r, &p, NULL);
	CHECK_INT(retry_attempt_ms(&r), 15000);
	CHECK(retry_deadline_ms(&r) == r.start_ms + 20000);
	retry_begin(&r, &tiny, NULL);
	CHECK_INT(retry_attempt_ms(&r), 1000);
}

/*
 * The AWS SDKs' standard retry mode: a retry takes 5 tokens (10 after a
 * timeout), a success hands back what its retries took (1 when it took
 * none), never past the capacity, and an empty bucket makes failures final.
 */
TEST(bucket_costs_and_refunds)
{
	static const struct retry_policy p = {
		.max_attempts = 1000, .base_ms = 0, .max_backoff_ms = 0, .budget_ms = 100000,
	};
	struct s3_error e = throttled(), t;
	struct retry_bucket b;
	struct retry r;
	int n = 0;

	retry_bucket_init(&b, 0);
	CHECK_INT(retry_bucket_level(&b), RETRY_BUCKET_CAPACITY);
	retry_begin(&r, &p, &b);
	while (retry_next(&r, &e) >= 0)
		n++;
	CHECK_INT(n, RETRY_BUCKET_CAPACITY / RETRY_COST);
	CHECK_INT(retry_bucket_level(&b), 0);
	CHECK(r.stopped != NULL && strstr(r.stopped, "retry budget") != NULL);
	/* An empty bucket: the next operation fails after its first attempt. */
	{
		struct retry r2;

		retry_begin(&r2, &p, &b);
		CHECK_INT(retry_next(&r2, &e), -1);
		/* It then succeeds on its own: one token back. */
		retry_success(&r2);
		CHECK_INT(retry_bucket_level(&b), RETRY_SUCCESS_REFUND);
	}
	/* The operation that took them all succeeds at last: they come back. */
	retry_success(&r);
	CHECK_INT(retry_bucket_level(&b), RETRY_BUCKET_CAPACITY);
	/* Never past the capacity. */
	retry_begin(&r, &p, &b);
	retry_success(&r);
	CHECK_INT(retry_bucket_level(&b), RETRY_BUCKET_CAPACITY);
	/* A timeout costs more. */
	err_clear(&t);
	t.curl_code = 28;
	retry_begin(&r, &p, &b);
	CHECK(retry_next(&r, &t) >= 0);
	CHECK_INT(retry_bucket_level(&b), RETRY_BUCKET_CAPACITY - RETRY_TIMEOUT_COST);
	CHECK(retry_next(&r, &e) >= 0);
	CHECK_INT(retry_bucket_level(&b),
		  RETRY_BUCKET_CAPACITY - RETRY_TIMEOUT_COST - RETRY_COST);
}

/* A fake operation for retry_run: counts its attempts, fails as told. */
struct fake_op {
	int attempts;		/* atomic */
	int fail_first;		/* this many attempts fail (-1: all) */
	int again;		/* return RETRY_AGAIN this many times first */
	int status;		/* the failure's HTTP status */
	const char *code;
};

static int fake_attempt(void *arg, struct retry *r, struct s3_error *e)
{
	struct fake_op *op = arg;
	int n = __atomic_add_fetch(&op->attempts, 1, __ATOMIC_RELAXED);

	(void)r;
	err_clear(e);
	if (op->again > 0) {
		op->again--;
		e->http_status = op->status;
		snprintf(e->code, sizeof(e->code), "%s", op->code);
		return RETRY_AGAIN;
	}
	if (op->fail_first < 0 || n <= op->fail_first) {
		e->http_status = op->status;
		snprintf(e->code, sizeof(e->code), "%s", op->code);
		snprintf(e->request_id, sizeof(e->request_id), "RID%d", n);
		return -err_to_errno(e);
	}
	return 0;
}

TEST(run_retries_what_heals_and_stops_on_what_does_not)
{
	static const struct retry_policy p = {
		.max_attempts = 5, .base_ms = 1, .max_backoff_ms = 2, .budget_ms = 10000,
	};
	struct fake_op op;
	struct s3_error e;
	struct retry r;

	/* Two throttled answers, then success. */
	memset(&op, 0, sizeof(op));
	op.fail_first = 2;
	op.status = 503;
	op.code = "SlowDown";
	retry_begin(&r, &p, NULL);
	CHECK_INT(retry_run(&r, fake_attempt, &op, &e, "GET s3://b/k"), 0);
	CHECK_INT(op.attempts, 3);
	/* Throttled for good: every attempt, then EIO (never EAGAIN). */
	memset(&op, 0, sizeof(op));
	op.fail_first = -1;
	op.status = 503;
	op.code = "SlowDown";
	retry_begin(&r, &p, NULL);
	CHECK_INT(retry_run(&r, fake_attempt, &op, &e, "GET s3://b/k"), -EIO);
	CHECK_INT(op.attempts, 5);
	CHECK_STR(e.request_id, "RID5");
	/* A denial is final at once. */
	memset(&op, 0, sizeof(op));
	op.fail_first = -1;
	op.status = 403;
	op.code = "AccessDenied";
	retry_begin(&r, &p, NULL);
	CHECK_INT(retry_run(&r, fake_attempt, &op, &e, "GET s3://b/k"), -EACCES);
	CHECK_INT(op.attempts, 1);
	/* "Again at once" is bounded, and not counted as a retry. */
	memset(&op, 0, sizeof(op));
	op.again = 100;
	op.status = 400;
	op.code = "ExpiredToken";
	retry_begin(&r, &p, NULL);
	CHECK_INT(retry_run(&r, fake_attempt, &op, &e, "GET s3://b/k"), -EKEYEXPIRED);
	CHECK_INT(op.attempts, RETRY_AGAIN_MAX + 1);
	CHECK_INT(r.attempt, 0);
	memset(&op, 0, sizeof(op));
	op.again = 1;
	op.fail_first = 0;
	op.status = 301;
	op.code = "PermanentRedirect";
	retry_begin(&r, &p, NULL);
	CHECK_INT(retry_run(&r, fake_attempt, &op, &e, "GET s3://b/k"), 0);
	CHECK_INT(op.attempts, 2);
}

static int flag_set(void *arg)
{
	return __atomic_load_n((const int *)arg, __ATOMIC_ACQUIRE);
}

static void *set_flag_later(void *arg)
{
	retry_sleep_ms(100);
	__atomic_store_n((int *)arg, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * Called off during a 5 s backoff (a reader closed, or the daemon is
 * stopping): the loop ends within a poll, with -EINTR and no second
 * attempt. It used to sleep the whole backoff, then try again.
 */
TEST(run_ends_a_backoff_that_is_called_off)
{
	static const struct retry_policy p = {
		.max_attempts = 5, .base_ms = 5000, .max_backoff_ms = 5000, .budget_ms = 60000,
	};
	struct fake_op op;
	struct s3_error e;
	struct retry r;
	long long t0;
	pthread_t t;
	int off = 0;

	/* retry_begin leaves nothing of what was there before: no call-off. */
	memset(&r, 0xa5, sizeof(r));
	retry_begin(&r, &p, NULL);
	CHECK(r.called_off == NULL && r.log == NULL && r.stopped == NULL);
	memset(&op, 0, sizeof(op));
	op.fail_first = -1;
	op.status = 503;
	op.code = "SlowDown";
	retry_begin(&r, &p, NULL);
	r.called_off = flag_set;
	r.called_off_arg = &off;
	CHECK_INT(pthread_create(&t, NULL, set_flag_later, &off), 0);
	t0 = clock_mono_ms();
	CHECK_INT(retry_run(&r, fake_attempt, &op, &e, "GET s3://b/k"), -EINTR);
	CHECK(clock_mono_ms() - t0 < 2000);
	pthread_join(t, NULL);
	CHECK_INT(op.attempts, 1);
	CHECK_INT(err_is_retryable(&e), 0); /* as a called-off exchange leaves it */
	/* Already called off: no sleep at all. */
	retry_begin(&r, &p, NULL);
	r.called_off = flag_set;
	r.called_off_arg = &off;
	CHECK_INT(retry_backoff(&r, 5000), -EINTR);
	off = 0;
	CHECK_INT(retry_backoff(&r, 10), 0);
}

struct reader {
	struct retry_bucket *b;
	struct fake_op *op;
	int rc;
};

static void *read_under_throttling(void *arg)
{
	static const struct retry_policy p = {
		.max_attempts = 5, .base_ms = 1, .max_backoff_ms = 2, .budget_ms = 20000,
	};
	struct reader *rd = arg;
	struct s3_error e;
	struct retry r;

	retry_begin(&r, &p, rd->b);
	rd->rc = retry_run(&r, fake_attempt, rd->op, &e, "GET s3://b/k");
	return NULL;
}

/*
 * 64 readers under persistent throttling: without the shared bucket they
 * send 64 x 5 = 320 requests; with it, 64 first attempts and at most
 * capacity / cost = 100 retries between them.
 */
TEST(bucket_bounds_64_readers)
{
	struct reader rd[64];
	pthread_t t[64];
	struct retry_bucket b;
	struct fake_op op;
	int i;

	memset(&op, 0, sizeof(op));
	op.fail_first = -1;
	op.status = 503;
	op.code = "SlowDown";
	retry_bucket_init(&b, 0);
	for (i = 0; i < 64; i++) {
		rd[i].b = &b;
		rd[i].op = &op;
		pthread_create(&t[i], NULL, read_under_throttling, &rd[i]);
	}
	for (i = 0; i < 64; i++) {
		pthread_join(t[i], NULL);
		CHECK_INT(rd[i].rc, -EIO);
	}
	CHECK(op.attempts <= 64 + RETRY_BUCKET_CAPACITY / RETRY_COST);
	CHECK(op.attempts >= 64 + RETRY_BUCKET_CAPACITY / RETRY_COST - 1);
	CHECK_INT(retry_bucket_level(&b), 0);
}

int main(void)
{
	log_set_level(LOG_CRIT);
	RUN(sleeps_cover_a_short_outage);
	RUN(budget_stops_retries);
	RUN(single_attempt_never_retries);
	RUN(only_the_table_decides_what_is_retried);
	RUN(attempt_timeout);
	RUN(bucket_costs_and_refunds);
	RUN(run_retries_what_heals_and_stops_on_what_does_not);
	RUN(run_ends_a_backoff_that_is_called_off);
	RUN(bucket_bounds_64_readers);
	return harness_done();
}
