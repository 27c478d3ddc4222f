/*
 * retry: the one retry loop of irsafs, its backoff, and the shared retry
 * budget.
 *
 * Every remote call that may be retried (an S3 request, an STS call, a
 * container-credentials or IMDS request) runs through retry_run(): it calls
 * the caller's attempt function, asks the one table in core/err.c whether the
 * failure may heal (err_is_retryable), sleeps a jittered, growing delay, and
 * stops when the attempts are spent, when the next sleep would overrun the
 * operation's time budget, or when the shared token bucket says the mount has
 * retried enough. So no user-visible operation waits longer than its budget
 * plus one request timeout, and what counts as retryable is decided in one
 * place.
 *
 * The sleep is "equal jitter" (uniform in [cap/2, cap]): many readers hit by
 * the same fault do not retry in lockstep, and five attempts still cover at
 * least base * (2^4 - 1) / 2 ms of outage.
 *
 * The token bucket (struct retry_bucket) is the AWS SDKs' "standard" retry
 * mode: every retry takes tokens (5, or 10 after a timeout) from a bucket
 * shared by all threads, a success gives back what its own retries took (or
 * 1 token when it needed none), and when the bucket is empty a failure is
 * final at once. 64 readers under throttling then cost S3 one request each,
 * not five, until requests succeed again.
 *
 * A struct retry lives on the caller's stack and belongs to one operation; a
 * struct retry_bucket is shared and thread-safe (atomics only).
 */
#ifndef IRSAFS_HTTP_RETRY_H
#define IRSAFS_HTTP_RETRY_H

struct s3_error;
struct log_fields;

#define RETRY_BUCKET_CAPACITY 500	/* tokens: 100 plain retries */
#define RETRY_COST 5			/* tokens a retry takes */
#define RETRY_TIMEOUT_COST 10		/* ... after a timeout */
#define RETRY_SUCCESS_REFUND 1		/* a success that needed no retry */

struct retry_bucket {
	long tokens;			/* atomic */
	long capacity;
};

/* capacity 0: RETRY_BUCKET_CAPACITY. Starts full. */
void retry_bucket_init(struct retry_bucket *b, long capacity);
long retry_bucket_level(const struct retry_bucket *b);

struct retry_policy {
	int max_attempts;	/* total attempts, >= 1 */
	long base_ms;		/* first backoff cap */
	long max_backoff_ms;	/* largest single sleep */
	long budget_ms;		/* whole operation: attempts, sleeps and waits */
	long attempt_ms;	/* one attempt at most (0: the budget) */
};

struct retry {
	const struct retry_policy *policy;
	struct retry_bucket *bucket;	/* NULL: no shared budget */
	int attempt;		/* failed attempts so far */
	int again;		/* attempts repeated at once (RETRY_AGAIN) */
	long held;		/* tokens this operation's retries took */
	long long start_ms;	/* monotonic */
	const char *stopped;	/* why retries stopped early, for the log; NULL */
	/* Set by the caller after retry_begin (defaults: none): */
	int op;			/* metrics op (core/metrics.h) retries count under */
	const struct log_fields *log;	/* op, bucket, key of the retry loop's lines */
	/*
	 * Asked during each backoff sleep, every RETRY_POLL_MS: 1 ends the
	 * loop at once with -EINTR and e as a called-off attempt leaves it,
	 * with no further attempt and no log line (the caller called the
	 * operation off, or its client is closing).
	 */
	int (*called_off)(void *arg);
	void *called_off_arg;
};

#define RETRY_POLL_MS 50

void retry_begin(struct retry *r, const struct retry_policy *p, struct retry_bucket *b);

/* Milliseconds left in the budget (never negative). */
long retry_remaining_ms(const struct retry *r);

/* When the budget ends, on clock_mono_ms()'s clock. */
long long retry_deadline_ms(const struct retry *r);

/*
 * The timeout for the next attempt: what is left of the budget, at most
 * policy->attempt_ms, and at least 1 s (an attempt needs some time).
 */
long retry_attempt_ms(const struct retry *r);

/*
 * Record a failed attempt whose error is e. Returns the sleep in ms before
 * the next attempt (the caller sleeps), or -1 when the operation must give
 * up: e is not retryable, the attempts or the time are spent, or the shared
 * bucket has no tokens left (r->stopped then says which).
 */
long retry_next(struct retry *r, const struct s3_error *e);

/* The operation succeeded: hand back to the bucket what it took. */
void retry_success(struct retry *r);

/* Sleep for ms milliseconds (restarting after signals). */
void retry_sleep_ms(long ms);

/*
 * Sleep for ms milliseconds unless r->called_off says 1 first (asked every
 * RETRY_POLL_MS): 0 after the whole sleep, -EINTR when called off.
 */
int retry_backoff(const struct retry *r, long ms);

/*
 * One attempt of an operation. Returns 0 on success, RETRY_AGAIN to run
 * another attempt at once without counting it as a retry (the attempt fixed
 * something: it followed a region, corrected the clock, or refreshed
 * rejected credentials; at most RETRY_AGAIN_MAX times), or a negative errno
 * with e filled (e's class decides whether to retry).
 */
#define RETRY_AGAIN 1
#define RETRY_AGAIN_MAX 3
typedef int (*retry_attempt_fn)(void *arg, struct retry *r, struct s3_error *e);

/*
 * The retry loop: run attempt until it succeeds, fails for good, or the
 * budget says stop. Every retry is logged at warning level and the final
 * failure of a retryable error at error level, each line naming what (e.g.
 * "GET s3://bucket/key bytes=0-99"), the error and its request ids, with
 * r->log's fields plus the answer's (status, code, request ids, the time so
 * far; errno on the final line). Retries, throttled answers and give-ups are
 * counted under r->op. Returns 0 or the last attempt's negative errno; e
 * holds the last error.
 */
int retry_run(struct retry *r, retry_attempt_fn attempt, void *arg, struct s3_error *e,
	      const char *what);

#endif
