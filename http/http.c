#include "http/http.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

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
};

/* State of one transfer, seen by the curl callbacks. */
struct transfer {
	const struct http_request *req;
	struct http_response *resp;
	int overflow;
	int head_done;		/* the blank line that ends the header block arrived */
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

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct transfer *t = userdata;
	size_t n = size * nmemb;

	/* Error documents go to the bounded buf even when a sink is set. */
	if (t->req->sink && t->resp->status >= 200 && t->resp->status < 300) {
		if (n > t->req->sink_cap - t->resp->sink_len) {
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

static void copy_value(char *dst, size_t cap, const char *v, size_t n)
{
	while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
		n--;
	while (n && *v == ' ') {
		v++;
		n--;
	}
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
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

	if (n > 5 && !strncmp(ptr, "HTTP/", 5)) {
		const char *sp = memchr(ptr, ' ', n);

		/* A new status line (after 100-continue, say) starts a new response. */
		t->resp->status = sp ? atoi(sp + 1) : 0;
		t->head_done = 0;
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
		if (strlen(wanted[i].name) == nl && !strncasecmp(ptr, wanted[i].name, nl)) {
			copy_value((char *)t->resp + wanted[i].off, wanted[i].cap, colon + 1,
				   n - nl - 1);
			return n;
		}
	}
	if (nl == 14 && !strncasecmp(ptr, "content-length", 14)) {
		char v[32];

		copy_value(v, sizeof(v), colon + 1, n - nl - 1);
		t->resp->content_length = strtoll(v, NULL, 10);
	}
	return n;
}

int http_perform(struct http_client *c, const struct http_request *req,
		 struct http_response *resp, struct s3_error *e)
{
	struct curl_slist *hdrs = NULL, *tmp;
	struct transfer t = { .req = req, .resp = resp };
	CURLcode cc;
	CURL *h;
	size_t i;
	long status = 0;
	int rc = 0;

	buf_cleanup(&resp->body);
	buf_init(&resp->body, req->max_body ? req->max_body : 64 * 1024);
	resp->sink_len = 0;
	resp->status = 0;
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
	if (req->timeout_ms > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms);
	if (c->cfg.stall_timeout_ms > 0) {
		/* Under 1 byte/s for the stall time counts as a stalled body. */
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
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
	if (t.overflow) {
		rc = -EMSGSIZE;
	} else if (cc != CURLE_OK) {
		e->curl_code = (int)cc;
		/* A status line may have arrived before the body broke off. */
		e->http_status = 0;
		resp->status = 0;
		rc = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
	}
out:
	curl_slist_free_all(hdrs);
	handle_put(c, h, rc == 0);
	return rc;
}
