/*
 * s3/: the S3 store against a scripted local server (fakesrv): s3_store_new's
 * endpoint checks, and what read_range, stat and stat_read accept. A ranged
 * GET is taken only when its status, Content-Range, length and ETag answer
 * the request and the known size; a wrong answer is retried and then -EIO,
 * another version is -ESTALE at once, and nothing the server sent reaches a
 * request header unchecked.
 */
#include "s3/s3.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "auth/creds.h"
#include "core/err.h"
#include "fakesrv.h"
#include "harness.h"
#include "http/http.h"

#define ATTEMPTS 3

static struct fakesrv *srv;
static struct http_client *client;
static struct creds_cache *creds;
static struct store *st;

static const char DATA[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"; /* 62 */
#define SIZE ((long long)sizeof(DATA) - 1)

/* A right answer to bytes a..b (inclusive) of DATA, version etag. */
static void push_range(long long a, long long b, const char *etag)
{
	fakesrv_pushf(srv, NULL, "HTTP/1.1 206 Partial Content\r\nETag: %s\r\n"
		      "Content-Range: bytes %lld-%lld/%lld\r\nContent-Length: %lld\r\n"
		      "x-amz-request-id: R%lld\r\n\r\n%.*s",
		      etag, a, b, SIZE, b - a + 1, a, (int)(b - a + 1), DATA + a);
}

static int read_at(struct store_read *rd, long long off, size_t len, char *dst, size_t *got,
		   struct store_error *e)
{
	return store_read_range(st, "dir/k", rd, off, len, dst, got, e);
}

/* Does request i carry header line (case-insensitive name, exact value)? */
static int request_has(int i, const char *line)
{
	char *r = fakesrv_request(srv, i);
	int yes = r && strcasestr(r, line) != NULL;

	free(r);
	return yes;
}

TEST(store_new_checks_the_endpoint)
{
	struct s3_config cfg = { .bucket = "bkt", .region = "us-east-1", .path_style = 1 };
	struct store *s;
	char why[256];

	cfg.endpoint = "ftp://example";
	s = s3_store_new(&cfg, client, creds, why, sizeof(why));
	CHECK(s == NULL);
	CHECK(strstr(why, "http://") != NULL);
	cfg.endpoint = "http://";
	s = s3_store_new(&cfg, client, creds, why, sizeof(why));
	CHECK(s == NULL);
	CHECK(strstr(why, "no host") != NULL);
	cfg.endpoint = "http://127.0.0.1:80/";
	s = s3_store_new(&cfg, client, creds, why, sizeof(why));
	CHECK(s != NULL);
	if (s)
		CHECK_STR(s3_store_endpoint(s), "http://127.0.0.1:80/");
	store_destroy(s);
	/* No endpoint: AWS's, for the region. */
	cfg.endpoint = NULL;
	cfg.region = "eu-west-3";
	s = s3_store_new(&cfg, client, creds, why, sizeof(why));
	CHECK(s != NULL);
	if (s)
		CHECK_STR(s3_store_endpoint(s), "https://s3.eu-west-3.amazonaws.com");
	store_destroy(s);
}

TEST(a_right_answer_is_read_and_pinned)
{
	struct store_read rd;
	struct store_error e;
	char buf[64];
	size_t got = 0;
	int n0 = fakesrv_nrequests(srv);

	store_read_init(&rd, "\"v1\"", SIZE);
	push_range(10, 19, "\"v1\"");
	CHECK_INT(read_at(&rd, 10, 10, buf, &got, &e), 0);
	CHECK_INT(got, 10);
	CHECK(!memcmp(buf, DATA + 10, 10));
	CHECK(request_has(n0, "\r\nrange: bytes=10-19\r\n"));
	CHECK(request_has(n0, "\r\nif-match: \"v1\"\r\n"));
	/* Unpinned: no If-Match, and the answer's ETag comes back to pin. */
	store_read_init(&rd, "", SIZE);
	push_range(0, 4, "\"v7\"");
	CHECK_INT(read_at(&rd, 0, 5, buf, &got, &e), 0);
	CHECK_STR(rd.etag, "\"v7\"");
	CHECK(!request_has(n0 + 1, "if-match"));
	/* A listing's ETag that could split a header is never sent. */
	store_read_init(&rd, "\"v1\"\r\nX-Injected: 1", SIZE);
	push_range(0, 4, "\"v1\"");
	CHECK_INT(read_at(&rd, 0, 5, buf, &got, &e), 0);
	CHECK(!request_has(n0 + 2, "if-match"));
	CHECK(!request_has(n0 + 2, "X-Injected"));
	CHECK_STR(rd.etag, "\"v1\"");
}

TEST(a_read_reports_the_headers_a_listing_lacks)
{
	struct store_attr a;
	struct store_read rd;
	struct store_error e;
	char buf[64];
	size_t got = 0;

	memset(&a, 0, sizeof(a));
	store_read_init(&rd, "\"v1\"", SIZE);
	rd.headers = &a;
	fakesrv_pushf(srv, NULL, "HTTP/1.1 206 Partial Content\r\nETag: \"v1\"\r\n"
		      "Content-Type: text/csv\r\nx-amz-version-id: 3HL4kqtJlcpXroDTDmJ\r\n"
		      "Content-Range: bytes 0-9/%lld\r\nContent-Length: 10\r\n\r\n%.10s",
		      SIZE, DATA);
	CHECK_INT(read_at(&rd, 0, 10, buf, &got, &e), 0);
	CHECK_INT(got, 10);
	CHECK_STR(a.content_type, "text/csv");
	CHECK_STR(a.version_id, "3HL4kqtJlcpXroDTDmJ");
	CHECK_STR(a.etag, "\"v1\"");
	CHECK_INT(a.size, SIZE);
	/* Nothing to read, no request: left as it was. */
	memset(&a, 0, sizeof(a));
	CHECK_INT(read_at(&rd, SIZE, 10, buf, &got, &e), 0);
	CHECK_STR(a.content_type, "");
}

TEST(the_known_size_ends_the_object)
{
	struct store_read rd;
	struct store_error e;
	char buf[128];
	size_t got = 99;
	int n0 = fakesrv_nrequests(srv);

	store_read_init(&rd, "\"v1\"", SIZE);
	/* Asked past the end: only what exists is asked for ... */
	push_range(50, SIZE - 1, "\"v1\"");
	CHECK_INT(read_at(&rd, 50, 100, buf, &got, &e), 0);
	CHECK_INT(got, SIZE - 50);
	CHECK(request_has(n0, "\r\nrange: bytes=50-61\r\n"));
	/* ... and at or past it nothing is. */
	CHECK_INT(read_at(&rd, SIZE, 10, buf, &got, &e), 0);
	CHECK_INT(got, 0);
	CHECK_INT(fakesrv_nrequests(srv), n0 + 1);
	/* Sizes past any object's, and offsets that would overflow, are refused. */
	rd.size = STORE_SIZE_MAX + 1;
	CHECK_INT(read_at(&rd, 0, 10, buf, &got, &e), -EINVAL);
	rd.size = -1;
	CHECK_INT(read_at(&rd, 0x7fffffffffffff00LL, 4096, buf, &got, &e), -EINVAL);
	CHECK_INT(fakesrv_nrequests(srv), n0 + 1);
}

TEST(a_wrong_answer_is_retried_then_eio)
{
	struct store_read rd;
	struct store_error e;
	char buf[64];
	size_t got = 0;
	int n0, i;

	store_read_init(&rd, "\"v1\"", SIZE);
	/* Once short (matching Content-Length), then right: the right bytes. */
	n0 = fakesrv_nrequests(srv);
	fakesrv_pushf(srv, NULL, "HTTP/1.1 206 Partial Content\r\nETag: \"v1\"\r\n"
		      "Content-Range: bytes 0-19/%lld\r\nContent-Length: 5\r\n\r\n01234", SIZE);
	push_range(0, 19, "\"v1\"");
	CHECK_INT(read_at(&rd, 0, 20, buf, &got, &e), 0);
	CHECK_INT(got, 20);
	CHECK(!memcmp(buf, DATA, 20));
	CHECK_INT(fakesrv_nrequests(srv), n0 + 2);

	/* Always shifted: every attempt, then EIO. */
	n0 = fakesrv_nrequests(srv);
	for (i = 0; i < ATTEMPTS; i++)
		push_range(10, 29, "\"v1\"");
	got = 99;
	CHECK_INT(read_at(&rd, 0, 20, buf, &got, &e), -EIO);
	CHECK_INT(got, 0);
	CHECK_STR(e.code, "MalformedReply");
	CHECK_INT(fakesrv_nrequests(srv), n0 + ATTEMPTS);

	/* A 416 for a range inside the object: not the end of the file. */
	n0 = fakesrv_nrequests(srv);
	for (i = 0; i < ATTEMPTS; i++)
		fakesrv_push(srv, "HTTP/1.1 416 Requested Range Not Satisfiable\r\n"
			     "Content-Length: 0\r\n\r\n", -1, NULL);
	CHECK_INT(read_at(&rd, 20, 20, buf, &got, &e), -EIO);
	CHECK_INT(fakesrv_nrequests(srv), n0 + ATTEMPTS);

	/* A 200 carrying an error document: not the object. */
	n0 = fakesrv_nrequests(srv);
	for (i = 0; i < ATTEMPTS; i++)
		fakesrv_push(srv, "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: 41\r\n\r\n"
			     "<Error><Code>InternalError</Code></Error>", -1, NULL);
	CHECK_INT(read_at(&rd, 0, 20, buf, &got, &e), -EIO);
	CHECK_INT(fakesrv_nrequests(srv), n0 + ATTEMPTS);
}

TEST(another_version_is_estale_at_once)
{
	struct store_read rd;
	struct store_error e;
	char buf[64];
	size_t got = 0;
	int n0 = fakesrv_nrequests(srv);

	store_read_init(&rd, "\"v1\"", SIZE);
	/* The server ignored If-Match. */
	push_range(0, 9, "\"v2\"");
	push_range(0, 9, "\"v2\"");
	CHECK_INT(read_at(&rd, 0, 10, buf, &got, &e), -ESTALE);
	CHECK_INT(got, 0);
	CHECK_INT(fakesrv_nrequests(srv), n0 + 1);
	fakesrv_clear(srv);
	/* A real 412 says the same. */
	fakesrv_push(srv, "HTTP/1.1 412 Precondition Failed\r\nContent-Length: 0\r\n\r\n", -1,
		     NULL);
	CHECK_INT(read_at(&rd, 0, 10, buf, &got, &e), -ESTALE);
}

TEST(a_cancelled_read_is_not_retried)
{
	struct store_read rd;
	struct store_error e;
	char buf[64];
	size_t got = 0;
	int flag = 1, n0 = fakesrv_nrequests(srv);

	store_read_init(&rd, "\"v1\"", SIZE);
	rd.cancel = &flag;
	CHECK_INT(read_at(&rd, 0, 10, buf, &got, &e), -EINTR);
	CHECK_INT(fakesrv_nrequests(srv), n0);
}

TEST(stat_takes_only_a_whole_head)
{
	struct store_attr a;
	struct store_error e;
	int i;

	fakesrv_push(srv, "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: 62\r\n"
		     "Content-Type: text/plain\r\nx-amz-storage-class: GLACIER\r\n"
		     "Last-Modified: Sat, 28 Nov 2026 15:17:00 GMT\r\n\r\n", -1, NULL);
	CHECK_INT(store_stat(st, "dir/k", &a, &e), 0);
	CHECK_INT(a.size, 62);
	CHECK_STR(a.etag, "\"v1\"");
	CHECK_STR(a.content_type, "text/plain");
	CHECK_STR(a.storage_class, "GLACIER");
	CHECK(a.mtime.tv_sec > 0);
	/* An ETag with a bare CR, no Content-Length, a size no object has: EIO. */
	for (i = 0; i < ATTEMPTS; i++)
		fakesrv_push(srv, "HTTP/1.1 200 OK\r\nETag: \"v1\rX-Injected: 1\"\r\n"
			     "Content-Length: 62\r\n\r\n", -1, NULL);
	CHECK_INT(store_stat(st, "dir/k", &a, &e), -EIO);
	for (i = 0; i < ATTEMPTS; i++)
		fakesrv_push(srv, "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n",
			     -1, &(struct fakesrv_opts){ .close = 1 });
	CHECK_INT(store_stat(st, "dir/k", &a, &e), -EIO);
	fakesrv_push(srv, "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: 9223372036854775807"
		     "\r\n\r\n", -1, NULL);
	fakesrv_push(srv, "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: 2251799813685249"
		     "\r\n\r\n", -1, NULL);
	CHECK_INT(store_stat(st, "dir/k", &a, &e), -EIO);
	fakesrv_clear(srv);
}

TEST(stat_read_takes_its_size_from_a_checked_206)
{
	struct store_attr a;
	struct store_error e;
	char buf[16];
	size_t got = 0;

	fakesrv_pushf(srv, NULL, "HTTP/1.1 206 Partial Content\r\nETag: \"v3\"\r\n"
		      "Content-Range: bytes 0-15/%lld\r\nContent-Length: 16\r\n\r\n%.16s", SIZE,
		      DATA);
	CHECK_INT(store_stat_read(st, "dir/k", 16, buf, &got, &a, &e), 0);
	CHECK_INT(got, 16);
	CHECK_INT(a.size, SIZE);
	CHECK_STR(a.etag, "\"v3\"");
	/* A 200 with an error document gives no size: ask with a HEAD. */
	fakesrv_push(srv, "HTTP/1.1 200 OK\r\nETag: \"v3\"\r\nContent-Length: 10\r\n\r\n"
		     "<Error/>\n\n", -1, NULL);
	CHECK_INT(store_stat_read(st, "dir/k", 16, buf, &got, &a, &e), -EIO);
	CHECK_INT(e.cls, ERR_PROTOCOL);
}

int main(void)
{
	struct http_config hc = { .connect_timeout_ms = 2000, .stall_timeout_ms = 2000,
				  .user_agent = "irsafs-test" };
	struct s3_config sc = { .bucket = "bkt", .region = "us-east-1", .path_style = 1,
				.max_attempts = ATTEMPTS, .budget_ms = 20000,
				.request_timeout_ms = 5000 };
	struct creds_provider *prov;
	struct creds *cr;
	char why[256];

	curl_global_init(CURL_GLOBAL_DEFAULT);
	srv = fakesrv_start();
	client = http_client_new(&hc);
	cr = creds_new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL, 0, NULL);
	prov = cr ? creds_static_new(cr, "test") : NULL;
	creds = prov ? creds_cache_new(prov) : NULL;
	creds_release(cr);
	if (!srv || !client || !creds) {
		harness_skip("no local server (127.0.0.1) or no memory");
		return harness_done();
	}
	sc.endpoint = fakesrv_url(srv);
	st = s3_store_new(&sc, client, creds, why, sizeof(why));
	CHECK(st != NULL);
	if (!st)
		return harness_done();
	RUN(store_new_checks_the_endpoint);
	RUN(a_right_answer_is_read_and_pinned);
	RUN(a_read_reports_the_headers_a_listing_lacks);
	RUN(the_known_size_ends_the_object);
	RUN(a_wrong_answer_is_retried_then_eio);
	RUN(another_version_is_estale_at_once);
	RUN(a_cancelled_read_is_not_retried);
	RUN(stat_takes_only_a_whole_head);
	RUN(stat_read_takes_its_size_from_a_checked_206);
	store_destroy(st);
	creds_cache_free(creds);
	http_client_free(client);
	fakesrv_stop(srv);
	curl_global_cleanup();
	return harness_done();
}
