#include "http/retry.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/rand.h>

#include "core/strutil.h"

void retry_begin(struct retry *r, const struct retry_policy *p)
{
	r->policy = p;
	r->attempt = 0;
	r->start_ms = clock_mono_ms();
}

long retry_remaining_ms(const struct retry *r)
{
	long long left = r->policy->budget_ms - (clock_mono_ms() - r->start_ms);

	return left > 0 ? (long)left : 0;
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

long retry_next(struct retry *r)
{
	long cap, sleep_ms;
	int shift;

	r->attempt++;
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
	if (sleep_ms + 100 >= retry_remaining_ms(r))
		return -1;
	return sleep_ms;
}

void retry_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}
