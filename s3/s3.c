/*
 * The S3 store: addressing, signing, retries, and the three operations.
 *
 * One logical operation (HEAD, a ranged GET, one ListObjectsV2 page) is a
 * loop of attempts inside a time budget. Each attempt takes a reference to
 * the current credentials, signs a fresh request (a new x-amz-date each
 * time), and runs it. What can heal is retried with jittered backoff; a 403
 * that arrives while the credentials are about to expire causes one forced
 * refresh and one more attempt (radosgw reports expired credentials as plain
 * AccessDenied); everything else ends the operation with the errno from the
 * one table in core/err.c.
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
#include "core/strutil.h"
#include "http/http.h"
#include "http/retry.h"
#include "http/xml.h"

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
	long request_timeout_ms;
	/*
	 * Where the bucket really is, once a redirect said so. Written once
	 * under redirect_lock before `redirected` is set (release); readers
	 * check `redirected` (acquire) and never take the lock.
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

static void log_denial(struct s3 *s, const struct s3_req *r, const struct creds *cr,
		       const struct s3_error *e)
{
	const char *principal = cr && cr->principal_arn ? cr->principal_arn : "this identity";
	char what[320];

	/*
	 * A HEAD's 403 has no body; call it what S3 means by it, so that a HEAD
	 * and a GET of one key give one line, not two.
	 */
	if (e->http_status == 403 && !e->code[0])
		snprintf(what, sizeof(what), "403 AccessDenied");
	else
		err_describe(e, what, sizeof(what));
	if (r->key)
		log_once(LOG_WARNING, "%s on arn:aws:s3:::%s/%s denied to %s (%s): add it to the "
			 "role's policy or read another path", r->action, s->bucket, r->key,
			 principal, what);
	else if (!strncmp(r->what, "prefix=", 7) && r->what[7])
		log_once(LOG_WARNING, "%s on arn:aws:s3:::%s (prefix %s) denied to %s (%s): add "
			 "it to the role's policy or read another path", r->action, s->bucket,
			 r->what + 7, principal, what);
	else
		log_once(LOG_WARNING, "%s on arn:aws:s3:::%s (%s) denied to %s (%s): add it to the "
			 "role's policy or read another path", r->action, s->bucket,
			 !strcmp(r->what, "prefix=") ? "no prefix: the bucket's root" : r->what,
			 principal, what);
}

/* Sign and send one attempt. 0 when an HTTP answer arrived. */
static int s3_attempt(struct s3 *s, const struct s3_req *r, const struct creds *cr,
		      long timeout_ms, struct http_response *resp, struct s3_error *e)
{
	struct sigv4_header sh[6];
	const char *lines[7];
	char date[17], *hl[7] = { 0 };
	struct buf path, url, auth;
	struct sigv4_input in;
	size_t nh = 0, i;
	const char *region = s->region, *host = s->host;
	int rc;

	if (__atomic_load_n(&s->redirected, __ATOMIC_ACQUIRE)) {
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
			.sink = r->sink, .sink_cap = r->sink_cap,
		};

		if (s->requests)
			__atomic_add_fetch(s->requests, 1, __ATOMIC_RELAXED);
		rc = http_perform(s->http, &req, resp, e);
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
 * The bucket lives in another region than configured (301 PermanentRedirect,
 * 400 AuthorizationHeaderMalformed naming <Region>, x-amz-bucket-region):
 * sign for that region from now on (and, on AWS's own endpoints, talk to
 * that region's host). Returns 1 when the request is worth sending again.
 */
static int follow_region(struct s3 *s, const char *region)
{
	const char *cur = __atomic_load_n(&s->redirected, __ATOMIC_ACQUIRE) ? s->redirect_region
									     : s->region;
	char *host = NULL;
	int rc = 0;

	if (!region[0] || !strcmp(region, cur) || strlen(region) >= sizeof(s->redirect_region) ||
	    strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(region))
		return 0;
	pthread_mutex_lock(&s->redirect_lock);
	if (__atomic_load_n(&s->redirected, __ATOMIC_ACQUIRE)) {
		/* Another thread followed already; a second move would flap. */
		rc = !strcmp(region, s->redirect_region);
		goto out;
	}
	if (s->aws_endpoint) {
		if (asprintf(&host, "%s%ss3.%s.amazonaws.com%s", s->path_style ? "" : s->bucket,
			     s->path_style ? "" : ".", region,
			     strncmp(region, "cn-", 3) == 0 ? ".cn" : "") < 0)
			goto out;
	} else {
		host = strdup(s->host);
		if (!host)
			goto out;
	}
	snprintf(s->redirect_region, sizeof(s->redirect_region), "%s", region);
	s->redirect_host = host;
	__atomic_store_n(&s->redirected, 1, __ATOMIC_RELEASE);
	log_msg(LOG_WARNING, "bucket %s is in region %s, not %s: following it (requests are "
		"signed for %s from now on; pass --region %s to skip this detour)", s->bucket,
		region, cur, region, region);
	rc = 1;
out:
	pthread_mutex_unlock(&s->redirect_lock);
	return rc;
}

/*
 * RequestTimeTooSkewed, or a denial whose Date is far from ours: sign with
 * the server's clock from now on. Returns 1 when the offset changed.
 */
static int correct_clock(struct s3 *s, const struct s3_error *e, const struct http_response *resp)
{
	long old = creds_cache_clock_offset(s->creds), off;
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
		"the corrected time from now on; fix the clock (NTP)", labs(off),
		off > 0 ? "behind" : "ahead of", e->http_status,
		e->code[0] ? e->code : "Date header");
	return 1;
}

/*
 * Run one logical request with retries. Returns 0 on a 2xx/304 answer, else a
 * negative errno from the table (e holds the detail).
 */
static int s3_do(struct s3 *s, const struct s3_req *r, struct http_response *resp,
		 struct s3_error *e)
{
	char why[CREDS_WHY_LEN], what[320];
	struct creds *cr = NULL;
	int forced = 0, moved = 0, skewed = 0, rc;
	struct retry rt;
	long sleep_ms, timeout;

	retry_begin(&rt, &s->policy);
	for (;;) {
		err_clear(e);
		rc = creds_cache_acquire(s->creds, &cr, why, sizeof(why));
		if (rc) {
			log_once(LOG_ERR, "%s s3://%s/%s: no valid credentials: %s", r->method,
				 s->bucket, r->key ? r->key : "", why);
			snprintf(e->code, sizeof(e->code), "NoCredentials");
			return -EKEYEXPIRED;
		}
		timeout = retry_remaining_ms(&rt);
		if (timeout > s->request_timeout_ms)
			timeout = s->request_timeout_ms;
		if (timeout < 1000)
			timeout = 1000;
		rc = s3_attempt(s, r, cr, timeout, resp, e);
		if (rc == -ENOMEM || rc == -EMSGSIZE) {
			if (rc == -EMSGSIZE)
				log_msg(LOG_ERR, "%s s3://%s/%s %s: reply larger than expected",
					r->method, s->bucket, r->key ? r->key : "", r->what);
			creds_release(cr);
			return rc == -ENOMEM ? -ENOMEM : -EIO;
		}
		if (rc == 0 && resp->status >= 200 && resp->status < 300)
			break;
		if (rc == 0 && resp->status == 304)
			break;
		if (rc == 0) {
			xml_parse_error(resp->body.data, resp->body.len, e);
			e->http_status = resp->status;
			if (resp->bucket_region[0] && !e->region[0])
				snprintf(e->region, sizeof(e->region), "%s", resp->bucket_region);
		}
		if (log_enabled(LOG_DEBUG))
			log_msg(LOG_DEBUG, "%s s3://%s/%s %s -> %s", r->method, s->bucket,
				r->key ? r->key : "", r->what, err_describe(e, what, sizeof(what)));
		if (rc == 0 && !moved && err_classify(e) == ERR_REDIRECT &&
		    follow_region(s, e->region)) {
			moved = 1;
			creds_release(cr);
			continue;
		}
		if (rc == 0 && !skewed && correct_clock(s, e, resp)) {
			skewed = 1;
			creds_release(cr);
			continue;
		}
		if (err_classify(e) == ERR_DENIED && !forced &&
		    creds_near_expiry(cr, creds_cache_now(s->creds))) {
			/* Probably expired credentials reported as AccessDenied. */
			forced = 1;
			creds_cache_invalidate(s->creds, cr);
			creds_release(cr);
			continue;
		}
		if (!err_is_retryable(e))
			break;
		sleep_ms = retry_next(&rt);
		if (sleep_ms < 0) {
			log_msg(LOG_ERR, "%s s3://%s/%s %s -> %s (gave up after %d attempts)",
				r->method, s->bucket, r->key ? r->key : "", r->what,
				err_describe(e, what, sizeof(what)), rt.attempt);
			break;
		}
		log_msg(LOG_WARNING, "%s s3://%s/%s %s -> %s (attempt %d/%d, retry in %ld ms)",
			r->method, s->bucket, r->key ? r->key : "", r->what,
			err_describe(e, what, sizeof(what)), rt.attempt, s->policy.max_attempts,
			sleep_ms);
		creds_release(cr);
		cr = NULL;
		retry_sleep_ms(sleep_ms);
	}
	rc = -err_to_errno(e);
	if (rc == -EACCES && !r->quiet)
		log_denial(s, r, cr, e);
	creds_release(cr);
	return rc;
}

static void attr_from_headers(const struct http_response *resp, struct store_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->size = resp->content_length >= 0 ? resp->content_length : 0;
	if (resp->last_modified[0])
		time_parse_rfc1123(resp->last_modified, &a->mtime.tv_sec);
	snprintf(a->etag, sizeof(a->etag), "%s", resp->etag);
	snprintf(a->storage_class, sizeof(a->storage_class), "%s",
		 resp->storage_class[0] ? resp->storage_class : "STANDARD");
	snprintf(a->content_type, sizeof(a->content_type), "%s", resp->content_type);
	snprintf(a->version_id, sizeof(a->version_id), "%s", resp->version_id);
}

static int s3_stat(struct store *st, const char *key, struct store_attr *out, struct s3_error *e)
{
	struct s3 *s = (struct s3 *)st;
	struct s3_req r = {
		.method = "HEAD", .action = "s3:GetObject", .key = key,
		.max_body = ERROR_BODY_MAX, .what = "",
	};
	struct http_response resp;
	int rc;

	http_response_init(&resp);
	rc = s3_do(s, &r, &resp, e);
	if (!rc)
		attr_from_headers(&resp, out);
	http_response_cleanup(&resp);
	return rc;
}

static int s3_list_page(struct store *st, const char *prefix, const char *token, int max_keys,
			struct s3_list_page *page, struct s3_error *e)
{
	struct s3 *s = (struct s3 *)st;
	struct s3_req r = {
		.method = "GET", .action = "s3:ListBucket", .key = NULL,
		.max_body = LIST_BODY_MAX,
	};
	struct http_response resp;
	struct buf q, what;
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
	rc = s3_do(s, &r, &resp, e);
	if (rc)
		goto out;
	rc = s3_xml_parse_list(resp.body.data, resp.body.len, page);
	if (rc == -E2BIG) {
		log_msg(LOG_ERR, "ListObjectsV2 s3://%s/%s: one page holds more than %d entries "
			"(max-keys was %d): the reply is refused", s->bucket, prefix,
			S3_LIST_MAX_ENTRIES, max_keys > 0 ? max_keys : s->page_size);
		snprintf(e->code, sizeof(e->code), "MalformedReply");
		rc = -EIO;
	} else if (rc && rc != -ENOMEM) {
		log_msg(LOG_ERR, "ListObjectsV2 s3://%s/%s: the reply is not a ListBucketResult",
			s->bucket, prefix);
		snprintf(e->code, sizeof(e->code), "MalformedReply");
		rc = -EIO;
	}
out:
	http_response_cleanup(&resp);
	buf_cleanup(&q);
	buf_cleanup(&what);
	return rc;
}

static int s3_read_range(struct store *st, const char *key, const char *etag, long long off,
			 size_t len, char *dst, size_t *got, struct s3_error *e)
{
	struct s3 *s = (struct s3 *)st;
	char range[64];
	struct s3_req r = {
		.method = "GET", .action = "s3:GetObject", .key = key, .range = range,
		.if_match = etag && *etag ? etag : NULL, .sink = dst, .sink_cap = len,
		.max_body = ERROR_BODY_MAX, .what = range,
	};
	struct http_response resp;
	int rc;

	*got = 0;
	if (len == 0)
		return 0;
	snprintf(range, sizeof(range), "bytes=%lld-%lld", off, off + (long long)len - 1);
	http_response_init(&resp);
	rc = s3_do(s, &r, &resp, e);
	if (rc == -ENXIO) {
		/* 416: the range starts at or past the end. */
		rc = 0;
	} else if (!rc) {
		if (resp.status == 200 && off != 0) {
			/* The server ignored Range; we cannot use a body from offset 0. */
			log_msg(LOG_ERR, "GET s3://%s/%s %s: the server ignored the range", s->bucket,
				key, range);
			rc = -EIO;
		} else {
			*got = resp.sink_len;
		}
	}
	http_response_cleanup(&resp);
	return rc;
}

static int s3_stat_read(struct store *st, const char *key, size_t len, char *dst, size_t *got,
			struct store_attr *out, struct s3_error *e)
{
	struct s3 *s = (struct s3 *)st;
	char range[64];
	struct s3_req r = {
		.method = "GET", .action = "s3:GetObject", .key = key, .range = range,
		.sink = dst, .sink_cap = len, .max_body = ERROR_BODY_MAX, .what = range,
		.quiet = 1,
	};
	struct http_response resp;
	long long size;
	int rc;

	*got = 0;
	snprintf(range, sizeof(range), "bytes=0-%zu", len - 1);
	http_response_init(&resp);
	rc = s3_do(s, &r, &resp, e);
	if (!rc) {
		size = resp.status == 206 ? content_range_total(resp.content_range) : resp.content_length;
		if (size < 0 || (resp.status != 200 && resp.status != 206) ||
		    resp.sink_len > (size_t)size) {
			/* Nothing we can take a size from: let the caller HEAD it. */
			rc = -EAGAIN;
		} else {
			attr_from_headers(&resp, out);
			out->size = size;
			*got = resp.sink_len;
		}
	}
	http_response_cleanup(&resp);
	return rc;
}

static void s3_report_denial(struct store *st, const char *action, const char *key,
			     const struct s3_error *e)
{
	struct s3 *s = (struct s3 *)st;
	struct s3_req r = { .method = "GET", .action = action, .key = key, .what = "" };
	char why[CREDS_WHY_LEN];
	struct creds *cr = NULL;

	/* The principal named is the one asking now; without credentials, "this identity". */
	if (creds_cache_acquire(s->creds, &cr, why, sizeof(why)) != 0)
		cr = NULL;
	log_denial(s, &r, cr, e);
	creds_release(cr);
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
	.list_page = s3_list_page,
	.read_range = s3_read_range,
	.stat_read = s3_stat_read,
	.report_denial = s3_report_denial,
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
	s->request_timeout_ms = cfg->request_timeout_ms > 0 ? cfg->request_timeout_ms : 15000;
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
