#include "http/retry.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/rand.h>

#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/strutil.h"

void retry_bucket_init(struct retry_bucket *b, long capacity)
{
	b->capacity = capacity > 0 ? capacity : RETRY_BUCKET_CAPACITY;
	b->tokens = b->capacity;
}

long retry_bucket_level(const struct retry_bucket *b)
{
	return __atomic_load_n(&b->tokens, __ATOMIC_RELAXED);
}

/* Take n tokens if there are that many. 1 taken, 0 not. */
static int bucket_take(struct retry_bucket *b, long n)
{
	long have = __atomic_load_n(&b->tokens, __ATOMIC_RELAXED);

	do {
		if (have < n)
			return 0;
	} while (!__atomic_compare_exchange_n(&b->tokens, &have, have - n, 1, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	return 1;
}

static void bucket_give(struct retry_bucket *b, long n)
{
	long have = __atomic_load_n(&b->tokens, __ATOMIC_RELAXED), want;

	do {
		want = have + n > b->capacity ? b->capacity : have + n;
		if (want == have)
			return;
	} while (!__atomic_compare_exchange_n(&b->tokens, &have, want, 1, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
}

void retry_begin(struct retry *r, const struct retry_policy *p, struct retry_bucket *b)
{
	/* Every field, the caller's optional ones too: r may be stack garbage. */
	*r = (struct retry){
		.policy = p, .bucket = b, .start_ms = clock_mono_ms(), .op = METRICS_OP_NONE,
	};
}

long retry_remaining_ms(const struct retry *r)
{
	long long left = r->policy->budget_ms - (clock_mono_ms() - r->start_ms);

	return left > 0 ? (long)left : 0;
}

long long retry_deadline_ms(const struct retry *r)
{
	return r->start_ms + r->policy->budget_ms;
}

long retry_attempt_ms(const struct retry *r)
{
	long t = retry_remaining_ms(r);

	if (r->policy->attempt_ms > 0 && t > r->policy->attempt_ms)
		t = r->policy->attempt_ms;
	return t < 1000 ? 1000 : t;
}

static long jitter(long cap)
{
	unsigned int x = 0;

	if (cap <= 0)
		return 0;
	if (RAND_bytes((unsigned char *)&x, sizeof(x)) != 1)
		x = (unsigned int)rand();
	return (long)(x % (unsigned long)(cap + 1));
}

long retry_next(struct retry *r, const struct s3_error *e)
{
	long cap, sleep_ms, cost;
	int shift;

	r->attempt++;
	if (e && !err_is_retryable(e))
		return -1;
	if (r->attempt >= r->policy->max_attempts)
		return -1;
	shift = r->attempt - 1 < 16 ? r->attempt - 1 : 16;
	cap = r->policy->base_ms << shift;
	if (cap > r->policy->max_backoff_ms)
		cap = r->policy->max_backoff_ms;
	/* Half fixed, half random: retries still spread out, but five attempts
	 * always cover at least base * (2^4 - 1) / 2 ms of outage. */
	sleep_ms = cap / 2 + jitter(cap - cap / 2);
	/* Keep some budget for the attempt itself. */
	if (sleep_ms + 100 >= retry_remaining_ms(r)) {
		r->stopped = "the operation's time budget is spent";
		return -1;
	}
	cost = e && err_is_timeout(e) ? RETRY_TIMEOUT_COST : RETRY_COST;
	if (r->bucket && !bucket_take(r->bucket, cost)) {
		r->stopped = "no retry: the mount's shared retry budget is spent, requests keep "
			     "failing";
		return -1;
	}
	r->held += cost;
	return sleep_ms;
}

void retry_success(struct retry *r)
{
	if (r->bucket)
		bucket_give(r->bucket, r->held ? r->held : RETRY_SUCCESS_REFUND);
	r->held = 0;
}

void retry_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int retry_backoff(const struct retry *r, long ms)
{
	long slice;

	if (!r->called_off) {
		retry_sleep_ms(ms);
		return 0;
	}
	while (ms > 0) {
		if (r->called_off(r->called_off_arg))
			return -EINTR;
		slice = ms < RETRY_POLL_MS ? ms : RETRY_POLL_MS;
		retry_sleep_ms(slice);
		ms -= slice;
	}
	return r->called_off(r->called_off_arg) ? -EINTR : 0;
}

int retry_run(struct retry *r, retry_attempt_fn attempt, void *arg, struct s3_error *e,
	      const char *what)
{
	struct log_fields f = { 0 }, *lf;
	char desc[320], ids[256];
	long sleep_ms;
	int rc;

	for (;;) {
		rc = attempt(arg, r, e);
		if (rc == 0) {
			retry_success(r);
			return 0;
		}
		if (rc == RETRY_AGAIN) {
			if (++r->again <= RETRY_AGAIN_MAX && retry_remaining_ms(r) > 0)
				continue;
			/* The fix did not take: fail with what the last answer said. */
			rc = err_to_errno(e) ? -err_to_errno(e) : -EIO;
			return rc;
		}
		if (!err_is_retryable(e))
			return rc;
		if (err_classify(e) == ERR_THROTTLED)
			metrics_throttled(r->op);
		sleep_ms = retry_next(r, e);
		err_describe(e, desc, sizeof(desc));
		err_ids(e, ids, sizeof(ids));
		lf = r->log ? &f : NULL;
		if (r->log) {
			f = *r->log;
			err_log_fields(e, &f);
			f.latency_us = (clock_mono_ms() - r->start_ms) * 1000;
		}
		if (sleep_ms < 0) {
			metrics_gave_up(r->op);
			log_op(LOG_ERR, lf, "%s -> %s (gave up after %d attempt%s%s%s)%s", what,
			       desc, r->attempt, r->attempt == 1 ? "" : "s", r->stopped ? ": " : "",
			       r->stopped ? r->stopped : "", ids);
			return rc;
		}
		metrics_retry(r->op);
		f.err = 0; /* not failed yet: a retry line carries no errno */
		log_op(LOG_WARNING, lf, "%s -> %s (attempt %d/%d, retry in %ld ms)%s", what, desc,
		       r->attempt, r->policy->max_attempts, sleep_ms, ids);
		if (retry_backoff(r, sleep_ms) != 0) {
			/* As if the next attempt had been called off (http_perform). */
			err_clear(e);
			e->curl_code = CURLE_ABORTED_BY_CALLBACK;
			return -EINTR;
		}
	}
}
