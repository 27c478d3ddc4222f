/*
 * retry: bounded, jittered exponential backoff inside a time budget.
 *
 * A caller runs one operation as a loop of attempts; after a retryable
 * failure it asks retry_next() how long to sleep. The answer is "stop" when
 * the attempts are spent or when the sleep would overrun the operation's
 * budget, so no user-visible operation ever waits longer than its budget plus
 * one request timeout. The sleep is "equal jitter" (uniform in [cap/2, cap]) so
 * that many readers hit by the same fault do not retry in lockstep.
 * A struct retry lives on the caller's stack; retry_next is thread-safe.
 */
#ifndef IRSAFS_HTTP_RETRY_H
#define IRSAFS_HTTP_RETRY_H

struct retry_policy {
	int max_attempts;	/* total attempts, >= 1 */
	long base_ms;		/* first backoff cap */
	long max_backoff_ms;	/* largest single sleep */
	long budget_ms;		/* whole operation, attempts and sleeps */
};

struct retry {
	const struct retry_policy *policy;
	int attempt;		/* attempts made so far */
	long long start_ms;	/* monotonic */
};

void retry_begin(struct retry *r, const struct retry_policy *p);

/* Milliseconds left in the budget (never negative). */
long retry_remaining_ms(const struct retry *r);

/*
 * Record a failed attempt. Returns the sleep in ms before the next attempt
 * (the caller sleeps), or -1 when the operation must give up.
 */
long retry_next(struct retry *r);

/* Sleep for ms milliseconds (restarting after signals). */
void retry_sleep_ms(long ms);

#endif
