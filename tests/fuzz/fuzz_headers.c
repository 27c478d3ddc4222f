/*
 * fuzz_headers: the parsers of S3 response header values: Content-Range
 * (the object's size a lookup's GET reports, and the strict parse every
 * ranged GET is checked with), ETags, Last-Modified (RFC 1123) and ISO 8601
 * times. Invariants: no crash; a size is -1 or at least 1; a
 * parsed time falls in years 0 to 9999 (four-digit years; "0226-..." is a
 * valid, long-past date).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/strutil.h"

/* 0000-01-01 and 10000-01-01, in seconds since 1970. */
#define YEAR_0 (-62167219200LL)
#define YEAR_10000 (253402300800LL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct timespec ts;
	char *s = malloc(size + 1);
	long long total;
	time_t t;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';	/* header values reach the parsers as C strings */
	total = content_range_total(s);
	if (total != -1 && total < 1)
		abort();
	{
		long long a, b, t;

		/* A parsed range lies inside its total; a 416's has none. */
		if (content_range_parse(s, &a, &b, &t) == 0 &&
		    (t < 0 || (a >= 0 && (b < a || b >= t)) || (a < 0 && (a != -1 || b != -1))))
			abort();
	}
	/* A valid ETag never holds what could split a header. */
	if (etag_valid(s) && strpbrk(s, "\r\n"))
		abort();
	if (time_parse_rfc1123(s, &t) == 0 && (t < YEAR_0 || t >= YEAR_10000))
		abort();
	if (time_parse_iso8601(s, &ts) == 0 && (ts.tv_sec < YEAR_0 || ts.tv_sec >= YEAR_10000))
		abort();
	free(s);
	return 0;
}
