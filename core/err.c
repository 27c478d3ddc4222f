/*
 * The one errno table (see err.h for the whole of it) and the texts that name
 * a failed request in logs.
 */
#include "core/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "core/log.h"

void err_clear(struct s3_error *e)
{
	memset(e, 0, sizeof(*e));
}

static int code_is(const struct s3_error *e, const char *code)
{
	return strcmp(e->code, code) == 0;
}

/* curl codes that mean "the peer's certificate is not trusted" (or the CA file is bad). */
static int curl_is_tls(int cc)
{
	switch (cc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		return 1;
	default:
		return 0;
	}
}

enum err_class err_classify(const struct s3_error *e)
{
	int s = e->http_status;

	if (e->curl_code != 0 && s == 0) {
		if (e->curl_code == CURLE_OPERATION_TIMEDOUT)
			return ERR_TIMEOUT;
		return curl_is_tls(e->curl_code) ? ERR_TLS : ERR_TRANSPORT;
	}
	/* An answer, but not to the request sent (http_expect): ask again. */
	if (code_is(e, "MalformedReply"))
		return ERR_PROTOCOL;
	/* Ours: the answer was larger than the request allows (http.c). */
	if (code_is(e, "ReplyTooLarge"))
		return ERR_TOO_LARGE;
	if (code_is(e, "PreconditionFailed"))
		return ERR_PRECONDITION;
	if (code_is(e, "SlowDown") || code_is(e, "Throttling") || code_is(e, "ThrottlingException") ||
	    code_is(e, "RequestLimitExceeded") || code_is(e, "TooManyRequestsException") || s == 429)
		return ERR_THROTTLED;
	/* S3 answers a throttled HEAD with a bare 503: no body to name SlowDown. */
	if (s == 503 && !e->code[0])
		return ERR_THROTTLED;
	if (code_is(e, "RequestTimeTooSkewed"))
		return ERR_SKEW;
	/*
	 * The session is over (revoked, or expired by S3's clock): a refresh
	 * heals it. NoCredentials is ours: none could be had at all.
	 */
	if (code_is(e, "ExpiredToken") || code_is(e, "ExpiredTokenException") ||
	    code_is(e, "InvalidToken") || code_is(e, "TokenRefreshRequired") ||
	    code_is(e, "NoCredentials"))
		return ERR_CREDS_EXPIRED;
	/* Not expired: a key S3 does not know, a signature it does not accept. */
	if (code_is(e, "InvalidAccessKeyId") || code_is(e, "InvalidClientTokenId") ||
	    code_is(e, "SignatureDoesNotMatch"))
		return ERR_CREDS_REJECTED;
	if (code_is(e, "NoSuchBucket"))
		return ERR_NO_BUCKET;
	if (code_is(e, "PermanentRedirect") || code_is(e, "AuthorizationHeaderMalformed") ||
	    s == 301 || s == 307)
		return e->region[0] || s == 301 || s == 307 ? ERR_REDIRECT : ERR_BAD_REQUEST;
	if (s >= 200 && s < 300 && !e->code[0])
		return ERR_OK;
	/* Archived (GLACIER, DEEP_ARCHIVE, an Intelligent-Tiering archive tier). */
	if (code_is(e, "InvalidObjectState"))
		return ERR_ARCHIVED;
	/* STS could not reach the identity provider: transient. */
	if (code_is(e, "IDPCommunicationError"))
		return ERR_SERVER;
	switch (s) {
	case 403:
		return ERR_DENIED;
	case 404:
		return ERR_NOT_FOUND;
	case 412:
		return ERR_PRECONDITION;
	case 416:
		return ERR_RANGE;
	case 304:
		return ERR_OK;
	}
	if (s >= 500 || code_is(e, "InternalError") || code_is(e, "ServiceUnavailable") ||
	    code_is(e, "RequestTimeout"))
		return ERR_SERVER;
	if (s >= 200 && s < 300)
		return ERR_SERVER; /* an <Error> document inside a 200 */
	return ERR_BAD_REQUEST;
}

int err_class_errno(enum err_class cls)
{
	switch (cls) {
	case ERR_OK:
		return 0;
	case ERR_DENIED:
	case ERR_ARCHIVED:
		return EACCES;
	case ERR_NOT_FOUND:
	case ERR_NO_BUCKET:
		return ENOENT;
	case ERR_PRECONDITION:
		return ESTALE;
	case ERR_RANGE:
		return ENXIO; /* callers treat it as end of file */
	case ERR_CREDS_EXPIRED:
		return EKEYEXPIRED;
	case ERR_CREDS_REJECTED:
		return EKEYREJECTED;
	case ERR_TIMEOUT:
		return ETIMEDOUT;
	case ERR_THROTTLED:
		/*
		 * Not EAGAIN: a blocking read that says "try again" is taken
		 * for "no data yet" (Python's buffered I/O returns None, and
		 * shutil.copyfile wrote an empty copy). Retries are spent: EIO.
		 */
	case ERR_SERVER:
	case ERR_TLS:
	case ERR_REDIRECT:
	case ERR_SKEW:
	case ERR_BAD_REQUEST:
	case ERR_PROTOCOL:
	case ERR_TRANSPORT:
	case ERR_TOO_LARGE:
		break;
	}
	return EIO;
}

int err_to_errno(const struct s3_error *e)
{
	return err_class_errno(err_classify(e));
}

int err_class_retryable(enum err_class cls)
{
	switch (cls) {
	case ERR_TRANSPORT:
	case ERR_TIMEOUT:
	case ERR_THROTTLED:
	case ERR_SERVER:
	case ERR_PROTOCOL:
		return 1;
	default:
		return 0;
	}
}

int err_is_retryable(const struct s3_error *e)
{
	enum err_class cls = err_classify(e);

	/* Called off (http_expect.cancel): nobody waits; the caller says -EINTR. */
	if (cls == ERR_TRANSPORT && e->curl_code == CURLE_ABORTED_BY_CALLBACK)
		return 0;
	return err_class_retryable(cls);
}

int err_is_timeout(const struct s3_error *e)
{
	return err_classify(e) == ERR_TIMEOUT;
}

const char *err_describe(const struct s3_error *e, char *out, unsigned len)
{
	if (e->http_status == 0 && e->curl_code && curl_is_tls(e->curl_code))
		snprintf(out, len, "TLS error: %s (is the CA that signed the server's certificate "
			 "in AWS_CA_BUNDLE, and does the certificate name this host?)",
			 curl_easy_strerror((CURLcode)e->curl_code));
	else if (e->http_status == 0 && e->curl_code)
		snprintf(out, len, "transport error: %s", curl_easy_strerror((CURLcode)e->curl_code));
	else if (e->http_status == 0 && e->code[0])
		/* Ours, not a server's (NoCredentials): no status to show. */
		snprintf(out, len, "%s%s%s%s", e->code, e->message[0] ? " (" : "", e->message,
			 e->message[0] ? ")" : "");
	else if (e->code[0] && e->message[0])
		snprintf(out, len, "%d %s (%s)", e->http_status, e->code, e->message);
	else if (e->code[0])
		snprintf(out, len, "%d %s", e->http_status, e->code);
	else
		snprintf(out, len, "HTTP %d", e->http_status);
	return out;
}

const char *err_ids(const struct s3_error *e, char *out, unsigned len)
{
	if (e->request_id[0] && e->host_id[0])
		snprintf(out, len, " [request id %s, id-2 %s]", e->request_id, e->host_id);
	else if (e->request_id[0])
		snprintf(out, len, " [request id %s]", e->request_id);
	else if (e->host_id[0])
		snprintf(out, len, " [id-2 %s]", e->host_id);
	else if (len)
		out[0] = '\0';
	return out;
}

void err_set_ids(struct s3_error *e, const char *request_id, const char *host_id)
{
	if (!e->request_id[0] && request_id)
		snprintf(e->request_id, sizeof(e->request_id), "%s", request_id);
	if (!e->host_id[0] && host_id)
		snprintf(e->host_id, sizeof(e->host_id), "%s", host_id);
}

#define ERRNO_NAME(e) { e, #e }

const char *err_errno_name(int errnum)
{
	static const struct {
		int n;
		const char *name;
	} names[] = {
		ERRNO_NAME(EACCES), ERRNO_NAME(ENOENT), ERRNO_NAME(EIO), ERRNO_NAME(ETIMEDOUT),
		ERRNO_NAME(ESTALE), ERRNO_NAME(EKEYEXPIRED), ERRNO_NAME(EKEYREJECTED),
		ERRNO_NAME(EROFS), ERRNO_NAME(ENAMETOOLONG), ERRNO_NAME(ENOTDIR), ERRNO_NAME(EISDIR),
		ERRNO_NAME(ENOMEM), ERRNO_NAME(EINVAL), ERRNO_NAME(ENODATA), ERRNO_NAME(ERANGE),
		ERRNO_NAME(EOPNOTSUPP), ERRNO_NAME(ENXIO), ERRNO_NAME(EPROTO), ERRNO_NAME(EMSGSIZE),
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].n == errnum)
			return names[i].name;
	return NULL;
}

void err_log_fields(const struct s3_error *e, struct log_fields *f)
{
	f->status = e->http_status;
	f->code = e->code;
	f->err = err_to_errno(e);
	f->request_id = e->request_id;
	f->id2 = e->host_id;
	f->latency_us = e->latency_us;
}
