/*
 * The S3 store: addressing, signing, retries, and the three operations.
 *
 * One logical operation (HEAD, a ranged GET, one ListObjectsV2 page) is one
 * retry_run (http/retry.h) inside a time budget, sharing the store's retry
 * token bucket with every other operation. Each attempt takes a reference to
 * the current credentials (waiting for a refresh only inside the budget),
 * signs a fresh request (a new x-amz-date each time), and runs it. What can
 * heal is retried with jittered backoff. Three answers are fixed and the
 * request sent again at once, each at most once per operation:
 *  - credentials S3 rejects as expired or revoked (ExpiredToken,
 *    InvalidToken, TokenRefreshRequired, or a 403 while they are about to
 *    expire: radosgw says AccessDenied): one refresh, shared by every thread
 *    that saw the rejection; if the fresh ones are rejected too, EKEYEXPIRED;
 *  - a redirect naming the bucket's region: this request goes there; the
 *    mount follows only once a request there has succeeded;
 *  - a skewed clock: sign with the server's time from now on.
 * Everything else ends the operation with the errno from the one table in
 * core/err.c. Every log line about a failed request ends with its request
 * ids (x-amz-request-id, x-amz-id-2).
 */
#include "s3/s3.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/creds.h"
#include "auth/sigv4.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/redact.h"
#include "core/strutil.h"
#include "http/http.h"
#include "http/retry.h"
#include "http/xml.h"
#include "s3/s3_xml.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define LIST_BODY_MAX XML_MAX_BODY
#define ERROR_BODY_MAX (64 * 1024)
#define URL_MAX (16 * 1024)

struct s3 {
	struct store base;		/* first: the store is cast back */
	struct http_client *http;
	struct creds_cache *creds;
	char *bucket;
	char *region;
	char *scheme;			/* "http" or "https" */
	char *host;			/* Host header: host[:port], bucket-prefixed when virtual */
	char *endpoint;			/* as configured or derived, for logs */
	int path_style;
	int page_size;
	struct retry_policy policy;
	struct retry_bucket retries;	/* the retry budget all operations share */
	/*
	 * Where the bucket really is, once a redirected request succeeded
	 * there. Written once under redirect_lock before `redirected` is set
	 * (release); readers check `redirected` (acquire) and never take the
	 * lock.
	 */
	pthread_mutex_t redirect_lock;
	int redirected;
	char redirect_region[32];
	char *redirect_host;
	int aws_endpoint;		/* endpoint derived from the region */
	unsigned long long *requests;
};

/* One logical request, before signing. */
struct s3_req {
	const char *method;
	const char *action;		/* IAM action, for denial logs */
	const char *key;		/* NULL: the bucket itself */
	const char *query;		/* canonical order, encoded; NULL for none */
	const char *range;		/* "bytes=a-b" or NULL */
	const char *if_match;
	char *sink;
	size_t sink_cap;
	size_t max_body;
	const char *what;		/* "bytes=0-99" or "prefix=dir/" for logs */
	int quiet;			/* a denial is the caller's to report */
	const struct http_expect *expect;	/* the answer it can use; NULL: any */
};

const char *s3_store_endpoint(const struct store *st)
{
	return ((const struct s3 *)st)->endpoint;
}

/*
 * Split "scheme://host[:port][/...]" into scheme and the Host header value
 * (the port kept only when it is not the scheme's default).
 */
static int endpoint_parse(const char *url, char **scheme, char **host, char *why, size_t whylen)
{
	const char *p = strstr(url, "://"), *end, *port;
	size_t n;

	if (!p || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))) {
		snprintf(why, whylen, "endpoint URL '%s' must start with http:// or https://", url);
		return -EINVAL;
	}
	*scheme = strndup(url, (size_t)(p - url));
	if (!*scheme) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	p += 3;
	end = p + strcspn(p, "/?#");
	n = (size_t)(end - p);
	if (n == 0) {
		/* The caller frees what is set: leave nothing dangling. */
		free(*scheme);
		*scheme = NULL;
		snprintf(why, whylen, "endpoint URL '%s' has no host", url);
		return -EINVAL;
	}
	port = NULL;
	if (*p == '[') {
		const char *close = memchr(p, ']', n);

		if (close && close + 1 < end && close[1] == ':')
			port = close + 1;
	} else {
		port = memchr(p, ':', n);
	}
	if (port && ((!strcmp(*scheme, "http") && end - port == 3 && !strncmp(port, ":80", 3)) ||
		     (!strcmp(*scheme, "https") && end - port == 4 && !strncmp(port, ":443", 4))))
		n = (size_t)(port - p);
	*host = strndup(p, n);
	if (!*host) {
		free(*scheme);
		*scheme = NULL;
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* What r is, for metrics and log fields: HEAD, GET of an object, or LIST. */
static int req_op(const struct s3_req *r)
{
	if (!strcmp(r->method, "HEAD"))
		return METRICS_OP_HEAD;
	return r->key ? METRICS_OP_GET : METRICS_OP_LIST;
}

/* The op, bucket and key (a listing's prefix) of r, for log_op. */
static void req_fields(const struct s3 *s, const struct s3_req *r, struct log_fields *f)
{
	memset(f, 0, sizeof(*f));
	f->op = metrics_op_name(req_op(r));
	f->bucket = s->bucket;
	if (r->key)
		f->key = r->key;
	else if (r->what && !strncmp(r->what, "prefix=", 7))
		f->key = r->what + 7;	/* "" for the root: still a key field */
}

/* "GET s3://bucket/key bytes=0-99": the request, as log lines name it. */
static void describe_req(const struct s3 *s, const struct s3_req *r, char *out, size_t len)
{
	snprintf(out, len, "%s s3://%s/%s%s%s", r->method, s->bucket, r->key ? r->key : "",
		 r->what && r->what[0] ? " " : "", r->what ? r->what : "");
}

/*
 * A GetObject denied although the role may have s3:GetObject: AWS names KMS
 * in the message when the object is SSE-KMS encrypted and the role may not
 * use its key ("... is not authorized to perform: kms:Decrypt ...").
 */
static int denial_is_kms(const struct s3_req *r, const struct s3_error *e)
{
	return r->key && !strcmp(r->action, "s3:GetObject") && strcasestr(e->message, "kms");
}

/*
 * The store's words for a failed request (struct store_error): its class,
 * its texts, and for a denial who was refused what. cr: the credentials the
 * request was signed with (NULL: none), naming the principal.
 */
static void error_out(struct s3 *s, const struct s3_req *r, const struct creds *cr,
		      const struct s3_error *se, struct store_error *e)
{
	enum err_class cls = err_classify(se);

	store_error_clear(e);
	e->cls = cls;
	e->http_status = se->http_status;
	snprintf(e->code, sizeof(e->code), "%s", se->code);
	/*
	 * A HEAD's 403 has no body; call it what S3 means by it, so that a HEAD
	 * and a GET of one key give one denial, not two.
	 */
	if (cls == ERR_DENIED && se->http_status == 403 && !se->code[0])
		snprintf(e->what, sizeof(e->what), "403 AccessDenied");
	else
		err_describe(se, e->what, sizeof(e->what));
	err_ids(se, e->ids, sizeof(e->ids));
	snprintf(e->request_id, sizeof(e->request_id), "%s", se->request_id);
	snprintf(e->host_id, sizeof(e->host_id), "%s", se->host_id);
	snprintf(e->storage_class, sizeof(e->storage_class), "%s", se->storage_class);
	snprintf(e->access_tier, sizeof(e->access_tier), "%s", se->access_tier);
	snprintf(e->region, sizeof(e->region), "%s", se->region);
	e->latency_us = se->latency_us;
	snprintf(e->op, sizeof(e->op), "%s", metrics_op_name(req_op(r)));
	snprintf(e->bucket, sizeof(e->bucket), "%s", s->bucket);
	if (r->key)
		snprintf(e->key, sizeof(e->key), "%s", r->key);
	else if (r->what && !strncmp(r->what, "prefix=", 7))
		snprintf(e->key, sizeof(e->key), "%s", r->what + 7);
	if (cls != ERR_DENIED)
		return;
	snprintf(e->action, sizeof(e->action), "%s", r->action);
	if (r->key)
		snprintf(e->resource, sizeof(e->resource), "arn:aws:s3:::%s/%s", s->bucket, r->key);
	else if (r->what && !strncmp(r->what, "prefix=", 7) && r->what[7])
		snprintf(e->resource, sizeof(e->resource), "arn:aws:s3:::%s (prefix %s)", s->bucket,
			 r->what + 7);
	else
		snprintf(e->resource, sizeof(e->resource), "arn:aws:s3:::%s (%s)", s->bucket,
			 !r->what || !strcmp(r->what, "prefix=") ? "no prefix: the bucket's root"
								 : r->what);
	snprintf(e->principal, sizeof(e->principal), "%s",
		 cr && cr->principal_arn ? cr->principal_arn : "this identity");
	if (denial_is_kms(r, se))
		snprintf(e->hint, sizeof(e->hint), "the object is encrypted with SSE-KMS: the role "
			 "also needs kms:Decrypt on its key (packaging/kubernetes/iam-policy-kms.json)");
	else
		snprintf(e->hint, sizeof(e->hint), "add it to the role's policy or read another path");
}

/* S3 does not take these credentials at all (not expired: rejected). */
static void log_rejected(struct s3 *s, const char *req, const struct log_fields *f,
			 const struct creds *cr, const struct s3_error *e)
{
	char what[320], ids[256], key[96];
	const char *cause;

	if (!strcmp(e->code, "SignatureDoesNotMatch"))
		cause = "S3 computed another signature: the secret key does not belong to the "
			"access key (static keys copied wrong, or with a stray character), or "
			"something between irsafs and S3 (a proxy) rewrites the request";
	else
		cause = "S3 does not know the access key: the credentials come from another "
			"partition or endpoint than the bucket's (AWS_ENDPOINT_URL_STS and the S3 "
			"endpoint disagree, or a custom endpoint that does not know AWS keys), or "
			"the key was deleted or deactivated";
	snprintf(key, sizeof(key), "rejected %s", e->code);
	log_op_once_key(LOG_ERR, key, f, "%s -> %s: the credentials of %s (from %s) were "
			"rejected; %s. File operations fail with EKEYREJECTED%s", req,
			err_describe(e, what, sizeof(what)),
			cr && cr->principal_arn ? cr->principal_arn : "this identity",
			creds_cache_source(s->creds), cause, err_ids(e, ids, sizeof(ids)));
}

/*
 * Sign and send one attempt, for region at host (NULL: the mount's). 0 when
 * an HTTP answer arrived; its request ids are then in e.
 */
static int s3_attempt(struct s3 *s, const struct s3_req *r, const struct creds *cr,
		      const char *to_region, const char *to_host, long timeout_ms,
		      struct http_response *resp, struct s3_error *e)
{
	struct sigv4_header sh[6];
	const char *lines[7];
	char date[17], *hl[7] = { 0 };
	struct buf path, url, auth;
	struct sigv4_input in;
	size_t nh = 0, i;
	const char *region = s->region, *host = s->host;
	int rc;

	if (to_region) {
		region = to_region;
		host = to_host;
	} else if (__atomic_load_n(&s->redirected, __ATOMIC_ACQUIRE)) {
		region = s->redirect_region;
		host = s->redirect_host;
	}
	buf_init(&path, URL_MAX);
	buf_init(&url, URL_MAX);
	buf_init(&auth, 4096);
	if (s->path_style) {
		rc = buf_puts(&path, "/");
		if (!rc)
			rc = uri_encode(&path, s->bucket, strlen(s->bucket), 0);
		if (!rc && r->key)
			rc = buf_puts(&path, "/");
	} else {
		rc = buf_puts(&path, "/");
	}
	if (!rc && r->key)
		rc = uri_encode(&path, r->key, strlen(r->key), 1);
	if (!rc)
		rc = buf_printf(&url, "%s://%s%s%s%s", s->scheme, host, path.data,
				r->query ? "?" : "", r->query ? r->query : "");
	if (rc)
		goto out;

	time_format_amz(creds_cache_now(s->creds), date);
	sh[nh++] = (struct sigv4_header){ "host", host };
	sh[nh++] = (struct sigv4_header){ "x-amz-content-sha256", EMPTY_SHA256 };
	sh[nh++] = (struct sigv4_header){ "x-amz-date", date };
	if (cr->session_token)
		sh[nh++] = (struct sigv4_header){ "x-amz-security-token", cr->session_token };
	if (r->range)
		sh[nh++] = (struct sigv4_header){ "range", r->range };
	if (r->if_match)
		sh[nh++] = (struct sigv4_header){ "if-match", r->if_match };
	in = (struct sigv4_input){
		.method = r->method, .path = path.data, .query = r->query,
		.headers = sh, .nheaders = nh, .payload_hash = EMPTY_SHA256,
		.amz_date = date, .region = region, .service = "s3", .normalize_path = 0,
	};
	rc = sigv4_authorization(&in, cr->access_key_id, cr->secret_access_key, &auth);
	if (rc)
		goto out;
	for (i = 0; i < nh; i++) {
		if (asprintf(&hl[i], "%s: %s", sh[i].name, sh[i].value) < 0) {
			hl[i] = NULL;
			rc = -ENOMEM;
			goto out;
		}
		lines[i] = hl[i];
	}
	if (asprintf(&hl[nh], "Authorization: %s", auth.data) < 0) {
		hl[nh] = NULL;
		rc = -ENOMEM;
		goto out;
	}
	lines[nh] = hl[nh];

	{
		struct http_request req = {
			.method = r->method, .url = url.data, .headers = lines, .nheaders = nh + 1,
			.timeout_ms = timeout_ms, .max_body = r->max_body,
			.sink = r->sink, .sink_cap = r->sink_cap, .expect = r->expect,
		};

		if (s->requests)
			__atomic_add_fetch(s->requests, 1, __ATOMIC_RELAXED);
		rc = http_perform(s->http, &req, resp, e);
		metrics_request(req_op(r), resp->status);
		if (rc == 0)
			err_set_ids(e, resp->request_id, resp->host_id);
	}
out:
	for (i = 0; i <= nh && i < 7; i++) {
		if (hl[i]) {
			/* The token and signature lines: wipe (not memset: kept) before free. */
			OPENSSL_cleanse(hl[i], strlen(hl[i]));
			free(hl[i]);
		}
	}
	buf_cleanup(&path);
	buf_cleanup(&url);
	buf_cleanse(&auth);
	return rc;
}

/*
 * Where a redirect points: the host for region (AWS's own endpoints move to
 * the region's host; any other endpoint keeps its host). malloc'd, NULL when
 * region is no region or out of memory.
 */
static char *region_host(const struct s3 *s, const char *region)
{
	char *host = NULL;

	if (!region[0] || strlen(region) >= sizeof(s->redirect_region) ||
	    strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(region))
		return NULL;
	if (!s->aws_endpoint)
		return strdup(s->host);
	if (asprintf(&host, "%s%ss3.%s.amazonaws.com%s", s->path_style ? "" : s->bucket,
		     s->path_style ? "" : ".", region,
		     strncmp(region, "cn-", 3) == 0 ? ".cn" : "") < 0)
		return NULL;
	return host;
}

/* The region requests are signed for now. */
static const char *current_region(const struct s3 *s)
{
	return __atomic_load_n(&s->redirected, __ATOMIC_ACQUIRE) ? s->redirect_region : s->region;
}

/*
 * A request succeeded in the region a redirect named: the bucket is there.
 * Sign for that region from now on (the first such region wins: a bucket
 * does not move, and a second move would flap).
 */
static void adopt_region(struct s3 *s, const char *region, const char *host)
{
	char *copy;

	pthread_mutex_lock(&s->redirect_lock);
	if (__atomic_load_n(&s->redirected, __ATOMIC_ACQUIRE) || !strcmp(region, s->region))
		goto out;
	copy = strdup(host);
	if (!copy)
		goto out;
	snprintf(s->redirect_region, sizeof(s->redirect_region), "%s", region);
	s->redirect_host = copy;
	__atomic_store_n(&s->redirected, 1, __ATOMIC_RELEASE);
	/* The redirect itself was logged (once) as a warning; this is its outcome. */
	log_msg(LOG_NOTICE, "bucket %s answers in region %s: requests are signed for %s from now "
		"on (pass --region %s to skip this detour)", s->bucket, region, region, region);
out:
	pthread_mutex_unlock(&s->redirect_lock);
}

/*
 * RequestTimeTooSkewed, or a denial whose Date is far from ours: sign with
 * the server's clock from now on. Returns 1 when the offset changed.
 */
static int correct_clock(struct s3 *s, const struct s3_error *e, const struct http_response *resp)
{
	long old = creds_cache_clock_offset(s->creds), off;
	char ids[256];
	time_t server;

	if (!resp->date[0] || time_parse_rfc1123(resp->date, &server) != 0)
		return 0;
	off = (long)(server - time(NULL));
	if (err_classify(e) != ERR_SKEW && !(e->http_status == 403 && labs(off - old) > 300))
		return 0;
	if (labs(off - old) < 2)
		return 0;
	creds_cache_set_clock_offset(s->creds, off);
	log_msg(LOG_WARNING, "the local clock is %ld s %s the server's (%d %s): signing with "
		"the corrected time from now on; fix the clock (NTP)%s", labs(off),
		off > 0 ? "behind" : "ahead of", e->http_status,
		e->code[0] ? e->code : "Date header", err_ids(e, ids, sizeof(ids)));
	return 1;
}

/* One logical request: what its attempts share. */
struct s3_op {
	struct s3 *s;
	const struct s3_req *r;
	struct http_response *resp;
	struct creds *cr;		/* the last attempt's credentials (a reference) */
	int refreshed;			/* rejected credentials were replaced once */
	int skewed;			/* the clock was corrected once */
	char region[32];		/* a redirect sent this request here ("": no) */
	char *host;			/* ... at this host */
	char what[1400];		/* "GET s3://bucket/key bytes=0-99" */
};

/*
 * The answer was a redirect naming a region: send this request there, once,
 * and say so once per (from, to). 1 when worth sending again.
 */
static int follow_redirect(struct s3_op *op, const struct s3_error *e)
{
	const char *cur = current_region(op->s);
	char desc[320], ids[256], key[160];

	if (op->host || !strcmp(e->region, cur))
		return 0;
	op->host = region_host(op->s, e->region);
	if (!op->host)
		return 0;
	snprintf(op->region, sizeof(op->region), "%s", e->region);
	snprintf(key, sizeof(key), "redirect %d %s %s", e->http_status, cur, e->region);
	log_once_key(LOG_WARNING, key, "%s -> %s: the bucket %s is in region %s, not %s: sending "
		     "the request there; requests are signed for %s once one succeeds there%s",
		     op->what, err_describe(e, desc, sizeof(desc)), op->s->bucket, e->region, cur,
		     e->region, err_ids(e, ids, sizeof(ids)));
	return 1;
}

/*
 * A server's words (its Code, Message, request ids, a region) reach log lines
 * and the root's last_denial xattr: take the credentials the request was
 * signed with out of them first, so that a server, or a proxy, that echoes
 * the request cannot put the keys or the session token into a log.
 */
static void redact_creds(struct s3_error *e, const struct creds *cr)
{
	const char *secrets[] = { cr->access_key_id, cr->secret_access_key, cr->session_token };
	struct {
		char *text;
		size_t cap;
	} said[] = {
		{ e->code, sizeof(e->code) }, { e->message, sizeof(e->message) },
		{ e->request_id, sizeof(e->request_id) }, { e->host_id, sizeof(e->host_id) },
		{ e->region, sizeof(e->region) }, { e->storage_class, sizeof(e->storage_class) },
		{ e->access_tier, sizeof(e->access_tier) },
	};
	size_t k;

	for (k = 0; k < sizeof(said) / sizeof(said[0]); k++)
		redact_text(said[k].text, said[k].cap, secrets, 3);
}

/* One attempt of op (retry_attempt_fn). */
static int s3_try(void *arg, struct retry *rt, struct s3_error *e)
{
	struct s3_op *op = arg;
	struct s3 *s = op->s;
	struct http_response *resp = op->resp;
	char why[CREDS_WHY_LEN], what[320], reason[2000], ids[256];
	enum err_class cls;
	int rc;

	err_clear(e);
	creds_release(op->cr);
	op->cr = NULL;
	/* Waiting for a refresh counts inside the operation's budget. */
	rc = creds_cache_acquire_until(s->creds, retry_deadline_ms(rt), &op->cr, why, sizeof(why));
	if (rc) {
		/* The cache logs the outage once; this is per operation. */
		log_msg(LOG_DEBUG, "%s: no valid credentials: %s", op->what, why);
		snprintf(e->code, sizeof(e->code), "NoCredentials");
		snprintf(e->message, sizeof(e->message), "%.255s", why);
		return -err_to_errno(e);
	}
	rc = s3_attempt(s, op->r, op->cr, op->host ? op->region : NULL, op->host,
			retry_attempt_ms(rt), resp, e);
	if (rc == -ENOMEM)
		return rc;
	if (rc && err_classify(e) == ERR_TOO_LARGE) {
		struct log_fields f;

		req_fields(s, op->r, &f);
		err_log_fields(e, &f);
		log_op(LOG_ERR, &f, "%s: reply larger than expected%s", op->what,
		       err_ids(e, ids, sizeof(ids)));
		return rc;
	}
	/*
	 * No answer, an answer not to this request (http_expect), or an error
	 * whose body was over its cap: e says which, rc is the table's.
	 */
	if (rc)
		return rc;
	if ((resp->status >= 200 && resp->status < 300) || resp->status == 304) {
		if (op->host)
			adopt_region(s, op->region, op->host);
		creds_cache_accepted(s->creds, op->cr);
		return 0;
	}
	xml_parse_error(resp->body.data, resp->body.len, e);
	e->http_status = resp->status;
	if (resp->bucket_region[0] && !e->region[0])
		snprintf(e->region, sizeof(e->region), "%s", resp->bucket_region);
	redact_creds(e, op->cr);
	if (log_enabled(LOG_DEBUG))
		log_msg(LOG_DEBUG, "%s -> %s%s", op->what, err_describe(e, what, sizeof(what)),
			err_ids(e, ids, sizeof(ids)));
	cls = err_classify(e);
	if (cls == ERR_REDIRECT && follow_redirect(op, e))
		return RETRY_AGAIN;
	if (!op->skewed && correct_clock(s, e, resp)) {
		op->skewed = 1;
		return RETRY_AGAIN;
	}
	if (cls == ERR_CREDS_EXPIRED ||
	    (cls == ERR_DENIED && creds_near_expiry(op->cr, creds_cache_now(s->creds)))) {
		/*
		 * Revoked, expired by S3's clock, or (radosgw) a plain 403 just
		 * before expiry: one refresh for every thread that saw it, and
		 * this request once more.
		 */
		snprintf(reason, sizeof(reason), "%s -> %s%s", op->what,
			 err_describe(e, what, sizeof(what)), err_ids(e, ids, sizeof(ids)));
		if (creds_cache_invalidate(s->creds, op->cr, reason) && !op->refreshed) {
			op->refreshed = 1;
			return RETRY_AGAIN;
		}
		return -err_to_errno(e);
	}
	if (cls != ERR_CREDS_REJECTED)
		creds_cache_accepted(s->creds, op->cr);
	return -err_to_errno(e);
}

/* A backoff ends early when the reader or the store called the request off. */
static int s3_called_off(void *arg)
{
	const struct s3_op *op = arg;

	return http_called_off(op->s->http, op->r->expect);
}

/*
 * Run one logical request with retries. Returns 0 on a 2xx/304 answer, else a
 * negative errno from the table: e holds the detail, and out the store's
 * words for it (cleared on success).
 */
static int s3_do(struct s3 *s, const struct s3_req *r, struct http_response *resp,
		 struct s3_error *e, struct store_error *out)
{
	struct s3_op op = { .s = s, .r = r, .resp = resp };
	char desc[320], ids[256], key[160];
	long long start = metrics_now_us();
	struct log_fields f;
	struct retry rt;
	int rc;

	describe_req(s, r, op.what, sizeof(op.what));
	req_fields(s, r, &f);
	retry_begin(&rt, &s->policy, &s->retries);
	rt.op = req_op(r);
	rt.log = &f;
	rt.called_off = s3_called_off;
	rt.called_off_arg = &op;
	rc = retry_run(&rt, s3_try, &op, e, op.what);
	e->latency_us = metrics_now_us() - start;
	metrics_latency(rt.op, e->latency_us);
	if (rc)
		error_out(s, r, op.cr, e, out);
	else
		store_error_clear(out);
	if (rc) {
		err_log_fields(e, &f);
		switch (err_classify(e)) {
		case ERR_DENIED:
			if (!r->quiet)
				store_error_log_denial(out);
			break;
		case ERR_ARCHIVED:
			/*
			 * Not a denial, and the caller knows the object: it logs
			 * the storage class (the answer may not name it) and
			 * "restore it first" (fs/fs_node.c).
			 */
			break;
		case ERR_CREDS_REJECTED:
			log_rejected(s, op.what, &f, op.cr, e);
			break;
		case ERR_REDIRECT:
			/* Without a region (or a second one) there is nowhere to go. */
			snprintf(key, sizeof(key), "redirect %d %s", e->http_status, e->region);
			log_op_once_key(LOG_ERR, key, &f, "%s -> %s: S3 redirects the request %s: "
					"set --region (or AWS_REGION) to the bucket's region, or "
					"--endpoint-url to its endpoint%s", op.what,
					err_describe(e, desc, sizeof(desc)),
					!e->region[0] ? "without naming a region (no "
							"x-amz-bucket-region, no <Region>)"
					: op.host ? "again after it was sent where the first "
						    "redirect said"
						  : "to a region that cannot be used",
					err_ids(e, ids, sizeof(ids)));
			break;
		case ERR_TLS:
			snprintf(key, sizeof(key), "tls %d", e->curl_code);
			log_op_once_key(LOG_ERR, key, &f, "%s -> %s", op.what,
					err_describe(e, desc, sizeof(desc)));
			break;
		case ERR_SKEW:
		case ERR_BAD_REQUEST:
			log_op(LOG_ERR, &f, "%s -> %s%s", op.what,
			       err_describe(e, desc, sizeof(desc)), err_ids(e, ids, sizeof(ids)));
			break;
		default:
			/*
			 * Missing, changed, past the end: normal answers. Retries
			 * (an answer that was not the one asked for too): logged.
			 */
			break;
		}
	}
	creds_release(op.cr);
	free(op.host);
	return rc;
}

/* Attributes from a verified answer's headers (http_expect: ETag and size checked). */
static void attr_from_headers(const struct http_response *resp, struct store_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->size = resp->total >= 0 ? resp->total : 0;
	if (resp->last_modified[0])
		time_parse_rfc1123(resp->last_modified, &a->mtime.tv_sec);
	snprintf(a->etag, sizeof(a->etag), "%s", resp->etag);
	snprintf(a->storage_class, sizeof(a->storage_class), "%s",
		 resp->storage_class[0] ? resp->storage_class : "STANDARD");
	snprintf(a->content_type, sizeof(a->content_type), "%s", resp->content_type);
	snprintf(a->version_id, sizeof(a->version_id), "%s", resp->version_id);
}

/* A size no object has: the answer is as wrong as a malformed one. */
static int size_too_large(struct s3 *s, const char *key, long long size, struct s3_error *e)
{
	if (size <= STORE_SIZE_MAX)
		return 0;
	log_msg(LOG_ERR, "s3://%s/%s: the server gives a size of %lld bytes, more than any "
		"object can have; not reading it", s->bucket, key, size);
	snprintf(e->code, sizeof(e->code), "MalformedReply");
	return 1;
}

static int s3_stat(struct store *st, const char *key, struct store_attr *out,
		   struct store_error *e)
{
	struct s3 *s = (struct s3 *)st;
	/* The ETag and the size are the object's identity: both must be there. */
	struct http_expect x = { .size = -1, .need_etag = 1, .need_length = 1 };
	struct s3_req r = {
		.method = "HEAD", .action = "s3:GetObject", .key = key,
		.max_body = ERROR_BODY_MAX, .what = "", .expect = &x,
	};
	struct http_response resp;
	struct s3_error se;
	int rc;

	http_response_init(&resp);
	rc = s3_do(s, &r, &resp, &se, e);
	if (!rc && size_too_large(s, key, resp.total, &se)) {
		rc = -err_to_errno(&se);
		error_out(s, &r, NULL, &se, e);
	}
	if (!rc)
		attr_from_headers(&resp, out);
	http_response_cleanup(&resp);
	return rc;
}

static int s3_list(struct store *st, const char *prefix, const char *token, int max_keys,
		   struct store_page *page, struct store_error *e)
{
	struct s3 *s = (struct s3 *)st;
	struct s3_req r = {
		.method = "GET", .action = "s3:ListBucket", .key = NULL,
		.max_body = LIST_BODY_MAX,
	};
	struct http_response resp;
	struct buf q, what;
	struct s3_error se;
	int rc;

	memset(page, 0, sizeof(*page));
	buf_init(&q, URL_MAX);
	buf_init(&what, URL_MAX);
	http_response_init(&resp);
	/* Parameters in canonical (sorted) order, each value encoded once. */
	rc = 0;
	if (token) {
		rc = buf_puts(&q, "continuation-token=");
		if (!rc)
			rc = uri_encode(&q, token, strlen(token), 0);
		if (!rc)
			rc = buf_puts(&q, "&");
	}
	if (!rc)
		rc = buf_printf(&q, "delimiter=%%2F&encoding-type=url&list-type=2&max-keys=%d"
				"&prefix=", max_keys > 0 ? max_keys : s->page_size);
	if (!rc)
		rc = uri_encode(&q, prefix, strlen(prefix), 0);
	if (!rc)
		rc = buf_printf(&what, "prefix=%s", prefix);
	if (rc)
		goto out;
	r.query = q.data;
	r.what = what.data;
	rc = s3_do(s, &r, &resp, &se, e);
	if (rc)
		goto out;
	rc = s3_xml_parse_list(resp.body.data, resp.body.len, page);
	if (rc == -E2BIG) {
		log_msg(LOG_ERR, "ListObjectsV2 s3://%s/%s: one page holds more than %d entries "
			"(max-keys was %d): the reply is refused", s->bucket, prefix,
			S3_LIST_MAX_ENTRIES, max_keys > 0 ? max_keys : s->page_size);
		snprintf(se.code, sizeof(se.code), "MalformedReply");
		rc = -err_to_errno(&se);
		error_out(s, &r, NULL, &se, e);
	} else if (rc && rc != -ENOMEM) {
		log_msg(LOG_ERR, "ListObjectsV2 s3://%s/%s: the reply is not a ListBucketResult",
			s->bucket, prefix);
		snprintf(se.code, sizeof(se.code), "MalformedReply");
		rc = -err_to_errno(&se);
		error_out(s, &r, NULL, &se, e);
	}
out:
	http_response_cleanup(&resp);
	buf_cleanup(&q);
	buf_cleanup(&what);
	return rc;
}

/*
 * A ranged GET, taken only when it answers exactly the range asked for, from
 * the object rd names (struct store_read; the checks are http_expect's, and
 * s3_do retries an answer that fails them). Without a pinned ETag the answer's
 * is reported in rd->etag.
 */
static int s3_read_range(struct store *st, const char *key, struct store_read *rd, long long off,
			 size_t len, char *dst, size_t *got, struct store_error *e)
{
	struct s3 *s = (struct s3 *)st;
	/* A listing's ETag that could split a header is no pin: take the answer's. */
	const char *pin = rd && etag_sendable(rd->etag) ? rd->etag : NULL;
	long long size = rd ? rd->size : -1;
	char range[64];
	struct http_expect x = {
		.range_off = off, .size = size, .etag = pin, .need_etag = 1,
		.cancel = rd ? rd->cancel : NULL,
	};
	struct s3_req r = {
		.method = "GET", .action = "s3:GetObject", .key = key, .range = range,
		.if_match = pin, .sink = dst, .max_body = ERROR_BODY_MAX, .what = range,
		.expect = &x,
	};
	struct http_response resp;
	struct s3_error se;
	int rc;

	*got = 0;
	store_error_clear(e);
	if (off < 0 || off > STORE_SIZE_MAX || size > STORE_SIZE_MAX ||
	    len > (size_t)(STORE_SIZE_MAX - off))
		return -EINVAL;
	/* Only the known size ends the object: no request for what is past it. */
	if (size >= 0 && (long long)len > size - off)
		len = off < size ? (size_t)(size - off) : 0;
	if (len == 0)
		return 0;
	x.range_len = len;
	r.sink_cap = len;
	snprintf(range, sizeof(range), "bytes=%lld-%lld", off, off + (long long)len - 1);
	http_response_init(&resp);
	rc = s3_do(s, &r, &resp, &se, e);
	if (rc == -ENXIO) {
		/* 416 where the object really ends (checked against the size). */
		rc = 0;
		store_error_clear(e);
	} else if (!rc) {
		*got = resp.sink_len;
		if (rd && !pin)
			snprintf(rd->etag, sizeof(rd->etag), "%s", resp.etag);
		if (rd && rd->headers)
			attr_from_headers(&resp, rd->headers);
	}
	http_response_cleanup(&resp);
	return rc;
}

/*
 * The lookup's GET of the first len bytes: a 206 with a verified
 * Content-Range gives the size. Anything else (a 200 that ignored the range,
 * a 416 for an empty object) leaves the size to a HEAD.
 */
static int s3_stat_read(struct store *st, const char *key, size_t len, char *dst, size_t *got,
			struct store_attr *out, struct store_error *e)
{
	struct s3 *s = (struct s3 *)st;
	char range[64];
	struct http_expect x = { .range_len = len, .size = -1, .need_etag = 1 };
	struct s3_req r = {
		.method = "GET", .action = "s3:GetObject", .key = key, .range = range,
		.sink = dst, .sink_cap = len, .max_body = ERROR_BODY_MAX, .what = range,
		.quiet = 1, .expect = &x,
	};
	struct http_response resp;
	struct s3_error se;
	int rc;

	*got = 0;
	store_error_clear(e);
	if (len == 0)
		return -EINVAL;
	snprintf(range, sizeof(range), "bytes=0-%zu", len - 1);
	http_response_init(&resp);
	rc = s3_do(s, &r, &resp, &se, e);
	if (!rc && (resp.status != 206 || resp.total > STORE_SIZE_MAX)) {
		/* Nothing to take a size from: an answer the caller asks again with stat. */
		snprintf(se.code, sizeof(se.code), "MalformedReply");
		snprintf(se.message, sizeof(se.message), "%s", resp.status != 206 ?
			 "the server ignored the Range" : "a size no object has");
		rc = -err_to_errno(&se);
		error_out(s, &r, NULL, &se, e);
	} else if (!rc) {
		attr_from_headers(&resp, out);
		*got = resp.sink_len;
	}
	http_response_cleanup(&resp);
	return rc;
}

/* Who requests are signed as now: a refresh in flight is waited for within the budget. */
static int s3_identity(struct store *st, struct store_identity *id)
{
	struct s3 *s = (struct s3 *)st;
	char why[CREDS_WHY_LEN];
	struct creds *cr = NULL;

	memset(id, 0, sizeof(*id));
	if (creds_cache_acquire_until(s->creds, clock_mono_ms() + s->policy.budget_ms, &cr, why,
				      sizeof(why)) == 0) {
		id->have_creds = 1;
		snprintf(id->principal, sizeof(id->principal), "%s",
			 cr->principal_arn ? cr->principal_arn : "unknown");
		id->expires = cr->expiration;
		creds_release(cr);
	}
	snprintf(id->source, sizeof(id->source), "%s", creds_cache_source(s->creds));
	snprintf(id->endpoint, sizeof(id->endpoint), "%s", s->endpoint);
	return 0;
}

static void s3_destroy(struct store *st)
{
	struct s3 *s = (struct s3 *)st;

	free(s->bucket);
	free(s->region);
	free(s->scheme);
	free(s->host);
	free(s->endpoint);
	free(s->redirect_host);
	pthread_mutex_destroy(&s->redirect_lock);
	free(s);
}

static const struct store_ops s3_ops = {
	.stat = s3_stat,
	.list_page = s3_list,
	.read_range = s3_read_range,
	.stat_read = s3_stat_read,
	.identity = s3_identity,
	.open = store_plain_open,
	.file_read = store_plain_read,
	.span_release = store_plain_span_release,
	.file_interrupt = store_plain_interrupt,
	.file_close = store_plain_close,
	.destroy = s3_destroy,
};

struct store *s3_store_new(const struct s3_config *cfg, struct http_client *http,
			   struct creds_cache *creds, char *why, size_t whylen)
{
	struct s3 *s = calloc(1, sizeof(*s));
	char *host = NULL, *aws = NULL;

	if (!s) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	s->base.ops = &s3_ops;
	pthread_mutex_init(&s->redirect_lock, NULL);
	s->aws_endpoint = cfg->endpoint == NULL;
	s->http = http;
	s->creds = creds;
	s->path_style = cfg->path_style;
	s->page_size = cfg->page_size > 0 && cfg->page_size <= 1000 ? cfg->page_size : 1000;
	s->policy = (struct retry_policy){
		.max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 5,
		.base_ms = 100,
		.max_backoff_ms = 2000,
		.budget_ms = cfg->budget_ms > 0 ? cfg->budget_ms : 20000,
	};
	s->policy.attempt_ms = cfg->request_timeout_ms > 0 ? cfg->request_timeout_ms : 15000;
	retry_bucket_init(&s->retries, cfg->retry_tokens);
	s->requests = cfg->requests;
	s->bucket = strdup(cfg->bucket);
	s->region = strdup(cfg->region ? cfg->region : "us-east-1");
	if (cfg->endpoint) {
		s->endpoint = strdup(cfg->endpoint);
	} else if (asprintf(&aws, "https://s3.%s.amazonaws.com%s", s->region,
			    strncmp(s->region, "cn-", 3) == 0 ? ".cn" : "") >= 0) {
		s->endpoint = aws;
	}
	if (!s->bucket || !s->region || !s->endpoint) {
		snprintf(why, whylen, "out of memory");
		goto fail;
	}
	if (endpoint_parse(s->endpoint, &s->scheme, &host, why, whylen))
		goto fail;
	if (s->path_style) {
		s->host = host;
	} else {
		if (asprintf(&s->host, "%s.%s", s->bucket, host) < 0)
			s->host = NULL;
		free(host);
		if (!s->host) {
			snprintf(why, whylen, "out of memory");
			goto fail;
		}
	}
	return &s->base;
fail:
	s3_destroy(&s->base);
	return NULL;
}
