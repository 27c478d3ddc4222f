/*
 * IRSA: AssumeRoleWithWebIdentity.
 *
 * Every fetch reads the projected token file afresh (kubelet rotates it),
 * strips surrounding whitespace (radosgw rejects a trailing newline), and
 * sends an unsigned form POST to STS. Transient failures (transport errors,
 * throttling, 5xx, IDPCommunicationError) are retried with jittered backoff
 * inside the fetch's budget; everything else fails at once with an
 * explanation that names the role, the STS code and the likely cause. The
 * token and the returned secrets are wiped as soon as they are not needed.
 *
 * The token file is whatever the environment names, so it is read without
 * ever blocking (a FIFO, a directory, /dev/zero or a huge file is one clear
 * error, core/strutil.h). STS's own words (<Code>, <Message>) go into that
 * error, so the token is redacted out of it first: an STS that echoes what
 * it was sent must not put the token into the log.
 */
#include "auth/creds.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "auth/sts_xml.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/redact.h"
#include "core/strutil.h"
#include "http/http.h"
#include "http/retry.h"
#include "http/xml.h"

#define TOKEN_MAX (64 * 1024)
#define STS_BODY_MAX (64 * 1024)

struct webid {
	struct creds_provider base;	/* first: the provider is cast back */
	struct http_client *http;
	char *role_arn;
	char *token_file;
	char *token_setting;		/* what named token_file, for messages */
	char *session_name;
	char *endpoint;
	long duration_seconds;
	long timeout_ms;
	long budget_ms;
};

static void make_session_name(char *out, size_t len)
{
	char host[64] = "";
	unsigned char rnd[4] = { 0 };
	char hex[9];
	size_t i;

	gethostname(host, sizeof(host) - 1);
	/* RoleSessionName allows [\w+=,.@-]; anything else becomes '-'. */
	for (i = 0; host[i]; i++) {
		unsigned char ch = (unsigned char)host[i];

		if (!isalnum(ch) && !strchr("_+=,.@-", ch))
			host[i] = '-';
	}
	RAND_bytes(rnd, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), hex);
	snprintf(out, len, "irsafs-%.40s-%s", host[0] ? host : "pod", hex);
}

static int form_add(struct buf *b, const char *name, const char *value)
{
	int rc;

	if (b->len && (rc = buf_puts(b, "&")))
		return rc;
	if ((rc = buf_puts(b, name)) || (rc = buf_puts(b, "=")))
		return rc;
	return uri_encode(b, value, strlen(value), 0);
}

/* A person-readable cause for an STS refusal; never includes the token. */
static void explain(const struct webid *w, const struct s3_error *e, char *why, size_t whylen)
{
	char what[320];

	err_describe(e, what, sizeof(what));
	if (!strcmp(e->code, "AccessDenied"))
		snprintf(why, whylen, "STS refused AssumeRoleWithWebIdentity for role %s: %s; "
			 "check that the role exists, that its trust policy allows this "
			 "cluster's OIDC provider and this service account (condition on :sub "
			 "and :aud), that the service account's eks.amazonaws.com/role-arn "
			 "annotation names this role, and that the token in %s has audience "
			 "sts.amazonaws.com and has not expired",
			 w->role_arn, what, w->token_file);
	else if (!strcmp(e->code, "InvalidIdentityToken"))
		snprintf(why, whylen, "STS rejected the web identity token in %s for role %s: %s; "
			 "the account has no IAM OIDC provider for the token's issuer, or the "
			 "token is malformed or signed by another key", w->token_file,
			 w->role_arn, what);
	else if (!strcmp(e->code, "ExpiredTokenException"))
		snprintf(why, whylen, "STS says the web identity token in %s has expired (%s); "
			 "kubelet should rotate it: check the projected token volume",
			 w->token_file, what);
	else if (e->http_status == 0)
		snprintf(why, whylen, "cannot reach STS at %s for role %s: %s; check "
			 "AWS_ENDPOINT_URL_STS/AWS_REGION and that the Pod can reach STS",
			 w->endpoint, w->role_arn, what);
	else
		snprintf(why, whylen, "AssumeRoleWithWebIdentity for role %s at %s failed: %s",
			 w->role_arn, w->endpoint, what);
}

/*
 * The token goes to STS in every call and the secret keys come back: over
 * plain HTTP to another host, both cross the network in the clear. Said once,
 * when the provider is made (at mount), decided from the URL alone.
 */
static void warn_cleartext(const char *endpoint)
{
	char host[64];

	if (url_is_cleartext_remote(endpoint, host, sizeof(host)))
		log_msg(LOG_WARNING, "STS at %s is plain HTTP to %s, which is not loopback: the "
			"web identity token and the credentials STS returns cross the network "
			"unencrypted; use https:// (AWS_ENDPOINT_URL_STS, or AWS_ENDPOINT_URL "
			"when that is unset)", endpoint, host);
}

/*
 * One STS call. 0 with *out set, else a negative errno with why filled; e
 * holds the answer, whose class (core/err.c) says whether to try again.
 */
static int webid_attempt(struct webid *w, long timeout_ms, struct creds **out, char *why,
			 size_t whylen, struct s3_error *e)
{
	static const char *const headers[] = {
		"Content-Type: application/x-www-form-urlencoded; charset=utf-8",
		"Accept: application/xml",
	};
	struct http_request req = {
		.method = "POST",
		.url = w->endpoint,
		.headers = headers,
		.nheaders = 2,
		.timeout_ms = timeout_ms,
		.max_body = STS_BODY_MAX,
	};
	struct http_response resp;
	struct sts_result res;
	struct buf form;
	char *token = NULL;
	size_t toklen = 0;
	int rc;

	err_clear(e);
	buf_init(&form, TOKEN_MAX * 3 + 4096);
	http_response_init(&resp);

	rc = file_read_small(w->token_file, TOKEN_MAX, &token, &toklen);
	if (rc) {
		snprintf(why, whylen, "cannot read the web identity token file %s: %s; %s must "
			 "name the token itself, a regular file of at most %d KiB (on EKS the "
			 "projected service account token)", w->token_file,
			 file_read_strerror(rc), w->token_setting, TOKEN_MAX / 1024);
		goto out;
	}
	str_trim(token);
	if (!*token) {
		snprintf(why, whylen, "the web identity token file %s (%s) is empty; check the "
			 "projected service account token volume", w->token_file,
			 w->token_setting);
		rc = -EINVAL;
		goto out;
	}
	rc = form_add(&form, "Action", "AssumeRoleWithWebIdentity");
	if (!rc)
		rc = form_add(&form, "Version", "2011-06-15");
	if (!rc)
		rc = form_add(&form, "RoleArn", w->role_arn);
	if (!rc)
		rc = form_add(&form, "RoleSessionName", w->session_name);
	if (!rc && w->duration_seconds > 0) {
		char dur[24];

		snprintf(dur, sizeof(dur), "%ld", w->duration_seconds);
		rc = form_add(&form, "DurationSeconds", dur);
	}
	if (!rc)
		rc = form_add(&form, "WebIdentityToken", token);
	if (rc) {
		snprintf(why, whylen, "cannot build the STS request: %s", strerror(-rc));
		goto out;
	}
	req.body = form.data;
	req.body_len = form.len;
	rc = http_perform(w->http, &req, &resp, e);
	metrics_request(METRICS_OP_STS, resp.status);
	if (rc && err_classify(e) == ERR_TOO_LARGE) {
		snprintf(why, whylen, "STS at %s sent a reply larger than %u bytes", w->endpoint,
			 STS_BODY_MAX);
		goto out;
	}
	if (rc) {
		explain(w, e, why, whylen);
		goto out;
	}
	if (resp.status == 200) {
		rc = sts_xml_parse_assume_role(resp.body.data, resp.body.len, &res);
		if (rc) {
			snprintf(why, whylen, "STS at %s answered 200 but not with an "
				 "AssumeRoleWithWebIdentity result", w->endpoint);
			goto out;
		}
		*out = creds_new(res.access_key_id, res.secret_access_key, res.session_token,
				 res.expiration.tv_sec, res.assumed_role_arn);
		sts_result_cleanup(&res);
		rc = *out ? 0 : -ENOMEM;
		goto out;
	}
	err_set_ids(e, resp.request_id, resp.host_id);
	xml_parse_error(resp.body.data, resp.body.len, e);
	e->http_status = resp.status;
	explain(w, e, why, whylen);
	rc = -err_to_errno(e);
out:
	if (rc && token) {
		/* why may quote STS: never let it quote the token, raw or form-encoded. */
		const char *enc = form.data ? strstr(form.data, "WebIdentityToken=") : NULL;
		const char *secrets[] = { token, enc ? enc + 17 : NULL };

		redact_text(why, whylen, secrets, 2);
		/* e reaches the retry loop's log lines: the same for what it quotes. */
		redact_text(e->message, sizeof(e->message), secrets, 2);
		redact_text(e->code, sizeof(e->code), secrets, 2);
		redact_text(e->request_id, sizeof(e->request_id), secrets, 2);
		redact_text(e->host_id, sizeof(e->host_id), secrets, 2);
	}
	if (token) {
		OPENSSL_cleanse(token, toklen);
		free(token);
	}
	buf_cleanse(&form);
	/* The reply carries secrets too. */
	buf_cleanse(&resp.body);
	http_response_cleanup(&resp);
	return rc;
}

/* One fetch: what its attempts share. */
struct webid_call {
	struct webid *w;
	struct creds **out;
	char *why;
	size_t whylen;
};

static int webid_try(void *arg, struct retry *r, struct s3_error *e)
{
	struct webid_call *call = arg;

	return webid_attempt(call->w, retry_attempt_ms(r), call->out, call->why, call->whylen, e);
}

/* A backoff ends early once the daemon is stopping (http_client_close). */
static int webid_called_off(void *arg)
{
	const struct webid_call *call = arg;

	return http_called_off(call->w->http, NULL);
}

static int webid_fetch(struct creds_provider *p, struct creds **out, char *why, size_t whylen)
{
	struct webid *w = (struct webid *)p;
	struct retry_policy pol = {
		.max_attempts = 4, .base_ms = 200, .max_backoff_ms = 3000,
		.budget_ms = w->budget_ms, .attempt_ms = w->timeout_ms,
	};
	struct webid_call call = { .w = w, .out = out, .why = why, .whylen = whylen };
	struct log_fields f = { .op = "STS" };
	long long start = metrics_now_us();
	char what[600], ids[256];
	struct s3_error e;
	struct retry r;
	size_t n;
	int rc;

	snprintf(what, sizeof(what), "AssumeRoleWithWebIdentity for role %s at %s", w->role_arn,
		 w->endpoint);
	retry_begin(&r, &pol, NULL);
	r.op = METRICS_OP_STS;
	r.log = &f;
	r.called_off = webid_called_off;
	r.called_off_arg = &call;
	rc = retry_run(&r, webid_try, &call, &e, what);
	e.latency_us = metrics_now_us() - start;
	metrics_latency(METRICS_OP_STS, e.latency_us);
	/* For the fields of the cache's log lines; e is redacted already (webid_attempt). */
	if (rc)
		p->failure = e;
	else
		err_clear(&p->failure);
	if (rc) {
		/* Say which request failed: STS's request id ends the explanation. */
		err_ids(&e, ids, sizeof(ids));
		n = strlen(why);
		if (ids[0] && n + strlen(ids) < whylen)
			memcpy(why + n, ids, strlen(ids) + 1);
	}
	return rc;
}

static void webid_destroy(struct creds_provider *p)
{
	struct webid *w = (struct webid *)p;

	free(w->role_arn);
	free(w->token_file);
	free(w->token_setting);
	free(w->session_name);
	free(w->endpoint);
	free(w);
}

struct creds_provider *creds_webid_new(const struct webid_config *cfg, struct http_client *http)
{
	struct webid *w = calloc(1, sizeof(*w));
	char name[80];

	if (!w)
		return NULL;
	w->base.name = "web identity";
	w->base.op = "STS";
	w->base.fetch = webid_fetch;
	w->base.destroy = webid_destroy;
	w->http = http;
	if (cfg->session_name) {
		snprintf(name, sizeof(name), "%s", cfg->session_name);
	} else {
		make_session_name(name, sizeof(name));
	}
	w->role_arn = strdup(cfg->role_arn);
	w->token_file = strdup(cfg->token_file);
	w->token_setting = strdup(cfg->token_setting ? cfg->token_setting
						   : "AWS_WEB_IDENTITY_TOKEN_FILE");
	w->session_name = strdup(name);
	w->endpoint = strdup(cfg->sts_endpoint);
	w->duration_seconds = cfg->duration_seconds;
	w->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000;
	w->budget_ms = cfg->budget_ms > 0 ? cfg->budget_ms : 30000;
	if (!w->role_arn || !w->token_file || !w->token_setting || !w->session_name ||
	    !w->endpoint) {
		webid_destroy(&w->base);
		return NULL;
	}
	warn_cleartext(w->endpoint);
	return &w->base;
}
