/*
 * fuzz_headers: the parsers of S3 response header values: Content-Range
 * (the object's size a lookup's GET reports), Last-Modified (RFC 1123) and
 * ISO 8601 times. Invariants: no crash; a size is -1 or at least 1; a
 * parsed time is not before 1970.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/strutil.h"

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
	if (time_parse_rfc1123(s, &t) == 0 && t < 0)
		abort();
	if (time_parse_iso8601(s, &ts) == 0 && ts.tv_sec < 0)
		abort();
	free(s);
	return 0;
}
