#include "http/http.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "core/err.h"
#include "core/log.h"
#include "core/strutil.h"

struct http_client {
	struct http_config cfg;
	char *user_agent;
	char *ca_bundle;
	pthread_mutex_t lock;	/* guards locked */
	struct {
		CURL **idle;
		unsigned nidle;
	} locked;
	int closing;		/* atomic: http_client_close was called */
};

/* State of one transfer, seen by the curl callbacks. */
struct transfer {
	const struct http_client *c;
	const struct http_request *req;
	struct http_response *resp;
	int overflow;
	int head_done;		/* the blank line that ends the header block arrived */
	int checked;		/* the expectation was checked against the head */
	long long want;		/* body bytes the head promised, -1 when not known */
	int etag_bad;		/* an ETag header arrived but was not valid */
	int cancelled;		/* expect->cancel was set, or the client is closing */
	int late;		/* past the deadline: headers missing, or body stalled */
	long long deadline_ms;	/* monotonic; 0 = none (see on_progress) */
	long long mark_ms;	/* the start of the current one-second window ... */
	long long mark_bytes;	/* ... and the bytes received by then */
	int moving;		/* the last whole window brought HTTP_STALL_RATE bytes/s */
	const char *bad_code;	/* the expectation failed: "MalformedReply", ... */
	char why[200];		/* ... and what differed */
};

struct http_client *http_client_new(const struct http_config *cfg)
{
	struct http_client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->cfg = *cfg;
	if (!c->cfg.pool_max)
		c->cfg.pool_max = 16;
	c->user_agent = strdup(cfg->user_agent ? cfg->user_agent : "irsafs");
	c->ca_bundle = cfg->ca_bundle ? strdup(cfg->ca_bundle) : NULL;
	c->locked.idle = calloc(c->cfg.pool_max, sizeof(CURL *));
	if (!c->user_agent || !c->locked.idle || (cfg->ca_bundle && !c->ca_bundle)) {
		http_client_free(c);
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

void http_client_close(struct http_client *c)
{
	__atomic_store_n(&c->closing, 1, __ATOMIC_RELEASE);
}

int http_called_off(const struct http_client *c, const struct http_expect *x)
{
	return __atomic_load_n(&c->closing, __ATOMIC_ACQUIRE) ||
	       (x && x->cancel && __atomic_load_n(x->cancel, __ATOMIC_ACQUIRE));
}

/* The caller called the request off, or the client is closing. */
static int called_off(const struct http_client *c, const struct http_request *req)
{
	return http_called_off(c, req->expect);
}

void http_client_free(struct http_client *c)
{
	unsigned i;

	if (!c)
		return;
	for (i = 0; i < c->locked.nidle; i++)
		curl_easy_cleanup(c->locked.idle[i]);
	free(c->locked.idle);
	free(c->user_agent);
	free(c->ca_bundle);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static CURL *handle_take(struct http_client *c)
{
	CURL *h = NULL;

	pthread_mutex_lock(&c->lock);
	if (c->locked.nidle)
		h = c->locked.idle[--c->locked.nidle];
	pthread_mutex_unlock(&c->lock);
	if (h) {
		/* Keeps the connection cache, drops every option. */
		curl_easy_reset(h);
		return h;
	}
	return curl_easy_init();
}

static void handle_put(struct http_client *c, CURL *h, int healthy)
{
	if (healthy) {
		pthread_mutex_lock(&c->lock);
		if (c->locked.nidle < c->cfg.pool_max) {
			c->locked.idle[c->locked.nidle++] = h;
			h = NULL;
		}
		pthread_mutex_unlock(&c->lock);
	}
	if (h)
		curl_easy_cleanup(h);
}

void http_response_init(struct http_response *r)
{
	memset(r, 0, sizeof(*r));
	r->content_length = -1;
	buf_init(&r->body, 0);
}

void http_response_cleanup(struct http_response *r)
{
	buf_cleanup(&r->body);
}

/*
 * Trim a header value into dst. Returns -1, leaving dst empty, when it holds
 * a control character (a bare CR would end the header early if it were ever
 * sent back) or does not fit.
 */
static int copy_value(char *dst, size_t cap, const char *v, size_t n)
{
	size_t i;

	dst[0] = '\0';
	while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	while (n && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	if (n >= cap)
		return -1;
	for (i = 0; i < n; i++)
		if (((unsigned char)v[i] < 0x20 && v[i] != '\t') || v[i] == 0x7f)
			return -1;
	memcpy(dst, v, n);
	dst[n] = '\0';
	return 0;
}

static void note_bad(struct transfer *t, const char *name, size_t nl)
{
	if (!t->resp->bad_header[0])
		snprintf(t->resp->bad_header, sizeof(t->resp->bad_header), "%.*s", (int)nl, name);
}

/* A new status line: forget the headers of the answer before it (a 100). */
static void head_reset(struct http_response *r)
{
	r->etag[0] = r->last_modified[0] = r->content_type[0] = r->content_range[0] = '\0';
	r->request_id[0] = r->bucket_region[0] = r->storage_class[0] = '\0';
	r->version_id[0] = r->date[0] = r->bad_header[0] = '\0';
	r->content_length = -1;
	r->total = -1;
}

/* Plain decimal digits, at most 18 of them. -1 for anything else. */
static long long parse_length(const char *v)
{
	long long n = 0;
	size_t i;

	for (i = 0; v[i]; i++) {
		if (v[i] < '0' || v[i] > '9' || i >= 18)
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	return i ? n : -1;
}

/* The same entity tag, whatever its quotes (a listing's may have none). */
static int etag_same(const char *a, const char *b)
{
	size_t na, nb;

	if (!strncmp(a, "W/", 2))
		a += 2;
	if (!strncmp(b, "W/", 2))
		b += 2;
	na = strlen(a);
	nb = strlen(b);
	if (na >= 2 && a[0] == '"' && a[na - 1] == '"') {
		a++;
		na -= 2;
	}
	if (nb >= 2 && b[0] == '"' && b[nb - 1] == '"') {
		b++;
		nb -= 2;
	}
	return na == nb && !memcmp(a, b, na);
}

static size_t on_header(char *ptr, size_t size, size_t nitems, void *userdata)
{
	static const struct {
		const char *name;
		size_t off;
		size_t cap;
	} wanted[] = {
#define W(hdr, field) { hdr, offsetof(struct http_response, field), \
			sizeof(((struct http_response *)0)->field) }
		W("etag", etag),
		W("last-modified", last_modified),
		W("content-type", content_type),
		W("content-range", content_range),
		W("x-amz-request-id", request_id),
		W("x-amzn-requestid", request_id),	/* STS */
		W("x-amz-id-2", host_id),
		W("x-amz-bucket-region", bucket_region),
		W("x-amz-storage-class", storage_class),
		W("x-amz-version-id", version_id),
		W("date", date),
#undef W
	};
	struct transfer *t = userdata;
	size_t n = size * nitems, i, nl;
	const char *colon = memchr(ptr, ':', n);
	char v[256];

	if (n > 5 && !strncmp(ptr, "HTTP/", 5)) {
		const char *sp = memchr(ptr, ' ', n);

		/* A new status line (after 100-continue, say) starts a new response. */
		t->resp->status = sp ? atoi(sp + 1) : 0;
		t->head_done = 0;
		t->etag_bad = 0;
		head_reset(t->resp);
		return n;
	}
	if ((n == 2 && ptr[0] == '\r' && ptr[1] == '\n') || (n == 1 && ptr[0] == '\n')) {
		t->head_done = 1;
		return n;
	}
	if (!colon)
		return n;
	nl = (size_t)(colon - ptr);
	for (i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
		char *dst = (char *)t->resp + wanted[i].off;

		if (strlen(wanted[i].name) != nl || strncasecmp(ptr, wanted[i].name, nl))
			continue;
		if (copy_value(v, wanted[i].cap, colon + 1, n - nl - 1) ||
		    (dst == t->resp->etag && !etag_valid(v)) ||
		    /* Twice, and not the same: which one would be true? */
		    (dst[0] && strcmp(dst, v) &&
		     (dst == t->resp->etag || dst == t->resp->content_range))) {
			note_bad(t, ptr, nl);
			if (dst == t->resp->etag)
				t->etag_bad = 1;
			dst[0] = '\0';
			return n;
		}
		if (!t->etag_bad || dst != t->resp->etag)
			memcpy(dst, v, strlen(v) + 1);
		return n;
	}
	if (nl == 14 && !strncasecmp(ptr, "content-length", 14)) {
		long long len = -2;

		if (copy_value(v, sizeof(v), colon + 1, n - nl - 1) == 0)
			len = parse_length(v);
		if (len < 0 || (t->resp->content_length != -1 && t->resp->content_length != len)) {
			note_bad(t, ptr, nl);
			len = -2;
		}
		t->resp->content_length = len;
	}
	return n;
}

static int mismatch(struct transfer *t, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int mismatch(struct transfer *t, const char *code, const char *fmt, ...)
{
	va_list ap;

	t->bad_code = code;
	va_start(ap, fmt);
	vsnprintf(t->why, sizeof(t->why), fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * Is the answer's head one the request can use (struct http_expect)? 0, or
 * -1 with t->bad_code and t->why set. Sets t->want and resp->total.
 */
static int check_head(struct transfer *t)
{
	const struct http_expect *x = t->req->expect;
	struct http_response *r = t->resp;
	long long first, last, total, end;

	t->checked = 1;
	t->want = -1;
	if (!x)
		return 0;
	if (r->status == 416 && x->range_len) {
		total = x->size;
		if (total < 0 && content_range_parse(r->content_range, &first, &last, &end) == 0)
			total = end;
		if (total >= 0 && x->range_off < total)
			return mismatch(t, "MalformedReply", "416 to bytes from %lld of an object "
					"of %lld bytes", x->range_off, total);
		return 0;
	}
	if (r->status < 200 || r->status > 299)
		return 0;
	if (x->need_etag && !r->etag[0])
		return mismatch(t, "MalformedReply", t->etag_bad ? "the ETag header is not a "
				"quoted string of printable characters" : "no ETag header");
	if (x->need_etag && x->etag && *x->etag && !etag_same(x->etag, r->etag))
		return mismatch(t, "PreconditionFailed", "the answer is version %s, not %s "
				"(If-Match ignored)", r->etag, x->etag);
	if (r->content_length == -2)
		return mismatch(t, "MalformedReply", "Content-Length is not a plain number");
	if (x->need_length) {
		if (r->content_length < 0)
			return mismatch(t, "MalformedReply", "no Content-Length");
		r->total = r->content_length;
	}
	if (!x->range_len)
		return 0;
	end = x->range_off + (long long)x->range_len;
	if (r->status == 200) {
		/* The server ignored Range: usable only when the whole object fits. */
		if (x->range_off != 0 || r->content_length < 0 || r->content_length > end ||
		    (x->size >= 0 && r->content_length != x->size))
			return mismatch(t, "MalformedReply", "200 with %lld bytes to a GET of bytes "
					"%lld-%lld", r->content_length, x->range_off, end - 1);
		t->want = r->content_length;
		r->total = r->content_length;
		return 0;
	}
	if (r->status != 206)
		return mismatch(t, "MalformedReply", "%d to a GET of bytes %lld-%lld", r->status,
				x->range_off, end - 1);
	if (content_range_parse(r->content_range, &first, &last, &total) || first < 0)
		return mismatch(t, "MalformedReply", "206 with Content-Range '%s' to a GET of "
				"bytes %lld-%lld", r->content_range, x->range_off, end - 1);
	if (end > total)
		end = total;
	if (first != x->range_off || last != end - 1 || (x->size >= 0 && total != x->size))
		return mismatch(t, "MalformedReply", "Content-Range %s to a GET of bytes %lld-%lld "
				"of %lld", r->content_range, x->range_off,
				x->range_off + (long long)x->range_len - 1, x->size);
	if (r->content_length >= 0 && r->content_length != last - first + 1)
		return mismatch(t, "MalformedReply", "Content-Length %lld with Content-Range %s",
				r->content_length, r->content_range);
	t->want = last - first + 1;
	r->total = total;
	return 0;
}

/*
 * Called by curl often while a transfer runs, and at least once a second.
 * Past the deadline, an exchange whose headers are not in is late; so is a
 * body that did not move at HTTP_STALL_RATE over the last whole second. A
 * body that keeps moving is never cut here.
 */
static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct transfer *t = userdata;
	long long now;

	if (called_off(t->c, t->req)) {
		t->cancelled = 1;
		return 1;
	}
	if (!t->deadline_ms)
		return 0;
	now = clock_mono_ms();
	if (!t->head_done) {
		t->mark_ms = now;
		t->mark_bytes = (long long)dlnow;
		t->moving = 1;
	} else if (now - t->mark_ms >= 1000) {
		t->moving = (long long)dlnow - t->mark_bytes >=
			    HTTP_STALL_RATE * (now - t->mark_ms) / 1000;
		t->mark_ms = now;
		t->mark_bytes = (long long)dlnow;
	}
	if (now > t->deadline_ms && (!t->head_done || !t->moving)) {
		t->late = 1;
		return 1;
	}
	return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct transfer *t = userdata;
	size_t n = size * nmemb;
	int ok = t->resp->status >= 200 && t->resp->status < 300;

	if (t->req->expect && !t->checked && (ok || t->resp->status == 416) && check_head(t))
		return 0; /* not an answer we can use: stop before its body */
	/* Error documents go to the bounded buf even when a sink is set. */
	if (t->req->sink && ok) {
		size_t cap = t->want >= 0 ? (size_t)t->want : t->req->sink_cap;

		if (cap > t->req->sink_cap)
			cap = t->req->sink_cap;
		if (n > cap - t->resp->sink_len) {
			if (t->req->expect)
				mismatch(t, "MalformedReply", "more body than the %zu bytes expected",
					 cap);
			else
				t->overflow = 1;
			return 0;
		}
		memcpy(t->req->sink + t->resp->sink_len, ptr, n);
		t->resp->sink_len += n;
		return n;
	}
	if (buf_append(&t->resp->body, ptr, n)) {
		t->overflow = 1;
		return 0;
	}
	return n;
}

/*
 * curl's list holds copies of the request's headers, Authorization and
 * X-Amz-Security-Token among them: wiped before the memory goes back to
 * malloc, as the originals are.
 */
static void headers_free(struct curl_slist *hdrs)
{
	struct curl_slist *p;

	for (p = hdrs; p; p = p->next)
		OPENSSL_cleanse(p->data, strlen(p->data));
	curl_slist_free_all(hdrs);
}

int http_perform(struct http_client *c, const struct http_request *req,
		 struct http_response *resp, struct s3_error *e)
{
	struct curl_slist *hdrs = NULL, *tmp;
	struct transfer t = { .c = c, .req = req, .resp = resp };
	CURLcode cc;
	CURL *h;
	size_t i;
	long status = 0;
	int rc = 0;

	buf_cleanup(&resp->body);
	buf_init(&resp->body, req->max_body ? req->max_body : 64 * 1024);
	resp->sink_len = 0;
	resp->status = 0;
	head_reset(resp);
	t.want = -1;
	if (called_off(c, req)) {
		/* Nobody waits for the answer any more: do not ask. */
		e->curl_code = CURLE_ABORTED_BY_CALLBACK;
		return -EINTR;
	}
	h = handle_take(c);
	if (!h)
		return -ENOMEM;
	for (i = 0; i < req->nheaders; i++) {
		tmp = curl_slist_append(hdrs, req->headers[i]);
		if (!tmp) {
			rc = -ENOMEM;
			goto out;
		}
		hdrs = tmp;
	}
	/* An empty Expect stops curl from waiting for 100-continue on POST. */
	tmp = curl_slist_append(hdrs, "Expect:");
	if (!tmp) {
		rc = -ENOMEM;
		goto out;
	}
	hdrs = tmp;

	curl_easy_setopt(h, CURLOPT_URL, req->url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	/*
	 * Object bytes: curl's largest receive buffer (512 KiB) means a tenth of
	 * the recv calls and callbacks of its 16 KiB default.
	 */
	if (req->sink)
		curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L << 10);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->cfg.connect_timeout_ms);
	/*
	 * Object bytes may take as long as they keep moving: past their time
	 * limit only missing headers or a stalled body end them (on_progress).
	 */
	if (req->timeout_ms > 0 && req->sink)
		t.deadline_ms = clock_mono_ms() + req->timeout_ms;
	else if (req->timeout_ms > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms);
	/* Always: a request called off, or a client closing, ends it at once. */
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	if (c->cfg.stall_timeout_ms > 0) {
		/*
		 * Slower than the stall rate for the stall time counts as a stalled
		 * transfer: 1 byte/s for small answers, HTTP_STALL_RATE for object
		 * bytes (a trickle must not hold a part for days).
		 */
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, req->sink ? HTTP_STALL_RATE : 1L);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
				 (c->cfg.stall_timeout_ms + 999) / 1000);
	}
	if (c->ca_bundle)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_bundle);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
	if (!strcmp(req->method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(req->method, "POST")) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
	} else if (strcmp(req->method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
	}

	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	/* Scrub the POST body pointer's copy in curl's state (it may hold a token). */
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
	resp->status = (int)status;
	e->http_status = (int)status;
	if (cc == CURLE_OK && !t.head_done) {
		/*
		 * The connection closed inside the header block: curl calls that a
		 * success, but a HEAD answer without its ETag or Content-Length
		 * would give a wrong size. Treat it as the broken transfer it is.
		 */
		cc = CURLE_PARTIAL_FILE;
	}
	if (cc == CURLE_OK && req->expect && !t.checked &&
	    ((status >= 200 && status < 300) || status == 416))
		check_head(&t); /* no body came: the head alone must do */
	if (cc == CURLE_OK && !t.bad_code && t.want >= 0 && req->sink &&
	    (long long)resp->sink_len != t.want)
		mismatch(&t, "MalformedReply", "%zu body bytes where %lld were announced",
			 resp->sink_len, t.want);
	if (t.cancelled) {
		/* Called off by the caller: no remote outcome, and nobody waits. */
		e->curl_code = CURLE_ABORTED_BY_CALLBACK;
		e->http_status = 0;
		resp->status = 0;
		rc = -EINTR;
	} else if (t.late) {
		e->curl_code = CURLE_OPERATION_TIMEDOUT;
		e->http_status = 0;
		resp->status = 0;
		rc = -err_to_errno(e);
	} else if (t.bad_code) {
		/* An answer, but not to this request: the caller may ask again. */
		e->curl_code = 0;
		snprintf(e->code, sizeof(e->code), "%s", t.bad_code);
		snprintf(e->message, sizeof(e->message), "%s", t.why);
		snprintf(e->request_id, sizeof(e->request_id), "%s", resp->request_id);
		rc = -err_to_errno(e);
	} else if (t.overflow) {
		/*
		 * An answer larger than the request allows. A success's body is
		 * the answer itself: ReplyTooLarge. An error's body only explains
		 * its status, which still says what happened.
		 */
		e->curl_code = 0;
		if (err_classify(e) == ERR_OK)
			snprintf(e->code, sizeof(e->code), "ReplyTooLarge");
		snprintf(e->message, sizeof(e->message), "more than %zu bytes",
			 req->sink ? req->sink_cap : req->max_body);
		rc = -err_to_errno(e);
	} else if (cc != CURLE_OK) {
		e->curl_code = (int)cc;
		/* A status line may have arrived before the body broke off. */
		e->http_status = 0;
		resp->status = 0;
		rc = -err_to_errno(e);
	}
out:
	headers_free(hdrs);
	handle_put(c, h, rc == 0);
	return rc;
}
