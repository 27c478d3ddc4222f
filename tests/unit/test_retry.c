/* Unit tests for http/retry.c: the backoff schedule and the budget. */
#include "http/retry.h"
#include "harness.h"

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
	int run;

	for (run = 0; run < 200; run++) {
		struct retry r;
		long total = 0, s, cap = 100;
		int n = 0;

		retry_begin(&r, &p);
		while ((s = retry_next(&r)) >= 0) {
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
	struct retry r;
	int i;

	/* Every sleep is at least 500 ms, which with the attempt's 100 ms never fits 500 ms. */
	for (i = 0; i < 100; i++) {
		retry_begin(&r, &p);
		CHECK_INT(retry_next(&r), -1);
	}
}

TEST(single_attempt_never_retries)
{
	static const struct retry_policy p = {
		.max_attempts = 1, .base_ms = 10, .max_backoff_ms = 10, .budget_ms = 10000,
	};
	struct retry r;

	retry_begin(&r, &p);
	CHECK_INT(retry_next(&r), -1);
}

int main(void)
{
	RUN(sleeps_cover_a_short_outage);
	RUN(budget_stops_retries);
	RUN(single_attempt_never_retries);
	return harness_done();
}
