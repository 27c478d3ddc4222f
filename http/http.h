/*
 * http: one HTTP request over a pooled curl easy handle.
 *
 * struct http_client owns a pool of easy handles (each keeps its own
 * connection cache, so keep-alive works without sharing a handle between
 * threads). http_perform() takes a handle, runs one request with a connect
 * timeout, a time limit and a stall detector, captures the response headers
 * irsafs cares about, and writes the body either into a bounded struct buf or
 * straight into a caller's fixed buffer. A handle that saw a transport error
 * is discarded rather than returned to the pool.
 *
 * Trust: every captured header value is checked before it is stored. A value
 * holding a control character is dropped; an ETag must be a quoted string of
 * printable characters; Content-Length and Content-Range must be plain
 * numbers. A request may also say what answer it can use (struct
 * http_expect: the range, the object's size, the ETag it is pinned to), and
 * then any other answer fails (MalformedReply, or PreconditionFailed for
 * another ETag) before its body is taken.
 *
 * Time: a request without a sink (errors, listings, credentials) has a limit
 * on the whole exchange. Object bytes (a sink) have the same limit, but past
 * it only missing headers or a body that is not moving (under HTTP_STALL_RATE
 * bytes/s over the last second) end the exchange; and at any time a body
 * slower than HTTP_STALL_RATE for the configured stall time is cut. A slow
 * but moving body is never cut.
 *
 * Nothing secret is logged here: request headers are never logged, and curl's
 * verbose output is never enabled. http_client_new/free are not thread-safe;
 * http_perform is.
 */
#ifndef IRSAFS_HTTP_HTTP_H
#define IRSAFS_HTTP_HTTP_H

#include <stddef.h>

#include "core/buf.h"

struct s3_error;

/* Object bodies slower than this (bytes/s) for the stall time are cut. */
#define HTTP_STALL_RATE 1024L

struct http_config {
	long connect_timeout_ms;	/* per connection attempt */
	long stall_timeout_ms;		/* abort when no byte arrives for this long */
	const char *user_agent;
	const char *ca_bundle;		/* NULL: system default */
	unsigned pool_max;		/* idle handles kept */
};

struct http_request {
	const char *method;		/* "GET", "HEAD", "POST" */
	const char *url;
	const char *const *headers;	/* "Name: value" lines */
	size_t nheaders;
	const char *body;		/* POST body or NULL */
	size_t body_len;
	/*
	 * Whole request; with a sink, past it only an exchange without its
	 * headers or with a stalled body is cut (a moving body goes on).
	 * 0 = none (do not).
	 */
	long timeout_ms;
	size_t max_body;		/* cap for the buf body */
	char *sink;			/* when set, a 2xx body goes here instead */
	size_t sink_cap;		/* ... and may not exceed this */
	const struct http_expect *expect;	/* NULL: any answer will do */
};

/*
 * The answer a request can use. For a 2xx answer (other statuses are the
 * caller's to judge, but for a 416 to a range inside a known size):
 * - need_etag: an ETag header holding a valid entity tag; with etag set, the
 *   same tag (quotes aside): a server that ignored If-Match and sent another
 *   version fails with e->code "PreconditionFailed", like a 412.
 * - need_length: a valid Content-Length (a HEAD's size).
 * - range_len > 0 (a GET of bytes range_off..range_off+range_len-1): a 206
 *   whose Content-Range starts at range_off and ends where the range ends or
 *   where its total says the object ends, whose total is size when size is
 *   known (>= 0), and whose Content-Length and body hold exactly that many
 *   bytes; or a 200 holding the whole object when range_off is 0 and the
 *   object fits (Content-Length present, and equal to size when known).
 *   A 416 is taken only when range_off is at or past the end (size, or the
 *   total its Content-Range names).
 * Anything else fails with e->code "MalformedReply" and a message that says
 * what differed. cancel, when not NULL, stops the exchange as soon as it
 * reads non-zero (-EINTR, e->curl_code CURLE_ABORTED_BY_CALLBACK).
 */
struct http_expect {
	long long range_off;
	size_t range_len;
	long long size;
	const char *etag;
	int need_etag;
	int need_length;
	const int *cancel;
};

struct http_response {
	int status;
	struct buf body;		/* used when the request has no sink */
	size_t sink_len;		/* bytes written to the sink */
	long long content_length;	/* -1 when absent, -2 when not a plain number */
	/*
	 * With an expectation met: the object's size as the answer gives it (a
	 * 206's Content-Range total, a 200's or a HEAD's Content-Length), or -1.
	 */
	long long total;
	char bad_header[32];		/* the first header dropped as invalid, or "" */
	char etag[128];
	char last_modified[64];
	char content_type[128];
	char content_range[96];
	char request_id[96];		/* x-amz-request-id (STS: x-amzn-RequestId) */
	char host_id[128];		/* x-amz-id-2 */
	char bucket_region[32];		/* x-amz-bucket-region */
	char storage_class[32];		/* x-amz-storage-class */
	char version_id[128];		/* x-amz-version-id */
	char date[64];
};

struct http_client *http_client_new(const struct http_config *cfg);
/*
 * Call off every exchange of c, running or to come: each ends within about a
 * second with -EINTR, as if its caller had cancelled it (never retried). For
 * shutdown, so that no thread waits out a hung server's time budget. Safe
 * from any thread; there is no way back.
 */
void http_client_close(struct http_client *c);
void http_client_free(struct http_client *c);

/*
 * Is an exchange of c expecting x (NULL: none) called off: x's caller set
 * its cancel, or c is closing? 0 or 1. For a retry loop's backoff
 * (struct retry's called_off): such an exchange would end with -EINTR.
 */
int http_called_off(const struct http_client *c, const struct http_expect *x);

void http_response_init(struct http_response *r);
void http_response_cleanup(struct http_response *r);

/*
 * Run one request. Returns 0 when an HTTP answer arrived (whatever its
 * status; e->http_status is set). Otherwise e says what went wrong and the
 * return value is the one table's errno for it (core/err.h): no answer
 * (e->curl_code set: ERR_TRANSPORT, ERR_TIMEOUT, ERR_TLS); an answer the
 * request's expectation rejects (code MalformedReply or PreconditionFailed,
 * with status and message; see struct http_expect); a body over its cap (a
 * success's is ReplyTooLarge, ERR_TOO_LARGE; an error's keeps its status).
 * Only a request the caller called off (http_expect.cancel) or one of a
 * closing client (http_client_close) gives -EINTR, and -ENOMEM is ours.
 */
int http_perform(struct http_client *c, const struct http_request *req,
		 struct http_response *resp, struct s3_error *e);

#endif
