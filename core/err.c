#include "core/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

void err_clear(struct s3_error *e)
{
	memset(e, 0, sizeof(*e));
}

static int code_is(const struct s3_error *e, const char *code)
{
	return strcmp(e->code, code) == 0;
}

enum err_class err_classify(const struct s3_error *e)
{
	int s = e->http_status;

	if (e->curl_code != 0 && s == 0)
		return ERR_TRANSPORT;
	/* An answer, but not to the request sent (http_expect): ask again. */
	if (code_is(e, "MalformedReply"))
		return ERR_PROTOCOL;
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
	if (code_is(e, "ExpiredToken") || code_is(e, "ExpiredTokenException") ||
	    code_is(e, "InvalidToken") || code_is(e, "InvalidAccessKeyId") ||
	    code_is(e, "SignatureDoesNotMatch") || code_is(e, "TokenRefreshRequired"))
		return ERR_CREDENTIALS;
	if (code_is(e, "NoSuchBucket"))
		return ERR_NO_BUCKET;
	if (code_is(e, "PermanentRedirect") || code_is(e, "AuthorizationHeaderMalformed") ||
	    s == 301 || s == 307)
		return e->region[0] || s == 301 || s == 307 ? ERR_REDIRECT : ERR_BAD_REQUEST;
	if (s >= 200 && s < 300 && !e->code[0])
		return ERR_OK;
	if (code_is(e, "InvalidObjectState"))
		return ERR_DENIED;
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

int err_to_errno(const struct s3_error *e)
{
	switch (err_classify(e)) {
	case ERR_OK:
		return 0;
	case ERR_DENIED:
		return EACCES;
	case ERR_NOT_FOUND:
	case ERR_NO_BUCKET:
		return ENOENT;
	case ERR_PRECONDITION:
		return ESTALE;
	case ERR_RANGE:
		return ENXIO; /* callers treat it as end of file */
	case ERR_THROTTLED:
		return EAGAIN;
	case ERR_CREDENTIALS:
		return EKEYEXPIRED;
	case ERR_TRANSPORT:
		switch (e->curl_code) {
		case CURLE_OPERATION_TIMEDOUT:
			return ETIMEDOUT;
		case CURLE_ABORTED_BY_CALLBACK:
			return EINTR; /* the reader went away (http_expect.cancel) */
		default:
			return EIO;
		}
	case ERR_SERVER:
	case ERR_REDIRECT:
	case ERR_SKEW:
	case ERR_BAD_REQUEST:
	case ERR_PROTOCOL:
		break;
	}
	return EIO;
}

int err_is_retryable(const struct s3_error *e)
{
	switch (err_classify(e)) {
	case ERR_TRANSPORT:
		return e->curl_code != CURLE_ABORTED_BY_CALLBACK; /* cancelled: nobody waits */
	case ERR_THROTTLED:
	case ERR_SERVER:
	case ERR_PROTOCOL:
		return 1;
	default:
		return 0;
	}
}

const char *err_describe(const struct s3_error *e, char *out, unsigned len)
{
	if (e->http_status == 0 && e->curl_code)
		snprintf(out, len, "transport error: %s", curl_easy_strerror((CURLcode)e->curl_code));
	else if (e->code[0] && e->message[0])
		snprintf(out, len, "%d %s (%s)", e->http_status, e->code, e->message);
	else if (e->code[0])
		snprintf(out, len, "%d %s", e->http_status, e->code);
	else
		snprintf(out, len, "HTTP %d", e->http_status);
	return out;
}
