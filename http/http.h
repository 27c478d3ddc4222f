/*
 * http: one HTTP request over a pooled curl easy handle.
 *
 * struct http_client owns a pool of easy handles (each keeps its own
 * connection cache, so keep-alive works without sharing a handle between
 * threads). http_perform() takes a handle, runs one request with a connect
 * timeout, a whole-transfer timeout and a stall detector, captures the
 * response headers irsafs cares about, and writes the body either into a
 * bounded struct buf or straight into a caller's fixed buffer. A handle that
 * saw a transport error is discarded rather than returned to the pool.
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
	long timeout_ms;		/* whole request; 0 = none (do not) */
	size_t max_body;		/* cap for the buf body */
	char *sink;			/* when set, the body goes here instead */
	size_t sink_cap;		/* ... and may not exceed this */
};

struct http_response {
	int status;
	struct buf body;		/* used when the request has no sink */
	size_t sink_len;		/* bytes written to the sink */
	long long content_length;	/* -1 when absent */
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
void http_client_free(struct http_client *c);

void http_response_init(struct http_response *r);
void http_response_cleanup(struct http_response *r);

/*
 * Run one request. Returns 0 when an HTTP answer arrived (whatever its
 * status; e->http_status is set), or a negative errno when none did
 * (e->curl_code set). A body over its cap fails with -EMSGSIZE.
 */
int http_perform(struct http_client *c, const struct http_request *req,
		 struct http_response *resp, struct s3_error *e);

#endif
