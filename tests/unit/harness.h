/*
 * harness: the smallest test registry that does the job.
 *
 * A test program defines TEST(name) functions, lists them in main with RUN(),
 * and ends with `return harness_done();`. CHECK() records a failure with
 * file:line and goes on; the program exits 1 if any check failed, 77 when
 * harness_skip() was called and nothing ran. Output ends with the line
 * "N passed, M failed" that CI reads.
 */
#ifndef IRSAFS_TESTS_HARNESS_H
#define IRSAFS_TESTS_HARNESS_H

#include <stdio.h>
#include <string.h>

static int harness_failures;
static int harness_passed;
static int harness_failed;
static int harness_skipped;
static int harness_current_failed;

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			harness_failures++;                                          \
			harness_current_failed = 1;                                  \
		}                                                                    \
	} while (0)

#define CHECK_STR(a, b)                                                              \
	do {                                                                         \
		const char *check_a_ = (a), *check_b_ = (b);                         \
		if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0) {     \
			fprintf(stderr, "%s:%d: %s == %s\n  got:      \"%s\"\n  expected: \"%s\"\n", \
				__FILE__, __LINE__, #a, #b, check_a_ ? check_a_ : "(null)",  \
				check_b_ ? check_b_ : "(null)");                     \
			harness_failures++;                                          \
			harness_current_failed = 1;                                  \
		}                                                                    \
	} while (0)

#define CHECK_INT(a, b)                                                              \
	do {                                                                         \
		long long check_a_ = (long long)(a), check_b_ = (long long)(b);      \
		if (check_a_ != check_b_) {                                          \
			fprintf(stderr, "%s:%d: %s == %s: got %lld, expected %lld\n", \
				__FILE__, __LINE__, #a, #b, check_a_, check_b_);     \
			harness_failures++;                                          \
			harness_current_failed = 1;                                  \
		}                                                                    \
	} while (0)

#define TEST(name) static void test_##name(void)

#define RUN(name)                                                                    \
	do {                                                                         \
		harness_current_failed = 0;                                          \
		test_##name();                                                       \
		if (harness_current_failed)                                          \
			harness_failed++;                                            \
		else                                                                 \
			harness_passed++;                                            \
		printf("%s: %s\n", harness_current_failed ? "FAIL" : "ok", #name);   \
	} while (0)

static inline void harness_skip(const char *why)
{
	printf("SKIP: %s\n", why);
	harness_skipped++;
}

static inline int harness_done(void)
{
	if (harness_skipped && !harness_passed && !harness_failed) {
		printf("0 passed, 0 failed, %d skipped\n", harness_skipped);
		return 77;
	}
	printf("%d passed, %d failed", harness_passed, harness_failed);
	if (harness_skipped)
		printf(", %d skipped", harness_skipped);
	printf("\n");
	return harness_failures ? 1 : 0;
}

#endif
