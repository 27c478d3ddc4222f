/*
 * err: what went wrong with a remote call, and the one table that turns it
 * into an errno.
 *
 * struct s3_error carries the detail of a failed HTTP exchange (transport
 * error, HTTP status, the S3/STS <Code>, <Message>, request id and, for
 * redirects, the region the server named). Every layer fills it; only
 * err_to_errno() decides which errno a user sees. That is irsafs's promise:
 * a denial is EACCES, a missing key ENOENT, a changed object ESTALE, a
 * throttled or broken server EAGAIN/EIO once retries are spent - never the
 * other way round.
 */
#ifndef IRSAFS_CORE_ERR_H
#define IRSAFS_CORE_ERR_H

enum err_class {
	ERR_OK = 0,
	ERR_TRANSPORT,		/* no HTTP answer: refused, reset, timeout, DNS */
	ERR_DENIED,		/* 403 AccessDenied and friends */
	ERR_NOT_FOUND,		/* 404 NoSuchKey / plain 404 */
	ERR_NO_BUCKET,		/* 404 NoSuchBucket */
	ERR_PRECONDITION,	/* 412: the object changed (If-Match) */
	ERR_RANGE,		/* 416: range starts past the end */
	ERR_THROTTLED,		/* 503 SlowDown, 429, Throttling */
	ERR_SERVER,		/* other 5xx */
	ERR_CREDENTIALS,	/* no usable credentials (expired, STS refused) */
	ERR_REDIRECT,		/* 301/307/400 naming another region */
	ERR_SKEW,		/* RequestTimeTooSkewed */
	ERR_BAD_REQUEST,	/* any other 4xx */
	ERR_PROTOCOL,		/* an answer we could not parse */
};

struct s3_error {
	int http_status;	/* 0 when there was no HTTP answer */
	int curl_code;		/* CURLcode, 0 when the transport worked */
	char code[64];		/* <Code>, "" when none */
	char message[256];	/* <Message>, "" when none */
	char request_id[96];
	char region[32];	/* region named by a redirect, "" when none */
};

void err_clear(struct s3_error *e);

/* Classify an error (transport, status and code together). */
enum err_class err_classify(const struct s3_error *e);

/* The one errno table. ERR_OK gives 0. */
int err_to_errno(const struct s3_error *e);

/* May another attempt of the same request succeed? */
int err_is_retryable(const struct s3_error *e);

/* Short text for logs: "403 AccessDenied", "transport: Connection refused". */
const char *err_describe(const struct s3_error *e, char *out, unsigned len);

#endif
