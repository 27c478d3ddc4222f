/* The credentials JSON shared by container agents, IMDS and credential_process. */
#include "auth/creds_i.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <stdint.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "auth/creds.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/strutil.h"
#include "http/http.h"
#include "http/retry.h"

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int creds_json_parse(const char *json, size_t len, const struct creds_json_keys *keys,
		     const char *source, struct creds **out, char *why, size_t whylen)
{
	struct json_tokener *tok;
	struct json_object *o = NULL, *v;
	const char *ak, *sk, *st, *exp, *code, *arn;
	struct timespec ts = { 0, 0 };
	int rc = -EPROTO;

	*out = NULL;
	if (len > CREDS_JSON_MAX) {
		snprintf(why, whylen, "%s sent %zu bytes, more than the %d allowed", source, len,
			 CREDS_JSON_MAX);
		return -EPROTO;
	}
	tok = json_tokener_new_ex(16);
	if (!tok) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	o = json_tokener_parse_ex(tok, json, (int)len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(o, json_type_object)) {
		snprintf(why, whylen, "%s did not send a JSON object", source);
		goto out;
	}
	if (keys->need_version) {
		if (!json_object_object_get_ex(o, "Version", &v)) {
			snprintf(why, whylen, "%s: the JSON has no \"Version\" (expected 1)", source);
			goto out;
		}
		if (!json_object_is_type(v, json_type_int) || json_object_get_int(v) != 1) {
			snprintf(why, whylen, "%s: \"Version\" must be 1", source);
			goto out;
		}
	}
	code = jstr(o, "Code");
	if (code && strcmp(code, "Success") != 0) {
		snprintf(why, whylen, "%s answered Code \"%.64s\"", source, code);
		goto out;
	}
	ak = jstr(o, "AccessKeyId");
	sk = jstr(o, "SecretAccessKey");
	st = jstr(o, keys->token);
	exp = jstr(o, "Expiration");
	if (!ak || !*ak || !sk || !*sk) {
		snprintf(why, whylen, "%s: the JSON lacks %s", source,
			 !ak || !*ak ? "\"AccessKeyId\"" : "\"SecretAccessKey\"");
		goto out;
	}
	if (exp && time_parse_iso8601(exp, &ts) != 0) {
		snprintf(why, whylen, "%s: \"Expiration\" is not an ISO 8601 time "
			 "(2026-11-28T15:17:00Z)", source);
		goto out;
	}
	if (!exp && keys->need_expiration) {
		snprintf(why, whylen, "%s: the JSON lacks \"Expiration\"", source);
		goto out;
	}
	arn = jstr(o, "RoleArn");
	*out = creds_new(ak, sk, st && *st ? st : NULL, exp ? ts.tv_sec : 0, arn);
	if (!*out) {
		snprintf(why, whylen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	rc = 0;
out:
	/* json-c keeps copies of the secret strings: wipe them before freeing. */
	if (o && json_object_is_type(o, json_type_object)) {
		static const char *const secret[] = { "SecretAccessKey", "Token", "SessionToken" };
		size_t i;

		for (i = 0; i < sizeof(secret) / sizeof(secret[0]); i++) {
			const char *s = jstr(o, secret[i]);

			if (s)
				OPENSSL_cleanse((char *)(uintptr_t)s, strlen(s));
		}
	}
	json_object_put(o);
	json_tokener_free(tok);
	return rc;
}

/* One GET of a small credentials document: what the attempts share. */
struct json_get {
	struct http_client *http;
	struct http_request req;
	const char *what;
	int *status;
	struct buf *body;
	char *why;
	size_t whylen;
};

static int json_get_attempt(void *arg, struct retry *r, struct s3_error *e)
{
	struct json_get *g = arg;
	struct http_response resp;
	int rc;

	err_clear(e);
	http_response_init(&resp);
	g->req.timeout_ms = retry_attempt_ms(r);
	rc = http_perform(g->http, &g->req, &resp, e);
	if (rc && err_classify(e) == ERR_TOO_LARGE) {
		snprintf(g->why, g->whylen, "%s sent more than %d bytes", g->what, CREDS_JSON_MAX);
		rc = -EPROTO;	/* why says it all */
	} else if (rc == 0) {
		e->http_status = resp.status;
		err_set_ids(e, resp.request_id, resp.host_id);
		/* 5xx and 429 are worth another attempt (the table says so); the rest is the caller's. */
		if (!err_is_retryable(e)) {
			*g->status = resp.status;
			buf_reset(g->body);
			rc = buf_append(g->body, resp.body.data ? resp.body.data : "", resp.body.len);
			if (rc)
				snprintf(g->why, g->whylen, "out of memory");
		} else {
			rc = -err_to_errno(e);
		}
	}
	buf_cleanse(&resp.body);
	http_response_cleanup(&resp);
	return rc;
}

int creds_http_get(struct http_client *http, const char *method, const char *url,
		   const char *const *headers, size_t nheaders, const char *what, int *status,
		   struct buf *body, char *why, size_t whylen)
{
	static const struct retry_policy policy = {
		.max_attempts = 4, .base_ms = 100, .max_backoff_ms = 2000, .budget_ms = 15000,
		.attempt_ms = 5000,
	};
	struct json_get g = {
		.http = http,
		.req = { .method = method, .url = url, .headers = headers, .nheaders = nheaders,
			 .max_body = CREDS_JSON_MAX },
		.what = what, .status = status, .body = body, .why = why, .whylen = whylen,
	};
	char desc[320], ids[256];
	struct s3_error e;
	struct retry r;
	int rc;

	retry_begin(&r, &policy, NULL);
	rc = retry_run(&r, json_get_attempt, &g, &e, what);
	if (rc && rc != -EPROTO && rc != -ENOMEM)
		snprintf(why, whylen, "%s: %s%s", what, err_describe(&e, desc, sizeof(desc)),
			 err_ids(&e, ids, sizeof(ids)));
	return rc;
}
