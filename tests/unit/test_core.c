/* Unit tests for core/: buf, strutil, err (the errno table), the log sink, redact. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/redact.h"
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

/* A deadline ms from now: normalised, and not before now + ms. */
TEST(clock_real_in_ms_is_normalised)
{
	static const long ms[] = { 0, 10, 999, 1000, 2500 };
	struct timespec before, ts;
	long long b, t;
	size_t i;

	for (i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
		clock_gettime(CLOCK_REALTIME, &before);
		clock_real_in_ms(&ts, ms[i]);
		CHECK(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
		b = (long long)before.tv_sec * 1000000000LL + before.tv_nsec;
		t = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
		CHECK(t >= b + ms[i] * 1000000LL);
	}
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
		enum err_class cls;
	} cases[] = {
		{ 403, 0, "AccessDenied", EACCES, ERR_DENIED },
		{ 403, 0, "", EACCES, ERR_DENIED },
		{ 404, 0, "NoSuchKey", ENOENT, ERR_NOT_FOUND },
		{ 404, 0, "", ENOENT, ERR_NOT_FOUND },
		{ 404, 0, "NoSuchBucket", ENOENT, ERR_NO_BUCKET },
		{ 412, 0, "PreconditionFailed", ESTALE, ERR_PRECONDITION },
		{ 416, 0, "InvalidRange", ENXIO, ERR_RANGE },
		/* Throttling, once retries are spent, is EIO like any server fault: never EAGAIN. */
		{ 503, 0, "SlowDown", EIO, ERR_THROTTLED },
		{ 503, 0, "", EIO, ERR_THROTTLED }, /* a throttled HEAD has no body to name SlowDown */
		{ 200, 0, "SlowDown", EIO, ERR_THROTTLED },
		{ 429, 0, "", EIO, ERR_THROTTLED },
		{ 400, 0, "Throttling", EIO, ERR_THROTTLED },
		{ 500, 0, "InternalError", EIO, ERR_SERVER },
		{ 502, 0, "", EIO, ERR_SERVER },
		{ 400, 0, "IDPCommunicationError", EIO, ERR_SERVER },
		{ 0, 7, "", EIO, ERR_TRANSPORT },
		{ 0, 28, "", ETIMEDOUT, ERR_TIMEOUT },
		{ 0, 60, "", EIO, ERR_TLS },	/* CURLE_PEER_FAILED_VERIFICATION */
		{ 0, 77, "", EIO, ERR_TLS },	/* CURLE_SSL_CACERT_BADFILE */
		/* Archived: EACCES, but its own class (fs/ does not mark the node denied). */
		{ 403, 0, "InvalidObjectState", EACCES, ERR_ARCHIVED },
		/* The session is over: a refresh heals it (s3.c tries one). */
		{ 400, 0, "ExpiredToken", EKEYEXPIRED, ERR_CREDS_EXPIRED },
		{ 403, 0, "ExpiredToken", EKEYEXPIRED, ERR_CREDS_EXPIRED },
		{ 400, 0, "InvalidToken", EKEYEXPIRED, ERR_CREDS_EXPIRED },
		{ 400, 0, "TokenRefreshRequired", EKEYEXPIRED, ERR_CREDS_EXPIRED },
		{ 0, 0, "NoCredentials", EKEYEXPIRED, ERR_CREDS_EXPIRED },
		/* Not expired: rejected. */
		{ 403, 0, "InvalidAccessKeyId", EKEYREJECTED, ERR_CREDS_REJECTED },
		{ 403, 0, "SignatureDoesNotMatch", EKEYREJECTED, ERR_CREDS_REJECTED },
		{ 403, 0, "InvalidClientTokenId", EKEYREJECTED, ERR_CREDS_REJECTED },
		{ 301, 0, "PermanentRedirect", EIO, ERR_REDIRECT },
		{ 307, 0, "", EIO, ERR_REDIRECT },
		{ 400, 0, "AuthorizationHeaderMalformed", EIO, ERR_BAD_REQUEST }, /* no region */
		{ 200, 0, "", 0, ERR_OK },
		{ 206, 0, "", 0, ERR_OK },
		/* Ours: an answer not to the request, or larger than its cap. */
		{ 206, 0, "MalformedReply", EIO, ERR_PROTOCOL },
		{ 200, 0, "ReplyTooLarge", EIO, ERR_TOO_LARGE },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct s3_error e;

		err_clear(&e);
		e.http_status = cases[i].status;
		e.curl_code = cases[i].curl;
		snprintf(e.code, sizeof(e.code), "%s", cases[i].code);
		if (err_to_errno(&e) != cases[i].want || err_classify(&e) != cases[i].cls)
			fprintf(stderr, "case %zu: %d %s\n", i, cases[i].status, cases[i].code);
		CHECK_INT(err_to_errno(&e), cases[i].want);
		CHECK_INT(err_classify(&e), cases[i].cls);
	}
}

/*
 * No answer from any server, whatever its status, code or transport error,
 * becomes an errno that applications take for "no data yet" or "call again".
 */
TEST(never_eagain_nor_eintr)
{
	static const char *const codes[] = {
		"", "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
		"TooManyRequestsException", "ServiceUnavailable", "InternalError", "RequestTimeout",
		"ExpiredToken", "InvalidObjectState", "SlowDownRead", "Busy",
	};
	int status, curl;
	size_t i;

	for (status = 0; status < 600; status++) {
		for (curl = 0; curl < 100; curl += status ? 100 : 1) {
			for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
				struct s3_error e;
				int n;

				err_clear(&e);
				e.http_status = status;
				e.curl_code = curl;
				snprintf(e.code, sizeof(e.code), "%s", codes[i]);
				n = err_to_errno(&e);
				if (n == EAGAIN || n == EWOULDBLOCK || n == EINTR) {
					fprintf(stderr, "%d/%d/%s gives %d\n", status, curl,
						codes[i], n);
					CHECK(0);
				}
			}
		}
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
	/* STS could not reach the IdP: transient, for every caller alike. */
	err_clear(&e);
	e.http_status = 400;
	snprintf(e.code, sizeof(e.code), "IDPCommunicationError");
	CHECK(err_is_retryable(&e));
	/* An untrusted certificate stays untrusted: no retry. */
	err_clear(&e);
	e.curl_code = 60;
	CHECK(!err_is_retryable(&e));
	/* Neither expired nor rejected credentials heal by sending the same again. */
	err_clear(&e);
	e.http_status = 400;
	snprintf(e.code, sizeof(e.code), "ExpiredToken");
	CHECK(!err_is_retryable(&e));
	err_clear(&e);
	e.http_status = 403;
	snprintf(e.code, sizeof(e.code), "InvalidObjectState");
	CHECK(!err_is_retryable(&e));
	err_clear(&e);
	e.curl_code = 28;
	CHECK(err_is_timeout(&e));
	e.curl_code = 7;
	CHECK(!err_is_timeout(&e));
}

/* Texts for logs: a TLS error names AWS_CA_BUNDLE; the request ids end a line. */
TEST(describe_and_ids)
{
	char out[512], ids[256];
	struct s3_error e;

	err_clear(&e);
	e.curl_code = 60;
	err_describe(&e, out, sizeof(out));
	CHECK(strstr(out, "AWS_CA_BUNDLE") != NULL);
	CHECK(strstr(out, "TLS") != NULL);
	err_clear(&e);
	CHECK_STR(err_ids(&e, ids, sizeof(ids)), "");
	err_set_ids(&e, "4442587FB7D0A2F9", "vlR7PnpV2Ce81puvqLnwPe1cxTQMfp1VVEmW2zwFqQ4=");
	CHECK_STR(err_ids(&e, ids, sizeof(ids)),
		  " [request id 4442587FB7D0A2F9, id-2 vlR7PnpV2Ce81puvqLnwPe1cxTQMfp1VVEmW2zwFqQ4=]");
	/* The body's ids (already set) win over the headers'. */
	err_set_ids(&e, "other", "other");
	CHECK_STR(e.request_id, "4442587FB7D0A2F9");
	err_clear(&e);
	err_set_ids(&e, "", "only-id-2");
	CHECK_STR(err_ids(&e, ids, sizeof(ids)), " [id-2 only-id-2]");
	/* The description never carries the ids: a text logged once stays one text. */
	err_clear(&e);
	e.http_status = 403;
	snprintf(e.code, sizeof(e.code), "AccessDenied");
	snprintf(e.request_id, sizeof(e.request_id), "RID");
	err_describe(&e, out, sizeof(out));
	CHECK_STR(out, "403 AccessDenied");
	/* Our own code (no server answered): no status 0 in front of it. */
	err_clear(&e);
	snprintf(e.code, sizeof(e.code), "NoCredentials");
	snprintf(e.message, sizeof(e.message), "STS did not answer");
	err_describe(&e, out, sizeof(out));
	CHECK_STR(out, "NoCredentials (STS did not answer)");
}

/* What log_msg wrote to stderr: stderr goes to a temporary file meanwhile. */
static char *capture_log(enum log_format f, int level, const char *msg)
{
	static char out[16384];
	FILE *tmp = tmpfile();
	int saved = dup(STDERR_FILENO);
	ssize_t n;

	if (!tmp || saved < 0)
		return NULL;
	log_set_format(f);
	dup2(fileno(tmp), STDERR_FILENO);
	log_msg(level, "%s", msg);
	dup2(saved, STDERR_FILENO);
	close(saved);
	log_set_format(LOG_FORMAT_TEXT);
	n = pread(fileno(tmp), out, sizeof(out) - 1, 0);
	fclose(tmp);
	out[n > 0 ? n : 0] = '\0';
	return out;
}

static size_t count_char(const char *s, char c)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == c;
	return n;
}

TEST(log_escape_text)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "plain ascii", "plain ascii" },
		{ "x\nirsafs: error: forged", "x\\nirsafs: error: forged" },
		{ "cr\rtab\tnul-less\x01\x1f del\x7f", "cr\\rtab\\tnul-less\\x01\\x1f del\\x7f" },
		{ "esc-\x1b[31mred", "esc-\\x1b[31mred" },
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" },
		{ "c1-\xc2\x9b" "1m-\xc2\x85", "c1-\\u009b1m-\\u0085" },
		{ "nbsp-\xc2\xa0", "nbsp-\xc2\xa0" },
		{ "bad-\xff\xfe", "bad-\\xff\\xfe" },
		{ "cut-\xc3", "cut-\\xc3" },
		{ "overlong-\xc0\xaf-\xe0\x80\xaf", "overlong-\\xc0\\xaf-\\xe0\\x80\\xaf" },
		{ "surrogate-\xed\xa0\x80", "surrogate-\\xed\\xa0\\x80" },
		{ "big-\xf4\x90\x80\x80", "big-\\xf4\\x90\\x80\\x80" },
		{ "back\\slash \"q\"", "back\\slash \"q\"" },
	};
	char out[256];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_INT(log_escape(out, sizeof(out), cases[i].in, 0), strlen(cases[i].out));
		CHECK_STR(out, cases[i].out);
	}
}

TEST(log_escape_json)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "q\"b\\", "q\\\"b\\\\" },
		{ "x\nirsafs: error: forged", "x\\nirsafs: error: forged" },
		{ "\x01\x1b\x7f", "\\u0001\\u001b\\u007f" },
		{ "c1-\xc2\x9b", "c1-\\u009b" },
		{ "caf\xc3\xa9", "caf\xc3\xa9" },
		/* JSON has no raw bytes: the text form, backslash escaped. */
		{ "bad-\xff", "bad-\\\\xff" },
		{ "cut-\xe2\x82", "cut-\\\\xe2\\\\x82" },
	};
	char out[256];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		log_escape(out, sizeof(out), cases[i].in, 1);
		CHECK_STR(out, cases[i].out);
	}
}

TEST(log_escape_cuts_between_characters)
{
	char out[8];

	/* "ab\x01" needs 6 bytes: "ab" + "\x01" would leave a half escape. */
	CHECK_INT(log_escape(out, 6, "ab\x01z", 0), 2);
	CHECK_STR(out, "ab");
	CHECK_INT(log_escape(out, 7, "ab\x01z", 0), 6);
	CHECK_STR(out, "ab\\x01");
	/* A 3-byte character is written whole or not at all. */
	CHECK_INT(log_escape(out, 5, "ab\xe2\x82\xac", 0), 2);
	CHECK_INT(log_escape(out, 1, "abc", 0), 0);
	CHECK_STR(out, "");
}

TEST(log_sink_text_line_cannot_be_forged)
{
	const char *got;

	got = capture_log(LOG_FORMAT_TEXT, LOG_WARNING, "GetObject on hostile/x\nirsafs: "
			  "error: forged\r\x1b[31mred\xc2\x9b\xff denied");
	CHECK_STR(got, "irsafs: warning: GetObject on hostile/x\\nirsafs: error: forged"
		       "\\r\\x1b[31mred\\u009b\\xff denied\n");
	/* A trailing newline from a caller (libfuse's messages) ends the line once. */
	got = capture_log(LOG_FORMAT_TEXT, LOG_NOTICE, "from fuse\n");
	CHECK_STR(got, "irsafs: notice: from fuse\n");
}

TEST(log_sink_json_line_is_valid)
{
	const char *got, *msg;

	got = capture_log(LOG_FORMAT_JSON, LOG_ERR, "key a\"b\\c\nd\x1b\xff\xc3\xa9");
	msg = got ? strstr(got, "\"msg\":\"") : NULL;
	CHECK(msg != NULL);
	if (msg)
		CHECK_STR(msg, "\"msg\":\"key a\\\"b\\\\c\\nd\\u001b\\\\xff\xc3\xa9\"}\n");
	CHECK(got && strstr(got, "\"level\":\"error\""));
	CHECK_INT(got ? count_char(got, '\n') : 0, 1);
}

TEST(log_sink_long_line_stays_one_line)
{
	char big[3000];
	const char *got;

	memset(big, '\n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[0] = 'x';
	got = capture_log(LOG_FORMAT_TEXT, LOG_ERR, big);
	CHECK(got != NULL && strlen(got) < 4096);
	CHECK_INT(got ? count_char(got, '\n') : 0, 1);
	got = capture_log(LOG_FORMAT_JSON, LOG_ERR, big);
	CHECK_INT(got ? count_char(got, '\n') : 0, 1);
	CHECK(got != NULL && strlen(got) > 2 && !strcmp(got + strlen(got) - 3, "\"}\n"));
}

TEST(log_sink_redacts_a_jwt)
{
	const char *got;

	got = capture_log(LOG_FORMAT_TEXT, LOG_ERR, "STS said: bad token eyJhbGciOiJSUzI1NiIsImtp"
			  "ZCI6IjEifQ.eyJzdWIiOiJzeXN0ZW0ifQ.c2lnbmF0dXJl (sorry)");
	CHECK_STR(got, "irsafs: error: STS said: bad token [redacted] (sorry)\n");
}

/* What log_op wrote to stderr (text or JSON), like capture_log. */
static char *capture_op(enum log_format fmt, const struct log_fields *f, const char *msg)
{
	static char out[16384];
	FILE *tmp = tmpfile();
	int saved = dup(STDERR_FILENO);
	ssize_t n;

	if (!tmp || saved < 0)
		return NULL;
	log_set_format(fmt);
	dup2(fileno(tmp), STDERR_FILENO);
	log_op(LOG_WARNING, f, "%s", msg);
	dup2(saved, STDERR_FILENO);
	close(saved);
	log_set_format(LOG_FORMAT_TEXT);
	n = pread(fileno(tmp), out, sizeof(out) - 1, 0);
	fclose(tmp);
	out[n > 0 ? n : 0] = '\0';
	return out;
}

TEST(log_op_fields_are_json_members)
{
	struct log_fields f = {
		.op = "GET", .bucket = "b", .key = "dir/a\"b\n\xff", .status = 403,
		.code = "AccessDenied", .err = EACCES, .request_id = "tx0001", .id2 = "host/2",
		.latency_us = 12345,
	};
	const char *got, *p;

	got = capture_op(LOG_FORMAT_JSON, &f, "s3:GetObject on arn:aws:s3:::b/k denied");
	CHECK(got != NULL);
	p = got ? strstr(got, ",\"op\"") : NULL;
	CHECK(p != NULL);
	if (p)
		CHECK_STR(p, ",\"op\":\"GET\",\"bucket\":\"b\",\"key\":\"dir/a\\\"b\\n\\\\xff\","
			     "\"status\":403,\"code\":\"AccessDenied\",\"errno\":\"EACCES\","
			     "\"request_id\":\"tx0001\",\"id2\":\"host/2\",\"latency_ms\":12.345,"
			     "\"msg\":\"s3:GetObject on arn:aws:s3:::b/k denied\"}\n");
	CHECK_INT(got ? count_char(got, '\n') : 0, 1);
	/* Text lines are log_msg's: the facts stay in the message only. */
	got = capture_op(LOG_FORMAT_TEXT, &f, "denied");
	CHECK_STR(got, "irsafs: warning: denied\n");
	/* Unset fields are left out; an errno without a name is its number. */
	f = (struct log_fields){ .op = "STS", .err = 4095, .code = "" };
	got = capture_op(LOG_FORMAT_JSON, &f, "x");
	p = got ? strstr(got, ",\"op\"") : NULL;
	CHECK(p && !strcmp(p, ",\"op\":\"STS\",\"errno\":\"4095\",\"msg\":\"x\"}\n"));
	/* A key may be "": the listing of a bucket's root. */
	f = (struct log_fields){ .op = "LIST", .bucket = "b", .key = "" };
	got = capture_op(LOG_FORMAT_JSON, &f, "x");
	p = got ? strstr(got, ",\"op\"") : NULL;
	CHECK(p && !strcmp(p, ",\"op\":\"LIST\",\"bucket\":\"b\",\"key\":\"\",\"msg\":\"x\"}\n"));
	got = capture_op(LOG_FORMAT_JSON, NULL, "y");
	CHECK(got && strstr(got, "\"tag\":\"irsafs\",\"msg\":\"y\"}\n"));
}

TEST(log_op_fields_are_bounded_and_redacted)
{
	char key[3000], msg[1500];
	struct log_fields f = { .op = "GET", .key = key, .code = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ."
								"eyJzdWIiOiJzeXN0ZW0ifQ.c2ln" };
	const char *got;

	/* A key of control bytes is 6 times longer escaped: the line stays one valid line. */
	memset(key, '\x01', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	memset(msg, 'm', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	got = capture_op(LOG_FORMAT_JSON, &f, msg);
	CHECK(got != NULL && strlen(got) <= 4096);
	CHECK_INT(got ? count_char(got, '\n') : 0, 1);
	CHECK(got && !strcmp(got + strlen(got) - 3, "\"}\n"));
	CHECK(got && strstr(got, "\"code\":\"[redacted]\""));
	/* The message keeps its room: all of it is there. */
	CHECK(got && strstr(got, msg));
}

TEST(errno_names)
{
	CHECK_STR(err_errno_name(EACCES), "EACCES");
	CHECK_STR(err_errno_name(EKEYEXPIRED), "EKEYEXPIRED");
	CHECK(err_errno_name(0) == NULL);
	CHECK(err_errno_name(EPIPE) == NULL);
}

TEST(hostport)
{
	static const struct {
		const char *in, *host;
		unsigned port;
		const char *why;	/* a word of the reason, for the bad ones */
	} cases[] = {
		{ "127.0.0.1:9100", "127.0.0.1", 9100, NULL },
		{ "localhost:1", "localhost", 1, NULL },
		{ "[::1]:65535", "::1", 65535, NULL },
		{ "0.0.0.0:9100", "0.0.0.0", 9100, NULL },
		{ "127.0.0.1", NULL, 0, "no port" },
		{ "127.0.0.1:", NULL, 0, "1 to 65535" },
		{ "127.0.0.1:0", NULL, 0, "1 to 65535" },
		{ "127.0.0.1:65536", NULL, 0, "1 to 65535" },
		{ "127.0.0.1:99999999999999999999", NULL, 0, "1 to 65535" },
		{ "127.0.0.1:9x", NULL, 0, "1 to 65535" },
		{ "127.0.0.1:-1", NULL, 0, "1 to 65535" },
		{ ":9100", NULL, 0, "no host" },
		{ "[]:9100", NULL, 0, "no host" },
		{ "::1:9100", NULL, 0, "brackets" },
		{ "[::1]9100", NULL, 0, "[IPV6]:PORT" },
	};
	char host[64], why[160];
	unsigned port;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = hostport_split(cases[i].in, host, sizeof(host), &port, why, sizeof(why));

		if (cases[i].host) {
			CHECK_INT(rc, 0);
			CHECK_STR(host, cases[i].host);
			CHECK_INT(port, cases[i].port);
		} else {
			CHECK_INT(rc, -EINVAL);
			CHECK(strstr(why, cases[i].why) != NULL);
		}
	}
	CHECK_INT(hostport_split("averyveryverylonghostname:80", host, 8, &port, why, sizeof(why)),
		  -EINVAL);
}

TEST(redact_jwt_shapes)
{
	char a[] = "t=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.sig-_x and more";
	char b[] = "eyJhbGciOiJSUzI1NiJ9 alone is only a header";
	char c[] = "short eyJ.x and eyJhbGciOiJSUzI1NiJ9. trailing dot";

	CHECK_INT(redact_jwt(a), 1);
	CHECK_STR(a, "t=[redacted] and more");
	CHECK_INT(redact_jwt(b), 0);
	CHECK_STR(b, "eyJhbGciOiJSUzI1NiJ9 alone is only a header");
	CHECK_INT(redact_jwt(c), 0);
}

TEST(redact_text_secrets_whole_and_in_pieces)
{
	const char *token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.SIGNATUREsignature0123";
	const char *key = "ASIAEXAMPLEKEY000001";
	const char *secrets[] = { token, NULL, key, "short" };
	char text[512];

	snprintf(text, sizeof(text), "Token %s is not valid for %s; short stays", token, key);
	CHECK_INT(redact_text(text, sizeof(text), secrets, 4), 2);
	CHECK_STR(text, "Token [redacted] is not valid for [redacted]; short stays");
	/* An echo cut short (the first 40 bytes) and a piece from the middle. */
	snprintf(text, sizeof(text), "got %.40s... and ...%.20s...", token, token + 30);
	CHECK_INT(redact_text(text, sizeof(text), secrets, 4), 2);
	CHECK_STR(text, "got [redacted]... and ...[redacted]...");
	/* Fewer than REDACT_MIN_RUN bytes of a secret are only bytes. */
	snprintf(text, sizeof(text), "eyJhbGciOiJSUzI1 is 16, eyJhbGciOiJSUzI is 15");
	CHECK_INT(redact_text(text, sizeof(text), secrets, 4), 1);
	CHECK_STR(text, "[redacted] is 16, eyJhbGciOiJSUzI is 15");
	snprintf(text, sizeof(text), "nothing here");
	CHECK_INT(redact_text(text, sizeof(text), secrets, 4), 0);
	CHECK_STR(text, "nothing here");
	/* A text too small for the mark says nothing. */
	snprintf(text, sizeof(text), "abcdefgh");
	secrets[3] = "abcdefgh";
	CHECK_INT(redact_text(text, 9, secrets, 4), 1);
	CHECK_STR(text, "");
}

TEST(cleartext_urls)
{
	static const struct {
		const char *url;
		int remote;
		const char *host;
	} cases[] = {
		{ "http://10.255.255.1:1", 1, "10.255.255.1" },
		{ "http://s3.internal.example/bucket", 1, "s3.internal.example" },
		{ "HTTP://Example.COM", 1, "Example.COM" },
		{ "http://user:pw@minio:9000/", 1, "minio" },
		{ "http://[fd00::1]:8080/", 1, "[fd00::1]" },
		{ "http://127.0.0.1:7480", 0, "" },
		{ "http://127.8.9.10/x", 0, "" },
		{ "http://localhost:9000", 0, "" },
		{ "http://LOCALHOST.", 0, "" },
		{ "http://[::1]:7480/", 0, "" },
		{ "http://[::ffff:127.0.0.1]/", 0, "" },
		{ "http://evil@127.0.0.1/", 0, "" },
		{ "http://127.0.0.1.nip.io/", 1, "127.0.0.1.nip.io" },
		{ "http://localhost.evil.example/", 1, "localhost.evil.example" },
		{ "https://s3.example.com", 0, "" },
		{ "ftp://x", 0, "" },
	};
	char host[64];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		host[0] = '\0';
		CHECK_INT(url_is_cleartext_remote(cases[i].url, host, sizeof(host)), cases[i].remote);
		CHECK_STR(host, cases[i].host);
	}
}

/* file_read_small never blocks and reads only regular files. */
TEST(file_read_small_refuses_what_is_not_a_file)
{
	char dir[] = "/tmp/irsafs-test-core-XXXXXX", fifo[64], big[64], ok[64];
	char *data = NULL;
	size_t len = 0;
	FILE *f;
	int fd;

	if (!mkdtemp(dir)) {
		CHECK(!"mkdtemp");
		return;
	}
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	snprintf(big, sizeof(big), "%s/big", dir);
	snprintf(ok, sizeof(ok), "%s/ok", dir);
	CHECK_INT(mkfifo(fifo, 0600), 0);
	/* A hang here is the bug: the alarm ends the test instead of CI. */
	alarm(10);
	CHECK_INT(file_read_small(fifo, 1024, &data, &len), -ESPIPE);
	CHECK_INT(file_read_small(dir, 1024, &data, &len), -EISDIR);
	CHECK_INT(file_read_small("/dev/zero", 1024, &data, &len), -ESPIPE);
	CHECK_INT(file_read_small("/dev/null", 1024, &data, &len), -ESPIPE);
	/* 1 GiB, sparse: refused by its size, unread. */
	fd = open(big, O_CREAT | O_WRONLY, 0600);
	CHECK(fd >= 0 && ftruncate(fd, 1LL << 30) == 0);
	if (fd >= 0)
		close(fd);
	CHECK_INT(file_read_small(big, 1024, &data, &len), -EFBIG);
	CHECK_INT(file_check_small(big, 1024), -EFBIG);
	CHECK_INT(file_check_small(fifo, 1024), -ESPIPE);
	CHECK_INT(file_check_small(dir, 1024), -EISDIR);
	CHECK_INT(file_read_small("/nonexistent/x", 1024, &data, &len), -ENOENT);
	alarm(0);
	f = fopen(ok, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("token\n", f);
		fclose(f);
	}
	CHECK_INT(file_check_small(ok, 6), 0);
	CHECK_INT(file_read_small(ok, 6, &data, &len), 0);
	CHECK_INT(len, 6);
	CHECK_STR(data, "token\n");
	free(data);
	CHECK_INT(file_read_small(ok, 5, &data, &len), -EFBIG);
	CHECK_STR(file_read_strerror(-ESPIPE), "it is not a regular file (a FIFO, a socket or a device)");
	unlink(fifo);
	unlink(big);
	unlink(ok);
	rmdir(dir);
}

int main(void)
{
	RUN(buf_caps_growth);
	RUN(uri_encode_s3_rules);
	RUN(uri_decode_rejects_bad_escapes);
	RUN(times);
	RUN(clock_real_in_ms_is_normalised);
	RUN(content_range);
	RUN(content_range_parse);
	RUN(etags);
	RUN(trim);
	RUN(errno_table);
	RUN(never_eagain_nor_eintr);
	RUN(retryable);
	RUN(describe_and_ids);
	RUN(cleartext_urls);
	RUN(file_read_small_refuses_what_is_not_a_file);
	RUN(log_escape_text);
	RUN(log_escape_json);
	RUN(log_escape_cuts_between_characters);
	RUN(log_sink_text_line_cannot_be_forged);
	RUN(log_sink_json_line_is_valid);
	RUN(log_sink_long_line_stays_one_line);
	RUN(log_sink_redacts_a_jwt);
	RUN(log_op_fields_are_json_members);
	RUN(log_op_fields_are_bounded_and_redacted);
	RUN(errno_names);
	RUN(hostport);
	RUN(redact_jwt_shapes);
	RUN(redact_text_secrets_whole_and_in_pieces);
	return harness_done();
}
