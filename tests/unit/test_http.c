/*
 * http/: http_perform against a scripted local server (fakesrv): header
 * capture and validation, the answer checks of struct http_expect (status,
 * Content-Range, length, ETag), the time rules (headers by a deadline, a slow
 * body never cut while it moves, a stalled one cut), and cancellation.
 */
#include "http/http.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "core/err.h"
#include "core/strutil.h"
#include "fakesrv.h"
#include "harness.h"

static struct fakesrv *srv;
static struct http_client *client;

/* One GET of url (the server's root); the body to sink when sink is set. */
static int get(const struct http_expect *x, char *sink, size_t cap, long timeout_ms,
	       struct http_response *resp, struct s3_error *e)
{
	struct http_request req = {
		.method = "GET", .url = fakesrv_url(srv), .timeout_ms = timeout_ms,
		.max_body = 64 * 1024, .sink = sink, .sink_cap = cap, .expect = x,
	};

	err_clear(e);
	return http_perform(client, &req, resp, e);
}

/* A 206 of n bytes of 'x' for bytes a-b/total, with extra headers. */
static void push_206(long long a, long long b, long long total, size_t n, const char *extra)
{
	char *body = malloc(n + 1);

	memset(body, 'x', n);
	body[n] = '\0';
	fakesrv_pushf(srv, NULL, "HTTP/1.1 206 Partial Content\r\nETag: \"e1\"\r\n"
		      "Content-Range: bytes %lld-%lld/%lld\r\nContent-Length: %zu\r\n%s\r\n%s",
		      a, b, total, n, extra ? extra : "", body);
	free(body);
}

/* A right 206 for bytes 0-49/1000 that stops for ms after 10 body bytes. */
static void push_stalled(long ms)
{
	static const char a[] = "HTTP/1.1 206 Partial Content\r\nETag: \"e\"\r\n"
				"Content-Range: bytes 0-49/1000\r\nContent-Length: 50\r\n\r\n"
				"01234567890123456789012345678901234567890123456789";

	fakesrv_push(srv, a, sizeof(a) - 1,
		     &(struct fakesrv_opts){ .stall_after = sizeof(a) - 1 - 40, .stall_ms = ms });
}

static long long elapsed_ms(long long start)
{
	return clock_mono_ms() - start;
}

TEST(headers_are_captured)
{
	struct http_response r;
	struct s3_error e;

	http_response_init(&r);
	fakesrv_push(srv, "HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nContent-Length: 5\r\n"
		     "x-amz-request-id: REQ1\r\nContent-Type:  text/plain \r\n"
		     "Last-Modified: Sat, 28 Nov 2026 15:17:00 GMT\r\n\r\nhello", -1, NULL);
	CHECK_INT(get(NULL, NULL, 0, 5000, &r, &e), 0);
	CHECK_INT(r.status, 200);
	CHECK_INT(e.http_status, 200);
	CHECK_STR(r.etag, "\"abc\"");
	CHECK_INT(r.content_length, 5);
	CHECK_STR(r.request_id, "REQ1");
	CHECK_STR(r.content_type, "text/plain");
	CHECK_INT(r.body.len, 5);
	CHECK(r.body.data && !memcmp(r.body.data, "hello", 5));
	CHECK_STR(r.bad_header, "");
	http_response_cleanup(&r);
}

TEST(a_bare_cr_in_an_etag_is_never_stored)
{
	struct http_expect x = { .size = -1, .need_etag = 1 };
	struct http_response r;
	struct s3_error e;

	http_response_init(&r);
	/* The CR would end the header early if the value were sent back. */
	fakesrv_push(srv, "HTTP/1.1 200 OK\r\nETag: \"abc\rX-Injected: 1\"\r\n"
		     "Content-Length: 0\r\n\r\n", -1, NULL);
	CHECK_INT(get(NULL, NULL, 0, 5000, &r, &e), 0);
	CHECK_STR(r.etag, "");
	CHECK_STR(r.bad_header, "ETag");
	/* A request that needs the ETag cannot use the answer. */
	fakesrv_push(srv, "HTTP/1.1 200 OK\r\nETag: \"abc\rX-Injected: 1\"\r\n"
		     "Content-Length: 0\r\n\r\n", -1, NULL);
	CHECK_INT(get(&x, NULL, 0, 5000, &r, &e), -EIO);
	CHECK_STR(e.code, "MalformedReply");
	CHECK(strstr(e.message, "ETag") != NULL);
	CHECK(strchr(e.message, '\r') == NULL);
	CHECK_INT(err_is_retryable(&e), 1);
	CHECK_INT(err_to_errno(&e), EIO);
	http_response_cleanup(&r);
}

TEST(header_values_are_validated)
{
	static const struct {
		const char *etag;
		int ok;
	} etags[] = {
		{ "\"abc\"", 1 }, { "W/\"abc\"", 1 }, { "\"\"", 1 }, { "abc", 0 }, { "\"abc", 0 },
		{ "\"a\"b\"", 0 }, { "\"a b\"", 0 }, { "\"a\x1b[31m\"", 0 }, { "\"a\x7f\"", 0 },
	};
	struct http_expect x = { .size = -1, .need_etag = 1 };
	struct http_response r;
	struct s3_error e;
	size_t i;

	http_response_init(&r);
	for (i = 0; i < sizeof(etags) / sizeof(etags[0]); i++) {
		fakesrv_pushf(srv, NULL, "HTTP/1.1 200 OK\r\nETag: %s\r\nContent-Length: 0\r\n\r\n",
			      etags[i].etag);
		CHECK_INT(get(&x, NULL, 0, 5000, &r, &e), etags[i].ok ? 0 : -EIO);
		if (etags[i].ok)
			CHECK_STR(r.etag, etags[i].etag);
		else
			CHECK_STR(r.etag, "");
	}
	/* Any value with a control character is dropped, the answer kept. */
	fakesrv_push(srv, "HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Type: text/\x1b[2Jplain\r\n"
		     "x-amz-version-id: v\x01\r\nContent-Length: 0\r\n\r\n", -1, NULL);
	CHECK_INT(get(&x, NULL, 0, 5000, &r, &e), 0);
	CHECK_STR(r.content_type, "");
	CHECK_STR(r.version_id, "");
	CHECK_STR(r.bad_header, "Content-Type");
	/* Content-Length: plain digits, and one value only. */
	fakesrv_push(srv, "HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 0x10\r\n"
		     "Connection: close\r\n\r\n", -1, &(struct fakesrv_opts){ .close = 1 });
	CHECK_INT(get(&x, NULL, 0, 5000, &r, &e), -EIO);
	CHECK_STR(e.code, "MalformedReply");
	/* Two different ETags: neither is believed. */
	fakesrv_push(srv, "HTTP/1.1 200 OK\r\nETag: \"e1\"\r\nETag: \"e2\"\r\n"
		     "Content-Length: 0\r\n\r\n", -1, NULL);
	CHECK_INT(get(&x, NULL, 0, 5000, &r, &e), -EIO);
	http_response_cleanup(&r);
}

TEST(a_range_answer_is_taken_only_when_it_is_the_range_asked)
{
	struct http_expect x = { .range_off = 100, .range_len = 50, .size = 1000,
				 .etag = "\"e1\"", .need_etag = 1 };
	struct http_response r;
	struct s3_error e;
	char sink[64];

	http_response_init(&r);
	/* Right: bytes 100-149/1000, 50 bytes. */
	push_206(100, 149, 1000, 50, NULL);
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), 0);
	CHECK_INT(r.sink_len, 50);
	CHECK_INT(r.total, 1000);

	/* Short body, Content-Length matching it, Content-Range claiming all. */
	fakesrv_pushf(srv, NULL, "HTTP/1.1 206 Partial Content\r\nETag: \"e1\"\r\n"
		      "Content-Range: bytes 100-149/1000\r\nContent-Length: 25\r\n\r\n%s",
		      "xxxxxxxxxxxxxxxxxxxxxxxxx");
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), -EIO);
	CHECK_STR(e.code, "MalformedReply");
	CHECK_INT(err_is_retryable(&e), 1);
	/* Short, and a Content-Range to match: the range ends early. */
	push_206(100, 124, 1000, 25, NULL);
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), -EIO);
	/* ... or it says the object ends there, which the known size denies. */
	push_206(100, 124, 125, 25, NULL);
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), -EIO);
	/* Shifted: another place. */
	push_206(0, 49, 1000, 50, NULL);
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), -EIO);
	CHECK(strstr(e.message, "Content-Range bytes 0-49/1000") != NULL);
	/* Another total. */
	push_206(100, 149, 2000, 50, NULL);
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), -EIO);
	/* More than asked. */
	push_206(100, 199, 1000, 100, NULL);
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), -EIO);
	/* No Content-Range, or junk in it. */
	fakesrv_push(srv, "HTTP/1.1 206 Partial Content\r\nETag: \"e1\"\r\nContent-Length: 50\r\n"
		     "\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", -1, NULL);
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), -EIO);
	/* Chunked, ending (properly) before the range does. */
	fakesrv_push(srv, "HTTP/1.1 206 Partial Content\r\nETag: \"e1\"\r\n"
		     "Content-Range: bytes 100-149/1000\r\nTransfer-Encoding: chunked\r\n\r\n"
		     "a\r\nxxxxxxxxxx\r\n0\r\n\r\n", -1, NULL);
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), -EIO);
	CHECK(strstr(e.message, "10 body bytes") != NULL);
	/* Close-delimited, closing early. */
	fakesrv_push(srv, "HTTP/1.1 206 Partial Content\r\nETag: \"e1\"\r\n"
		     "Content-Range: bytes 100-149/1000\r\nConnection: close\r\n\r\n"
		     "xxxxxxxxxx", -1, &(struct fakesrv_opts){ .close = 1 });
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), -EIO);
	/* Close-delimited and whole is fine. */
	fakesrv_push(srv, "HTTP/1.1 206 Partial Content\r\nETag: \"e1\"\r\n"
		     "Content-Range: bytes 100-149/1000\r\nConnection: close\r\n\r\n"
		     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", -1,
		     &(struct fakesrv_opts){ .close = 1 });
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), 0);
	CHECK_INT(r.sink_len, 50);
	http_response_cleanup(&r);
}

TEST(status_other_than_206)
{
	struct http_expect x = { .range_off = 0, .range_len = 50, .size = 1000, .need_etag = 1 };
	struct http_response r;
	struct s3_error e;
	char sink[64];

	http_response_init(&r);
	/* A 200 with a 41-byte error document is no object of 1000 bytes. */
	fakesrv_push(srv, "HTTP/1.1 200 OK\r\nETag: \"e1\"\r\nContent-Length: 41\r\n\r\n"
		     "<Error><Code>SlowDown</Code></Error>\n   ", -1, NULL);
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), -EIO);
	CHECK_INT(e.http_status, 200);
	/* The whole object, when it fits and is the size known, will do. */
	x.size = 41;
	fakesrv_push(srv, "HTTP/1.1 200 OK\r\nETag: \"e1\"\r\nContent-Length: 41\r\n\r\n"
		     "0123456789012345678901234567890123456789!", -1, NULL);
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), 0);
	CHECK_INT(r.sink_len, 41);
	CHECK_INT(r.total, 41);
	/* But not for a range further in, nor when it does not fit. */
	x.range_off = 10;
	x.size = -1;
	fakesrv_push(srv, "HTTP/1.1 200 OK\r\nETag: \"e1\"\r\nContent-Length: 41\r\n\r\n"
		     "0123456789012345678901234567890123456789!", -1, NULL);
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), -EIO);
	x.range_off = 0;
	x.range_len = 20;
	fakesrv_push(srv, "HTTP/1.1 200 OK\r\nETag: \"e1\"\r\nContent-Length: 41\r\n\r\n"
		     "0123456789012345678901234567890123456789!", -1, NULL);
	CHECK_INT(get(&x, sink, 20, 5000, &r, &e), -EIO);
	/* A 416 for a range inside the object is malformed ... */
	x.range_off = 100;
	x.range_len = 50;
	x.size = 1000;
	fakesrv_push(srv, "HTTP/1.1 416 Requested Range Not Satisfiable\r\n"
		     "Content-Length: 0\r\n\r\n", -1, NULL);
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), -EIO);
	CHECK_INT(e.http_status, 416);
	CHECK_INT(err_is_retryable(&e), 1);
	/* ... also when only its Content-Range says how big the object is. */
	x.size = -1;
	fakesrv_push(srv, "HTTP/1.1 416 Requested Range Not Satisfiable\r\n"
		     "Content-Range: bytes */1000\r\nContent-Length: 0\r\n\r\n", -1, NULL);
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), -EIO);
	/* Past the end it is the answer. */
	x.range_off = 1000;
	fakesrv_push(srv, "HTTP/1.1 416 Requested Range Not Satisfiable\r\n"
		     "Content-Range: bytes */1000\r\nContent-Length: 0\r\n\r\n", -1, NULL);
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), 0);
	CHECK_INT(r.status, 416);
	/* Other errors are the caller's to judge. */
	fakesrv_push(srv, "HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\n\r\n", -1, NULL);
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), 0);
	CHECK_INT(r.status, 503);
	http_response_cleanup(&r);
}

TEST(an_answer_of_another_version_is_a_changed_object)
{
	struct http_expect x = { .range_off = 0, .range_len = 50, .size = 1000,
				 .etag = "\"e2\"", .need_etag = 1 };
	struct http_response r;
	struct s3_error e;
	char sink[64];

	http_response_init(&r);
	/* The server ignored If-Match: "e1" came back. */
	push_206(0, 49, 1000, 50, NULL);
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), -ESTALE);
	CHECK_STR(e.code, "PreconditionFailed");
	CHECK_INT(err_to_errno(&e), ESTALE);
	CHECK_INT(err_is_retryable(&e), 0);
	/* No ETag at all: nothing to check against. */
	fakesrv_push(srv, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-49/1000\r\n"
		     "Content-Length: 50\r\n\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", -1,
		     NULL);
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), -EIO);
	CHECK_STR(e.code, "MalformedReply");
	/* A pin without quotes (some listings) is the same tag. */
	x.etag = "e1";
	push_206(0, 49, 1000, 50, NULL);
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), 0);
	http_response_cleanup(&r);
}

TEST(a_slow_body_is_never_cut_while_it_moves)
{
	static char body[300 * 1024], sink[300 * 1024];
	struct http_expect x = { .range_off = 0, .range_len = sizeof(body), .size = sizeof(body),
				 .need_etag = 1 };
	struct http_response r;
	struct s3_error e;
	char head[256];
	long long t0;
	int n;

	http_response_init(&r);
	memset(body, 'y', sizeof(body));
	n = snprintf(head, sizeof(head), "HTTP/1.1 206 Partial Content\r\nETag: \"e\"\r\n"
		     "Content-Range: bytes 0-%zu/%zu\r\nContent-Length: %zu\r\n\r\n",
		     sizeof(body) - 1, sizeof(body), sizeof(body));
	{
		char *all = malloc((size_t)n + sizeof(body));

		memcpy(all, head, (size_t)n);
		memcpy(all + n, body, sizeof(body));
		/* 150 KiB/s: about 2 s, twice the request's time limit of 1 s. */
		fakesrv_push(srv, all, n + (long)sizeof(body),
			     &(struct fakesrv_opts){ .rate = 150 * 1024 });
		free(all);
	}
	t0 = clock_mono_ms();
	CHECK_INT(get(&x, sink, sizeof(sink), 1000, &r, &e), 0);
	CHECK_INT(r.sink_len, sizeof(body));
	CHECK(elapsed_ms(t0) > 1000); /* it did outlast the time limit */
	http_response_cleanup(&r);
}

TEST(late_headers_and_stalled_bodies_time_out)
{
	struct http_expect x = { .range_off = 0, .range_len = 50, .size = 1000, .need_etag = 1 };
	struct http_response r;
	struct s3_error e;
	char sink[64];
	long long t0;

	http_response_init(&r);
	/* Headers after the time limit. */
	fakesrv_pushf(srv, &(struct fakesrv_opts){ .delay_ms = 4000 },
		      "HTTP/1.1 206 Partial Content\r\nETag: \"e\"\r\n"
		      "Content-Range: bytes 0-49/1000\r\nContent-Length: 50\r\n\r\n%050d", 0);
	t0 = clock_mono_ms();
	CHECK_INT(get(&x, sink, 50, 1000, &r, &e), -ETIMEDOUT);
	CHECK_INT(e.curl_code, CURLE_OPERATION_TIMEDOUT);
	CHECK(elapsed_ms(t0) < 3500); /* generous: "did not wait for the server" */
	CHECK_INT(err_is_retryable(&e), 1);
	/* A body that stops moving: cut by the stall rule (1 s here). */
	push_stalled(5000);
	t0 = clock_mono_ms();
	CHECK_INT(get(&x, sink, 50, 60000, &r, &e), -ETIMEDOUT);
	CHECK(elapsed_ms(t0) < 4500);
	http_response_cleanup(&r);
}

TEST(a_stalled_body_is_cut_at_the_deadline)
{
	struct http_config cfg = { .connect_timeout_ms = 2000, .stall_timeout_ms = 30000,
				   .user_agent = "irsafs-test" };
	struct http_client *slow_to_notice = http_client_new(&cfg), *saved = client;
	struct http_expect x = { .range_off = 0, .range_len = 50, .size = 1000, .need_etag = 1 };
	struct http_response r;
	struct s3_error e;
	char sink[64];
	long long t0;

	/* The stall rule would wait 30 s; the request's limit (1 s) ends it. */
	http_response_init(&r);
	client = slow_to_notice;
	push_stalled(8000);
	t0 = clock_mono_ms();
	CHECK_INT(get(&x, sink, 50, 1000, &r, &e), -ETIMEDOUT);
	CHECK(elapsed_ms(t0) < 6000);
	client = saved;
	http_client_free(slow_to_notice);
	http_response_cleanup(&r);
}

/* After after_ms, set *flag (a request's cancel) or close client: one of the two. */
struct later {
	long after_ms;
	int *flag;
	struct http_client *client;
};

static void *call_off_later(void *arg)
{
	struct later *l = arg;
	struct timespec ts = { l->after_ms / 1000, (l->after_ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
	if (l->flag)
		__atomic_store_n(l->flag, 1, __ATOMIC_RELEASE);
	else
		http_client_close(l->client);
	return NULL;
}

TEST(a_cancelled_request_stops_at_once)
{
	int flag = 0;
	struct http_expect x = { .range_off = 0, .range_len = 50, .size = 1000, .need_etag = 1,
				 .cancel = &flag };
	struct later l = { .after_ms = 300, .flag = &flag };
	struct http_response r;
	struct s3_error e;
	char sink[64];
	pthread_t t;
	long long t0;
	int before;

	http_response_init(&r);
	push_stalled(8000);
	pthread_create(&t, NULL, call_off_later, &l);
	t0 = clock_mono_ms();
	CHECK_INT(get(&x, sink, 50, 60000, &r, &e), -EINTR);
	CHECK(elapsed_ms(t0) < 5000);
	pthread_join(t, NULL);
	CHECK_INT(e.curl_code, CURLE_ABORTED_BY_CALLBACK);
	/* Never retried: nobody waits for it (the -EINTR is the caller's, not the table's). */
	CHECK_INT(err_is_retryable(&e), 0);
	/* Cancelled before it starts: not even sent. */
	before = fakesrv_nrequests(srv);
	CHECK_INT(get(&x, sink, 50, 5000, &r, &e), -EINTR);
	CHECK_INT(fakesrv_nrequests(srv), before);
	http_response_cleanup(&r);
}

/* Shutdown: a hung exchange with no deadline of its own ends when its client closes. */
TEST(a_closing_client_calls_off_what_runs_and_what_comes)
{
	struct http_config cfg = { .connect_timeout_ms = 2000, .user_agent = "irsafs-test" };
	struct http_client *c = http_client_new(&cfg);
	struct http_request req = { .method = "GET", .url = fakesrv_url(srv), .timeout_ms = 60000,
				    .max_body = 64 * 1024 };
	struct later l = { .after_ms = 300, .client = c };
	struct http_response r;
	struct s3_error e;
	pthread_t t;
	long long t0;
	int before;

	CHECK(c != NULL);
	if (!c)
		return;
	http_response_init(&r);
	push_stalled(8000);
	pthread_create(&t, NULL, call_off_later, &l);
	t0 = clock_mono_ms();
	err_clear(&e);
	CHECK_INT(http_perform(c, &req, &r, &e), -EINTR);
	CHECK(elapsed_ms(t0) < 5000);
	pthread_join(t, NULL);
	CHECK_INT(e.curl_code, CURLE_ABORTED_BY_CALLBACK);
	CHECK_INT(err_is_retryable(&e), 0);
	/* Closed: nothing more is sent. */
	before = fakesrv_nrequests(srv);
	err_clear(&e);
	CHECK_INT(http_perform(c, &req, &r, &e), -EINTR);
	CHECK_INT(fakesrv_nrequests(srv), before);
	http_response_cleanup(&r);
	http_client_free(c);
}

int main(void)
{
	struct http_config cfg = { .connect_timeout_ms = 2000, .stall_timeout_ms = 1000,
				    .user_agent = "irsafs-test" };

	curl_global_init(CURL_GLOBAL_DEFAULT);
	srv = fakesrv_start();
	client = http_client_new(&cfg);
	if (!srv || !client) {
		harness_skip("no local server (127.0.0.1) or no memory");
		return harness_done();
	}
	RUN(headers_are_captured);
	RUN(a_bare_cr_in_an_etag_is_never_stored);
	RUN(header_values_are_validated);
	RUN(a_range_answer_is_taken_only_when_it_is_the_range_asked);
	RUN(status_other_than_206);
	RUN(an_answer_of_another_version_is_a_changed_object);
	RUN(a_slow_body_is_never_cut_while_it_moves);
	RUN(late_headers_and_stalled_bodies_time_out);
	RUN(a_stalled_body_is_cut_at_the_deadline);
	RUN(a_cancelled_request_stops_at_once);
	RUN(a_closing_client_calls_off_what_runs_and_what_comes);
	http_client_free(client);
	fakesrv_stop(srv);
	curl_global_cleanup();
	return harness_done();
}
