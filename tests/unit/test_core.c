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
		{ 0, 28, "", ETIMEDOUT, ERR_TRANSPORT },
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

int main(void)
{
	RUN(buf_caps_growth);
	RUN(uri_encode_s3_rules);
	RUN(uri_decode_rejects_bad_escapes);
	RUN(times);
	RUN(content_range);
	RUN(trim);
	RUN(errno_table);
	RUN(never_eagain_nor_eintr);
	RUN(retryable);
	RUN(describe_and_ids);
	return harness_done();
}
