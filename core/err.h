/*
 * err: what went wrong with a remote call, and the one table that turns it
 * into an errno.
 *
 * struct s3_error carries the detail of a failed HTTP exchange (transport
 * error, HTTP status, the S3/STS <Code>, <Message>, the request ids and, for
 * redirects and archived objects, the region or storage class the server
 * named). http/, auth/ and s3/ fill it; err_classify() gives its class, and
 * the class alone decides which errno a user sees (err_class_errno(), the
 * one table: err_to_errno() is that table applied to an error) and what
 * another attempt may heal (err_is_retryable()). Above s3/ an error travels
 * as its class with the store's words (struct store_error, s3/store.h), and
 * its errno comes from the same table. Nowhere else is an errno chosen for
 * a remote outcome.
 *
 * That is irsafs's promise: a denial is EACCES, a missing key ENOENT, a
 * changed object ESTALE, a throttled or broken server EIO once retries are
 * spent - never the other way round, and never EAGAIN, EWOULDBLOCK or EINTR,
 * which applications take for "no data yet" or "call again" (Python's
 * buffered reader returns None on EAGAIN: shutil.copyfile then writes an
 * empty copy and reports success).
 *
 * The table (err_class_errno):
 *   ERR_DENIED          EACCES       403 AccessDenied (and any other 403)
 *   ERR_ARCHIVED        EACCES       403 InvalidObjectState: not restored;
 *                                    never a denial (fs/ does not mark it)
 *   ERR_NOT_FOUND       ENOENT       404 NoSuchKey, 404
 *   ERR_NO_BUCKET       ENOENT       404 NoSuchBucket
 *   ERR_PRECONDITION    ESTALE       412: the object changed (If-Match)
 *   ERR_RANGE           ENXIO        416: callers take it as end of file
 *   ERR_CREDS_EXPIRED   EKEYEXPIRED  ExpiredToken, InvalidToken,
 *                                    TokenRefreshRequired (after one refresh),
 *                                    or no valid credentials at all
 *   ERR_CREDS_REJECTED  EKEYREJECTED InvalidAccessKeyId, InvalidClientTokenId,
 *                                    SignatureDoesNotMatch
 *   ERR_TIMEOUT         ETIMEDOUT    no answer in time
 *   ERR_TRANSPORT, ERR_THROTTLED, ERR_SERVER, ERR_TLS, ERR_REDIRECT,
 *   ERR_SKEW, ERR_BAD_REQUEST, ERR_PROTOCOL, ERR_TOO_LARGE     EIO
 * Retryable: ERR_TRANSPORT (but not a transfer the caller called off),
 * ERR_TIMEOUT, ERR_THROTTLED, ERR_SERVER, ERR_PROTOCOL. A TLS certificate
 * error is not: no attempt can make an untrusted certificate trusted; nor is
 * a reply over its size cap (the same request gets the same reply).
 */
#ifndef IRSAFS_CORE_ERR_H
#define IRSAFS_CORE_ERR_H

enum err_class {
	ERR_OK = 0,
	ERR_TRANSPORT,		/* no HTTP answer: refused, reset, DNS, called off */
	ERR_TIMEOUT,		/* no (whole) answer within the request's time */
	ERR_TLS,		/* the server's certificate failed verification */
	ERR_DENIED,		/* 403 AccessDenied and friends */
	ERR_ARCHIVED,		/* 403 InvalidObjectState: archived, not restored */
	ERR_NOT_FOUND,		/* 404 NoSuchKey / plain 404 */
	ERR_NO_BUCKET,		/* 404 NoSuchBucket */
	ERR_PRECONDITION,	/* 412: the object changed (If-Match) */
	ERR_RANGE,		/* 416: range starts past the end */
	ERR_THROTTLED,		/* 503 SlowDown, 429, Throttling */
	ERR_SERVER,		/* other 5xx, IDPCommunicationError */
	ERR_CREDS_EXPIRED,	/* expired or revoked session, or no credentials */
	ERR_CREDS_REJECTED,	/* a key S3 does not know, a signature it rejects */
	ERR_REDIRECT,		/* 301/307/400 naming another region */
	ERR_SKEW,		/* RequestTimeTooSkewed */
	ERR_BAD_REQUEST,	/* any other 4xx */
	ERR_PROTOCOL,		/* an answer we could not parse, or not to the request sent */
	ERR_TOO_LARGE,		/* an answer larger than its cap (ReplyTooLarge) */
};

struct s3_error {
	int http_status;	/* 0 when there was no HTTP answer */
	int curl_code;		/* CURLcode, 0 when the transport worked */
	char code[64];		/* <Code>, "" when none */
	char message[256];	/* <Message>, "" when none */
	char request_id[96];	/* x-amz-request-id / <RequestId> */
	char host_id[128];	/* x-amz-id-2 / <HostId> */
	char region[32];	/* region named by a redirect, "" when none */
	char storage_class[32];	/* <StorageClass> of InvalidObjectState */
	char access_tier[32];	/* <AccessTier> of InvalidObjectState */
	long long latency_us;	/* the whole operation, every attempt and wait
				   (set by whoever ran it; 0: not known) */
};

void err_clear(struct s3_error *e);

/* Classify an error (transport, status and code together). */
enum err_class err_classify(const struct s3_error *e);

/*
 * The one errno table: the errno (positive) of a class. ERR_OK gives 0.
 * Never EAGAIN, EWOULDBLOCK or EINTR.
 */
int err_class_errno(enum err_class cls);

/* The table applied to e: err_class_errno(err_classify(e)). */
int err_to_errno(const struct s3_error *e);

/* May another attempt of a request that failed with this class succeed? */
int err_class_retryable(enum err_class cls);

/* May another attempt of the same request succeed? (Not one called off.) */
int err_is_retryable(const struct s3_error *e);

/* Was it a timeout (a retry of it costs more of the shared retry budget)? */
int err_is_timeout(const struct s3_error *e);

/*
 * Short text for logs: "403 AccessDenied (message)", "transport error: ...".
 * A TLS error says to check AWS_CA_BUNDLE. Never the request ids (see
 * err_ids), so that a text logged once stays one text.
 */
const char *err_describe(const struct s3_error *e, char *out, unsigned len);

/*
 * The request ids AWS support asks for, as " [request id X, id-2 Y]", or ""
 * when the answer carried none. Meant to end a log line.
 */
const char *err_ids(const struct s3_error *e, char *out, unsigned len);

/* Fill the request ids from response headers where the body gave none. */
void err_set_ids(struct s3_error *e, const char *request_id, const char *host_id);

/*
 * The symbolic name of an errno irsafs can return ("EACCES", "ENOENT", ...),
 * or NULL for one it never does. The same names label metrics and log fields.
 */
const char *err_errno_name(int errnum);

struct log_fields;
/*
 * Fill a log line's fields from e (core/log.h): status, code, errno (from the
 * one table), request ids, latency. op, bucket and key are the caller's. The
 * strings point into e.
 */
void err_log_fields(const struct s3_error *e, struct log_fields *f);

#endif
