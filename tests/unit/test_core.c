/* Unit tests for core/: buf, strutil, err (the errno table). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/strutil.h"
#include "harness.h"

TEST(buf_caps_growth)
{
	struct buf b;

	buf_init(&b, 8);
	CHECK_INT(buf_puts(&b, "12345678"), 0);
	CHECK_INT(buf_puts(&b, "9"), -EMSGSIZE);
	CHECK_INT(b.len, 8);
	CHECK_STR(b.data, "12345678");
	buf_reset(&b);
	CHECK_INT(buf_printf(&b, "%d-%s", 42, "x"), 0);
	CHECK_STR(b.data, "42-x");
	buf_cleanup(&b);
}

TEST(uri_encode_s3_rules)
{
	static const struct {
		const char *in;
		int keep_slash;
		const char *out;
	} cases[] = {
		{ "dir/a b+c&d=\xc3\xa9.txt", 1, "dir/a%20b%2Bc%26d%3D%C3%A9.txt" },
		{ "dir/a", 0, "dir%2Fa" },
		{ "A-Z_a.z~09", 1, "A-Z_a.z~09" },
		{ "a//b", 1, "a//b" },
		{ "$*?", 1, "%24%2A%3F" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;

		buf_init(&b, 1024);
		CHECK_INT(uri_encode(&b, cases[i].in, strlen(cases[i].in), cases[i].keep_slash), 0);
		CHECK_STR(b.data, cases[i].out);
		buf_cleanup(&b);
	}
}

TEST(uri_decode_rejects_bad_escapes)
{
	char a[] = "odd%2Fa%20b%2Bc", b[] = "bad%2", c[] = "nul%00x", d[] = "a+b", e[] = "%zz";

	CHECK_INT(uri_decode(a, 0), 9);
	CHECK_STR(a, "odd/a b+c");
	CHECK_INT(uri_decode(b, 0), -EINVAL);
	CHECK_INT(uri_decode(c, 0), -EINVAL);
	CHECK_INT(uri_decode(d, 1), 3);
	CHECK_STR(d, "a b");
	CHECK_INT(uri_decode(e, 0), -EINVAL);
}

TEST(times)
{
	struct timespec ts;
	time_t t;
	char out[21], amz[17];

	CHECK_INT(time_parse_iso8601("2026-11-28T16:00:00.123456789Z", &ts), 0);
	CHECK_INT(ts.tv_sec, 1795881600);
	CHECK_INT(ts.tv_nsec, 123456789);
	CHECK_INT(time_parse_iso8601("2026-11-28T16:00:00Z", &ts), 0);
	CHECK_INT(time_parse_iso8601("2026-11-28 16:00", &ts), -EINVAL);
	CHECK_INT(time_parse_iso8601("", &ts), -EINVAL);
	CHECK_INT(time_parse_rfc1123("Sat, 28 Nov 2026 16:00:00 GMT", &t), 0);
	CHECK_INT(t, 1795881600);
	time_format_iso8601(t, out);
	CHECK_STR(out, "2026-11-28T16:00:00Z");
	time_format_amz(t, amz);
	CHECK_STR(amz, "20261128T160000Z");
}

TEST(content_range)
{
	CHECK_INT(content_range_total("bytes 0-131071/1073741824"), 1073741824);
	CHECK_INT(content_range_total("bytes 0-4/5"), 5);
	CHECK_INT(content_range_total("bytes 0-0/1"), 1);
	CHECK_INT(content_range_total("bytes 1-4/5"), -1);	/* not from 0 */
	CHECK_INT(content_range_total("bytes 0-4/*"), -1);
	CHECK_INT(content_range_total("bytes */0"), -1);	/* a 416's */
	CHECK_INT(content_range_total("bytes 0-9/5"), -1);	/* past the end */
	CHECK_INT(content_range_total("bytes 0-4/5 "), -1);
	CHECK_INT(content_range_total("bytes 0--4/5"), -1);
	CHECK_INT(content_range_total("bytes 0-4/99999999999999999999"), -1);
	CHECK_INT(content_range_total(""), -1);
	CHECK_INT(content_range_total("items 0-4/5"), -1);
}

TEST(content_range_parse)
{
	long long a, b, t;

	CHECK_INT(content_range_parse("bytes 100-149/1000", &a, &b, &t), 0);
	CHECK(a == 100 && b == 149 && t == 1000);
	CHECK_INT(content_range_parse("bytes */1000", &a, &b, &t), 0);
	CHECK(a == -1 && b == -1 && t == 1000);
	CHECK_INT(content_range_parse("bytes 5-4/10", &a, &b, &t), -EINVAL);
	CHECK_INT(content_range_parse("bytes 0-10/10", &a, &b, &t), -EINVAL);
	CHECK_INT(content_range_parse("bytes 0-4/*", &a, &b, &t), -EINVAL);
	CHECK_INT(content_range_parse("bytes -1-4/10", &a, &b, &t), -EINVAL);
	CHECK_INT(content_range_parse("bytes 0-4/10\r", &a, &b, &t), -EINVAL);
	CHECK_INT(content_range_parse("bytes 0-4/1234567890123456789", &a, &b, &t), -EINVAL);
	CHECK_INT(content_range_parse("bytes=0-4/10", &a, &b, &t), -EINVAL);
}

TEST(etags)
{
	CHECK(etag_valid("\"d41d8cd98f00b204e9800998ecf8427e\""));
	CHECK(etag_valid("\"d41d8cd98f00b204e9800998ecf8427e-12\""));
	CHECK(etag_valid("W/\"x\""));
	CHECK(etag_valid("\"\""));
	CHECK(!etag_valid("d41d8"));
	CHECK(!etag_valid("\"a\rX-Injected: 1\""));
	CHECK(!etag_valid("\"a b\""));
	CHECK(!etag_valid("\"a\"b\""));
	CHECK(!etag_valid("\"\xc3\xa9\""));
	CHECK(!etag_valid(""));
	CHECK(etag_sendable("\"abc\""));
	CHECK(etag_sendable("abc")); /* a listing may drop the quotes */
	CHECK(!etag_sendable(""));
	CHECK(!etag_sendable("\"a\r\nX: 1\""));
	CHECK(!etag_sendable("\"a b\""));
}

TEST(trim)
{
	char s[] = " \t token\n\n", e[] = "  ";

	CHECK_STR(str_trim(s), "token");
	CHECK_STR(str_trim(e), "");
}

/* The errno contract: one row per promise in the README. */
TEST(errno_table)
{
	static const struct {
		int status;
		int curl;
		const char *code;
		int want;
	} cases[] = {
		{ 403, 0, "AccessDenied", EACCES },
		{ 403, 0, "", EACCES },
		{ 404, 0, "NoSuchKey", ENOENT },
		{ 404, 0, "", ENOENT },
		{ 404, 0, "NoSuchBucket", ENOENT },
		{ 412, 0, "PreconditionFailed", ESTALE },
		{ 416, 0, "InvalidRange", ENXIO },
		{ 503, 0, "SlowDown", EAGAIN },
		{ 503, 0, "", EAGAIN }, /* a throttled HEAD has no body to name SlowDown */
		{ 200, 0, "SlowDown", EAGAIN },
		{ 500, 0, "InternalError", EIO },
		{ 502, 0, "", EIO },
		{ 0, 7, "", EIO },
		{ 0, 28, "", ETIMEDOUT },
		{ 403, 0, "InvalidObjectState", EACCES },
		{ 400, 0, "ExpiredToken", EKEYEXPIRED },
		{ 403, 0, "SignatureDoesNotMatch", EKEYEXPIRED },
		{ 200, 0, "", 0 },
		{ 206, 0, "", 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct s3_error e;

		err_clear(&e);
		e.http_status = cases[i].status;
		e.curl_code = cases[i].curl;
		snprintf(e.code, sizeof(e.code), "%s", cases[i].code);
		if (err_to_errno(&e) != cases[i].want)
			fprintf(stderr, "case %zu: %d %s\n", i, cases[i].status, cases[i].code);
		CHECK_INT(err_to_errno(&e), cases[i].want);
	}
}

TEST(retryable)
{
	struct s3_error e;

	err_clear(&e);
	e.http_status = 503;
	snprintf(e.code, sizeof(e.code), "SlowDown");
	CHECK(err_is_retryable(&e));
	err_clear(&e);
	e.http_status = 403;
	CHECK(!err_is_retryable(&e));
	err_clear(&e);
	e.curl_code = 56;
	CHECK(err_is_retryable(&e));
	err_clear(&e);
	e.http_status = 404;
	CHECK(!err_is_retryable(&e));
}

int main(void)
{
	RUN(buf_caps_growth);
	RUN(uri_encode_s3_rules);
	RUN(uri_decode_rejects_bad_escapes);
	RUN(times);
	RUN(content_range);
	RUN(content_range_parse);
	RUN(etags);
	RUN(trim);
	RUN(errno_table);
	RUN(retryable);
	return harness_done();
}
