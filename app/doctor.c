/*
 * The doctor: each check fills one line (status, name, message, and for
 * --json a few structured fields), in order; a check whose input is missing
 * (no credentials, no reachable endpoint) is skipped with the reason. The
 * verdict comes only from the statuses: any FAIL means a mount would fail.
 * What the checks send: one STS call (as the mount would), one unsigned HEAD
 * of the S3 endpoint, at most a few ListObjectsV2 pages and one ranged GET of
 * one byte. Nothing else, and nothing that writes.
 */
#include "app/doctor.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "auth/creds.h"
#include "auth/jwt.h"
#include "config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/strutil.h"
#include "http/http.h"
#include "http/probe.h"
#include "http/xml.h"
#include "s3/s3.h"

#define MAX_CHECKS 12
#define STS_AUDIENCE "sts.amazonaws.com"
#define MAX_DESCEND 8

enum status { ST_OK, ST_WARN, ST_FAIL, ST_SKIP };

static const char *const status_mark[] = { "[ ok ]", "[warn]", "[FAIL]", "[skip]" };
static const char *const status_word[] = { "ok", "warn", "fail", "skip" };

struct check {
	const char *name;
	enum status st;
	char msg[2048];
	struct json_object *extra;	/* owned; NULL when none */
};

struct doctor {
	const char *bucket;
	char *prefix;			/* "" or ending in '/' */
	const char *endpoint;		/* NULL: AWS */
	const char *region;
	char *region_buf;
	int json;
	int strict;
	int verbose;
	struct check checks[MAX_CHECKS];
	int n;
	/* What the checks learn, for the later checks. */
	struct jwt_claims claims;
	int have_claims;
	int token_readable;
	int have_creds;
	int endpoint_ok;
	int list_denied;
	int list_failed;
	char first_key[1024];
};

static void add(struct doctor *d, const char *name, enum status st, struct json_object *extra,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void add(struct doctor *d, const char *name, enum status st, struct json_object *extra,
		const char *fmt, ...)
{
	struct check *c;
	va_list ap;

	if (d->n == MAX_CHECKS) {
		json_object_put(extra);
		return;
	}
	c = &d->checks[d->n++];
	c->name = name;
	c->st = st;
	c->extra = extra;
	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
	va_end(ap);
}

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: irsafs doctor BUCKET [--prefix P] [--json] [--strict]\n"
		"                     [--endpoint-url URL] [--region R] [--verbose]\n"
		"\n"
		"Check, without mounting, whether this Pod's mount of BUCKET would work, and\n"
		"why not: the environment, the token, STS, the endpoint, listing and reading.\n"
		"Exit status: 0 a mount would work, 1 it would fail, 2 bad command line.\n"
		"--strict: a denied listing fails, as with irsafs --strict.\n");
}

static int parse_args(int argc, char **argv, struct doctor *d)
{
	static const struct option longs[] = {
		{ "prefix", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "strict", no_argument, NULL, 's' },
		{ "endpoint-url", required_argument, NULL, 'e' },
		{ "region", required_argument, NULL, 'r' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *prefix = "";
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
		switch (c) {
		case 'p':
			prefix = optarg;
			break;
		case 'j':
			d->json = 1;
			break;
		case 's':
			d->strict = 1;
			break;
		case 'e':
			if (strncmp(optarg, "http://", 7) && strncmp(optarg, "https://", 8)) {
				fprintf(stderr, "irsafs doctor: --endpoint-url '%s': expected a URL "
					"starting with http:// or https://\n", optarg);
				return -1;
			}
			d->endpoint = optarg;
			break;
		case 'r':
			d->region = optarg;
			break;
		case 'v':
			d->verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			fprintf(stderr, "irsafs doctor: unknown or incomplete option '%s' (usage: "
				"irsafs doctor BUCKET [--prefix P] [--json] [--strict])\n",
				argv[optind - 1]);
			return -1;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "irsafs doctor: expected one BUCKET (usage: irsafs doctor BUCKET "
			"[--prefix P] [--json] [--strict])\n");
		return -1;
	}
	d->bucket = argv[optind];
	if (strlen(d->bucket) < 3 || strlen(d->bucket) > 63 || strchr(d->bucket, '/')) {
		fprintf(stderr, "irsafs doctor: BUCKET '%s': expected a bucket name (3-63 "
			"characters, no '/')\n", d->bucket);
		return -1;
	}
	while (*prefix == '/')
		prefix++;
	if (asprintf(&d->prefix, "%s%s", prefix,
		     *prefix && prefix[strlen(prefix) - 1] != '/' ? "/" : "") < 0) {
		d->prefix = NULL;
		return -1;
	}
	if (!d->region)
		d->region = env("AWS_REGION");
	if (!d->region)
		d->region = env("AWS_DEFAULT_REGION");
	if (!d->region) {
		d->region_buf = creds_profile_region();
		d->region = d->region_buf;
	}
	if (!d->endpoint)
		d->endpoint = env("AWS_ENDPOINT_URL_S3");
	if (!d->endpoint)
		d->endpoint = env("AWS_ENDPOINT_URL");
	return 0;
}

/* The variables a credential source reads; secrets show only as "(set)". */
/*
 * A JSON string for any text: names and values come from the environment,
 * files and servers, and may be any bytes. Strict JSON parsers refuse bytes
 * that are not UTF-8 and terminals obey escapes, so both are written as
 * text (\xff, \x1b), as log lines write them.
 */
static struct json_object *jstr(const char *s)
{
	struct json_object *o;
	size_t cap = 4 * strlen(s) + 1;
	char *out = malloc(cap);

	if (!out)
		return NULL;
	log_escape(out, cap, s, 0);
	o = json_object_new_string(out);
	free(out);
	return o;
}

static const struct {
	const char *name;
	int secret;
} env_vars[] = {
	{ "AWS_ACCESS_KEY_ID", 1 },
	{ "AWS_SECRET_ACCESS_KEY", 1 },
	{ "AWS_SESSION_TOKEN", 1 },
	{ "AWS_ROLE_ARN", 0 },
	{ "AWS_WEB_IDENTITY_TOKEN_FILE", 0 },
	{ "AWS_ROLE_SESSION_NAME", 0 },
	{ "AWS_CONTAINER_CREDENTIALS_FULL_URI", 0 },
	{ "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", 0 },
	{ "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", 0 },
	{ "AWS_CONTAINER_AUTHORIZATION_TOKEN", 1 },
	{ "AWS_PROFILE", 0 },
	{ "AWS_CONFIG_FILE", 0 },
	{ "AWS_SHARED_CREDENTIALS_FILE", 0 },
	{ "AWS_REGION", 0 },
	{ "AWS_DEFAULT_REGION", 0 },
	{ "AWS_ENDPOINT_URL", 0 },
	{ "AWS_ENDPOINT_URL_S3", 0 },
	{ "AWS_ENDPOINT_URL_STS", 0 },
	{ "AWS_STS_REGIONAL_ENDPOINTS", 0 },
	{ "AWS_CA_BUNDLE", 0 },
};

static const char *source_label(const char *provider)
{
	if (!strcmp(provider, "web identity"))
		return "web identity (IRSA)";
	return provider;
}

/* environment: which source, which variables. Returns the provider or NULL. */
static struct creds_provider *check_environment(struct doctor *d, struct http_client *http)
{
	struct creds_chain_config cfg = { .region = d->region };
	struct json_object *vars = json_object_new_object();
	struct creds_provider *p;
	char why[CREDS_WHY_LEN], list[1024] = "";
	size_t i, used = 0;

	for (i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++) {
		const char *v = env(env_vars[i].name);
		int n;

		if (!v)
			continue;
		if (env_vars[i].secret)
			v = "(set)";
		json_object_object_add(vars, env_vars[i].name, jstr(v));
		n = snprintf(list + used, sizeof(list) - used, "%s%s=%s", used ? ", " : "",
			     env_vars[i].name, v);
		if (n > 0 && (size_t)n < sizeof(list) - used)
			used += (size_t)n;
	}
	p = creds_provider_from_env(http, &cfg, why, sizeof(why));
	if (!p) {
		add(d, "environment", ST_FAIL, vars, "%s (read: %s)", why, used ? list : "nothing");
		return NULL;
	}
	if (!d->region && !d->endpoint) {
		add(d, "environment", ST_FAIL, vars, "no region: set AWS_REGION (or pass "
		    "--region), or set AWS_ENDPOINT_URL (read: %s)", used ? list : "nothing");
		p->destroy(p);
		return NULL;
	}
	{
		struct json_object *extra = json_object_new_object();

		json_object_object_add(extra, "source",
				       jstr(source_label(p->name)));
		json_object_object_add(extra, "variables", vars);
		add(d, "environment", ST_OK, extra, "credentials from %s; read %s",
		    source_label(p->name), used ? list : "nothing");
	}
	return p;
}

static void fmt_time(time_t t, char out[21])
{
	time_format_iso8601(t, out);
}

/* "in 59 min", "3 min ago" */
static void fmt_rel(long long secs, char *out, size_t len)
{
	long long a = secs < 0 ? -secs : secs;

	if (a < 120)
		snprintf(out, len, secs < 0 ? "%lld s ago" : "in %lld s", a);
	else if (a < 2 * 3600)
		snprintf(out, len, secs < 0 ? "%lld min ago" : "in %lld min", a / 60);
	else
		snprintf(out, len, secs < 0 ? "%lld h ago" : "in %lld h", a / 3600);
}

/* token: readable, claims, audience, expiry, clock. */
static void check_token(struct doctor *d)
{
	const char *file = env("AWS_WEB_IDENTITY_TOKEN_FILE");
	struct jwt_claims *c = &d->claims;
	struct json_object *extra, *aud;
	char why[256], auds[512] = "", iat[21] = "?", exp[21] = "?", rel[32] = "";
	char problems[768] = "";
	enum status st = ST_OK;
	time_t now = time(NULL);
	char *token = NULL;
	size_t len = 0, i;
	int rc;

	if (!file) {
		add(d, "token", ST_SKIP, NULL, "no web identity token: the credential source "
		    "does not use one");
		return;
	}
	rc = file_read_small(file, JWT_MAX_LEN, &token, &len);
	if (rc) {
		add(d, "token", ST_FAIL, NULL, "cannot read %s: %s; AWS_WEB_IDENTITY_TOKEN_FILE "
		    "must name the token itself, a regular file (on EKS the projected service "
		    "account token volume)", file, file_read_strerror(rc));
		return;
	}
	d->token_readable = 1;
	rc = jwt_decode_claims(token, len, c, why, sizeof(why));
	OPENSSL_cleanse(token, len);
	free(token);
	if (rc) {
		add(d, "token", ST_FAIL, NULL, "%s is %s", file, why);
		return;
	}
	d->have_claims = 1;
	aud = json_object_new_array();
	for (i = 0; i < c->naud; i++) {
		size_t u = strlen(auds);

		snprintf(auds + u, sizeof(auds) - u, "%s%s", i ? "," : "", c->aud[i]);
		json_object_array_add(aud, jstr(c->aud[i]));
	}
	if (c->has_iat)
		fmt_time((time_t)c->iat, iat);
	if (c->has_exp) {
		fmt_time((time_t)c->exp, exp);
		fmt_rel(c->exp - now, rel, sizeof(rel));
	}
#define PROBLEM(...)                                                                      \
	do {                                                                              \
		size_t u_ = strlen(problems);                                             \
		snprintf(problems + u_, sizeof(problems) - u_, "%s", u_ ? "; " : ": ");  \
		u_ = strlen(problems);                                                    \
		snprintf(problems + u_, sizeof(problems) - u_, __VA_ARGS__);             \
	} while (0)
	if (!jwt_has_audience(c, STS_AUDIENCE)) {
		st = ST_FAIL;
		PROBLEM("its audience is '%s', not %s: the projected token volume must set "
			"audience: %s", c->naud ? auds : "missing", STS_AUDIENCE, STS_AUDIENCE);
	}
	if (!c->has_exp) {
		st = ST_FAIL;
		PROBLEM("it has no expiry (exp)");
	} else if (c->exp <= now) {
		st = ST_FAIL;
		PROBLEM("it expired %s (at %s); kubelet rotates it: is the projected token "
			"volume mounted, and is the local clock right?", rel, exp);
	}
	if (c->has_iat && c->iat > now + 300) {
		if (st == ST_OK)
			st = ST_WARN;
		PROBLEM("it was issued %lld s in the future: the local clock is behind the "
			"cluster's", (long long)(c->iat - now));
	}
	if (c->has_nbf && c->nbf > now + 300) {
		st = ST_FAIL;
		PROBLEM("it is not valid before %lld s from now: the local clock is behind",
			(long long)(c->nbf - now));
	}
#undef PROBLEM
	extra = json_object_new_object();
	json_object_object_add(extra, "file", jstr(file));
	json_object_object_add(extra, "iss", jstr(c->iss));
	json_object_object_add(extra, "sub", jstr(c->sub));
	json_object_object_add(extra, "aud", aud);
	json_object_object_add(extra, "iat", json_object_new_int64(c->iat));
	json_object_object_add(extra, "exp", json_object_new_int64(c->exp));
	add(d, "token", st, extra, "%s: iss %s, sub %s, aud %s, issued %s, expires %s (%s)%s",
	    file, c->iss[0] ? c->iss : "(none)", c->sub[0] ? c->sub : "(none)",
	    c->naud ? auds : "(none)", iat, exp, rel[0] ? rel : "never", problems);
}

/* sts: the credentials, as the mount would get them. */
static void check_sts(struct doctor *d, struct creds_cache *cache)
{
	char why[CREDS_WHY_LEN], when[21] = "never", rel[32] = "", hint[1024] = "";
	const char *source = creds_cache_source(cache);
	struct json_object *extra;
	struct creds *cr = NULL;
	const char *name = !strcmp(source, "web identity") ? "sts" : "credentials";

	if (!strcmp(source, "web identity") && !d->token_readable) {
		add(d, name, ST_SKIP, NULL, "no token to send to STS");
		return;
	}
	if (creds_cache_acquire(cache, &cr, why, sizeof(why)) != 0) {
		enum creds_refusal refusal = creds_cache_refusal(cache);

		if (d->have_claims && refusal == CREDS_REFUSAL_BAD_TOKEN)
			snprintf(hint, sizeof(hint), " (the token's issuer is %s: the account needs "
				 "an IAM OIDC provider for exactly that URL)", d->claims.iss);
		else if (d->have_claims && refusal == CREDS_REFUSAL_DENIED)
			snprintf(hint, sizeof(hint), " (the token says sub %s, aud %s%s: the "
				 "role's trust policy must allow both for issuer %s)",
				 d->claims.sub, d->claims.naud ? d->claims.aud[0] : "(none)",
				 d->claims.naud > 1 ? ",..." : "", d->claims.iss);
		else if (refusal == CREDS_REFUSAL_IDP)
			snprintf(hint, sizeof(hint), " (STS could not reach the token's issuer %s "
				 "to fetch its keys: retry later; if it persists, check that the "
				 "issuer's discovery document is public)", d->claims.iss);
		add(d, name, ST_FAIL, NULL, "%s%s", why, hint);
		return;
	}
	d->have_creds = 1;
	if (cr->expiration) {
		fmt_time(cr->expiration, when);
		fmt_rel((long long)(cr->expiration - time(NULL)), rel, sizeof(rel));
	}
	extra = json_object_new_object();
	json_object_object_add(extra, "principal",
			       jstr(cr->principal_arn ? cr->principal_arn
									: "unknown"));
	json_object_object_add(extra, "expiration", jstr(when));
	if (!strcmp(source, "web identity"))
		add(d, name, ST_OK, extra, "AssumeRoleWithWebIdentity gave %s, credentials "
		    "expire %s%s%s%s", cr->principal_arn ? cr->principal_arn : "an unnamed role",
		    when, rel[0] ? " (" : "", rel, rel[0] ? ")" : "");
	else
		add(d, name, ST_OK, extra, "%s gave credentials%s%s, expiring %s",
		    source_label(source), cr->principal_arn ? " for " : "",
		    cr->principal_arn ? cr->principal_arn : "", when);
	creds_release(cr);
}

/* endpoint: reachable, how fast, and is our clock close to the server's. */
static void check_endpoint(struct doctor *d, const char *url)
{
	struct json_object *extra = json_object_new_object();
	const char *ca = env("AWS_CA_BUNDLE");
	char steps[256], skew[160] = "";
	struct http_probe p;
	enum status st = ST_OK;
	int rc;

	rc = http_probe_url(url, ca, 5000, &p);
	json_object_object_add(extra, "url", jstr(url));
	json_object_object_add(extra, "dns_ms", json_object_new_double(p.dns_ms));
	json_object_object_add(extra, "connect_ms", json_object_new_double(p.connect_ms));
	if (p.tls)
		json_object_object_add(extra, "tls_ms", json_object_new_double(p.tls_ms));
	json_object_object_add(extra, "total_ms", json_object_new_double(p.total_ms));
	if (p.tls)
		snprintf(steps, sizeof(steps), "dns %.1f ms, connect %.1f ms, tls %.1f ms, "
			 "answer %.1f ms", p.dns_ms, p.connect_ms, p.tls_ms, p.total_ms);
	else
		snprintf(steps, sizeof(steps), "dns %.1f ms, connect %.1f ms, answer %.1f ms",
			 p.dns_ms, p.connect_ms, p.total_ms);
	if (rc) {
		add(d, "endpoint", ST_FAIL, extra, "cannot reach %s: %s (%s; %s); check "
		    "AWS_ENDPOINT_URL/--endpoint-url, the region, and the Pod's egress (network "
		    "policy, proxy, VPC endpoint)", url, p.stage, p.error, steps);
		return;
	}
	d->endpoint_ok = 1;
	if (p.server_date) {
		long long diff = (long long)(time(NULL) - p.server_date);
		long long a = diff < 0 ? -diff : diff;

		json_object_object_add(extra, "clock_skew_s", json_object_new_int64(diff));
		if (a > 900) {
			st = ST_FAIL;
			snprintf(skew, sizeof(skew), "; the local clock is %lld s %s the server's: "
				 "S3 refuses requests more than 15 min off, fix the clock (NTP)", a,
				 diff > 0 ? "ahead of" : "behind");
		} else if (a > 60) {
			st = ST_WARN;
			snprintf(skew, sizeof(skew), "; the local clock is %lld s %s the server's",
				 a, diff > 0 ? "ahead of" : "behind");
		}
	}
	add(d, "endpoint", st, extra, "%s answers (HTTP %d from %s): %s%s", url, p.status,
	    p.address[0] ? p.address : "?", steps, skew);
}

/* list: ListObjectsV2 of the prefix, then down the first prefixes for an object. */
static void check_list(struct doctor *d, struct store *st)
{
	char prefix[1024], *next = NULL;
	const char *what;
	struct json_object *extra;
	struct store_page page;
	struct store_error e;
	size_t nobj = 0, npre = 0, i;
	int rc, depth;

	snprintf(prefix, sizeof(prefix), "%s", d->prefix);
	for (depth = 0; depth < MAX_DESCEND; depth++) {
		rc = store_list_page(st, prefix, NULL, 100, &page, &e);
		if (rc)
			break;
		if (depth == 0) {
			nobj = page.nobjects;
			npre = page.nprefixes;
		}
		for (i = 0; i < page.nobjects; i++) {
			const char *k = page.objects[i].key;

			if (k[0] && k[strlen(k) - 1] != '/') {
				snprintf(d->first_key, sizeof(d->first_key), "%s", k);
				break;
			}
		}
		free(next);
		next = page.nprefixes ? strdup(page.prefixes[0]) : NULL;
		store_page_cleanup(&page);
		if (d->first_key[0] || !next)
			break;
		snprintf(prefix, sizeof(prefix), "%s", next);
	}
	free(next);
	if (rc && depth > 0) {
		/* The prefix itself listed; a deeper one did not: still a listable mount. */
		rc = 0;
	}
	if (rc == 0) {
		extra = json_object_new_object();
		json_object_object_add(extra, "objects", json_object_new_int64((long long)nobj));
		json_object_object_add(extra, "prefixes", json_object_new_int64((long long)npre));
		add(d, "list", ST_OK, extra, "ListObjectsV2 s3://%s/%s: %zu object%s and %zu "
		    "prefix%s on the first page", d->bucket, d->prefix, nobj, nobj == 1 ? "" : "s",
		    npre, npre == 1 ? "" : "es");
		return;
	}
	what = e.what;
	d->list_failed = e.cls != ERR_DENIED;
	switch (e.cls) {
	case ERR_NO_BUCKET:
		add(d, "list", ST_FAIL, NULL, "bucket %s does not exist at %s (%s): check the "
		    "bucket name, the region and the endpoint", d->bucket,
		    s3_store_endpoint(st), what);
		return;
	case ERR_DENIED:
		d->list_denied = 1;
		add(d, "list", d->strict ? ST_FAIL : ST_WARN, NULL, "ListObjectsV2 s3://%s/%s is "
		    "denied (%s): add s3:ListBucket on arn:aws:s3:::%s%s%s%s to the role's policy. "
		    "%s", d->bucket, d->prefix, what, d->bucket,
		    *d->prefix ? " with the condition s3:prefix = " : "", d->prefix,
		    *d->prefix ? "*" : "",
		    d->strict ? "With --strict the mount fails." : "A mount still works: "
		    "listing gives EACCES, paths the role may read stay reachable by name.");
		return;
	case ERR_CREDS_EXPIRED:
		add(d, "list", ST_FAIL, NULL, "the credentials have expired or were rejected as "
		    "expired (%s): check the clock and the credential source", what);
		return;
	case ERR_CREDS_REJECTED:
		add(d, "list", ST_FAIL, NULL, "S3 rejected the credentials (%s): the key is "
		    "unknown to this endpoint or the signature does not match; check that STS and "
		    "S3 are the same partition and endpoint, and the region", what);
		return;
	case ERR_REDIRECT:
		add(d, "list", ST_FAIL, NULL, "the bucket is in another region (%s%s%s): set "
		    "AWS_REGION or --region", what, e.region[0] ? ", " : "", e.region);
		return;
	default:
		add(d, "list", ST_FAIL, NULL, "ListObjectsV2 s3://%s/%s failed: %s", d->bucket,
		    d->prefix, what);
		return;
	}
}

/*
 * A GET denied to a role that has s3:GetObject: S3 says so for an SSE-KMS
 * object whose key the role may not use. Its message names KMS on AWS; a
 * HEAD, which needs s3:GetObject but not kms:Decrypt, tells it anywhere.
 */
static int kms_denial(struct store *st, const char *key, const struct store_error *e)
{
	struct store_attr a;
	struct store_error he;

	if (strcasestr(e->what, "kms"))
		return 1;
	return store_stat(st, key, &a, &he) == 0;
}

/* read: one byte of the first object found. */
static void check_read(struct doctor *d, struct store *st)
{
	const char *what;
	struct store_error e;
	size_t got = 0;
	char one;
	int rc;

	if (!d->first_key[0]) {
		add(d, "read", ST_SKIP, NULL, d->list_denied ? "no object to try: the listing was "
		    "denied" : d->list_failed ? "no object to try: the listing failed" :
		    "no object under s3://%s/%s to try", d->bucket, d->prefix);
		return;
	}
	rc = store_read_range(st, d->first_key, NULL, 0, 1, &one, &got, &e);
	if (rc == 0) {
		add(d, "read", ST_OK, NULL, "GetObject s3://%s/%s bytes=0-0: %zu byte", d->bucket,
		    d->first_key, got);
		return;
	}
	what = e.what;
	if (e.cls == ERR_ARCHIVED)
		/* Not a denial: no policy change reads it. */
		add(d, "read", ST_WARN, NULL, "s3://%s/%s is archived%s%s and not restored (%s): "
		    "restore it first (s3:RestoreObject); objects that are not archived read "
		    "normally", d->bucket, d->first_key, e.storage_class[0] ? " in storage class " :
		    "", e.storage_class, what);
	else if (rc == -EACCES && kms_denial(st, d->first_key, &e))
		add(d, "read", ST_WARN, NULL, "GetObject s3://%s/%s is denied (%s), though the "
		    "role has s3:GetObject on it (a HEAD works, or S3 names KMS): the object is "
		    "encrypted with SSE-KMS and the role may not use the key. Add kms:Decrypt on "
		    "the key, with the condition kms:ViaService = s3.%s.amazonaws.com, to the "
		    "role's policy (packaging/kubernetes/iam-policy-kms.json). A mount still "
		    "works, but reading such files gives EACCES", d->bucket, d->first_key, what,
		    d->region ? d->region : "REGION");
	else if (rc == -EACCES)
		add(d, "read", ST_WARN, NULL, "GetObject s3://%s/%s is denied (%s): add "
		    "s3:GetObject on arn:aws:s3:::%s/%s* to the role's policy. A mount still "
		    "works, but reading files gives EACCES", d->bucket, d->first_key, what,
		    d->bucket, d->prefix);
	else
		add(d, "read", ST_FAIL, NULL, "GetObject s3://%s/%s bytes=0-0 failed: %s",
		    d->bucket, d->first_key, what);
}

static int report(struct doctor *d, const char *endpoint)
{
	int counts[4] = { 0 }, i, fail;
	const char *verdict;
	char summary[256];

	for (i = 0; i < d->n; i++)
		counts[d->checks[i].st]++;
	fail = counts[ST_FAIL] > 0;
	verdict = fail ? "a mount would fail" : counts[ST_WARN] ? "a mount would work, with "
		  "the warnings above" : "a mount would work";
	snprintf(summary, sizeof(summary), "%d ok, %d warning%s, %d failed, %d skipped: %s",
		 counts[ST_OK], counts[ST_WARN], counts[ST_WARN] == 1 ? "" : "s",
		 counts[ST_FAIL], counts[ST_SKIP], verdict);
	if (d->json) {
		struct json_object *root = json_object_new_object(), *arr = json_object_new_array();

		json_object_object_add(root, "bucket", jstr(d->bucket));
		json_object_object_add(root, "prefix", jstr(d->prefix));
		json_object_object_add(root, "endpoint", jstr(endpoint));
		json_object_object_add(root, "region",
				       jstr(d->region ? d->region : ""));
		for (i = 0; i < d->n; i++) {
			struct check *c = &d->checks[i];
			struct json_object *o = c->extra ? c->extra : json_object_new_object();

			c->extra = NULL;
			json_object_object_add(o, "check", jstr(c->name));
			json_object_object_add(o, "status",
					       jstr(status_word[c->st]));
			json_object_object_add(o, "message", jstr(c->msg));
			json_object_array_add(arr, o);
		}
		json_object_object_add(root, "checks", arr);
		json_object_object_add(root, "mount_would_work", json_object_new_boolean(!fail));
		json_object_object_add(root, "exit_status", json_object_new_int(fail ? 1 : 0));
		json_object_object_add(root, "summary", jstr(summary));
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(root);
	} else {
		printf("irsafs doctor: s3://%s/%s at %s (region %s)\n", d->bucket, d->prefix,
		       endpoint, d->region ? d->region : "us-east-1");
		for (i = 0; i < d->n; i++) {
			/* Key names and a server's words: one line each, as in the log. */
			char esc[sizeof(d->checks[i].msg) * 2];

			log_escape(esc, sizeof(esc), d->checks[i].msg, 0);
			printf("%s %-12s %s\n", status_mark[d->checks[i].st], d->checks[i].name,
			       esc);
		}
		printf("summary: %s\n", summary);
	}
	fflush(stdout);
	return fail ? 1 : 0;
}

int doctor_main(int argc, char **argv)
{
	struct doctor d;
	struct http_client *http = NULL;
	struct creds_provider *prov;
	struct creds_cache *cache = NULL;
	struct store *st = NULL;
	struct http_config hc;
	struct s3_config sc;
	char why[CREDS_WHY_LEN], ua[64], *aws_endpoint = NULL;
	const char *endpoint;
	int rc = 2, i;

	memset(&d, 0, sizeof(d));
	i = parse_args(argc, argv, &d);
	if (i) {
		free(d.prefix);
		free(d.region_buf);
		return i > 0 ? 0 : 2;
	}
	/* The report explains every failure; the modules' own log lines would repeat it. */
	if (!d.verbose)
		log_set_level(LOG_CRIT);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "irsafs doctor: cannot initialise libcurl\n");
		goto out;
	}
	xml_global_init();
	snprintf(ua, sizeof(ua), "irsafs/%s doctor", IRSAFS_VERSION);
	hc = (struct http_config){
		.connect_timeout_ms = 5000,
		.stall_timeout_ms = 10000,
		.user_agent = ua,
		.ca_bundle = env("AWS_CA_BUNDLE"),
		.pool_max = 4,
	};
	http = http_client_new(&hc);
	if (!http) {
		fprintf(stderr, "irsafs doctor: out of memory\n");
		goto out_curl;
	}
	if (!d.endpoint && d.region &&
	    asprintf(&aws_endpoint, "https://s3.%s.amazonaws.com%s", d.region,
		     strncmp(d.region, "cn-", 3) ? "" : ".cn") < 0)
		aws_endpoint = NULL;
	endpoint = d.endpoint ? d.endpoint : aws_endpoint ? aws_endpoint : "(no endpoint)";

	prov = check_environment(&d, http);
	check_token(&d);
	if (prov) {
		cache = creds_cache_new(prov);
		if (!cache)
			prov->destroy(prov);
	}
	if (cache)
		check_sts(&d, cache);
	else
		add(&d, "sts", ST_SKIP, NULL, "no credential source to ask");
	if (d.endpoint || aws_endpoint)
		check_endpoint(&d, endpoint);
	else
		add(&d, "endpoint", ST_SKIP, NULL, "no endpoint: no region and no "
		    "AWS_ENDPOINT_URL");
	if (cache && d.have_creds && d.endpoint_ok) {
		sc = (struct s3_config){
			.bucket = d.bucket,
			.endpoint = d.endpoint,
			.region = d.region,
			.path_style = d.endpoint != NULL,
			.page_size = 100,
			.max_attempts = 2,
			.budget_ms = 10000,
		};
		st = s3_store_new(&sc, http, cache, why, sizeof(why));
		if (!st) {
			add(&d, "list", ST_FAIL, NULL, "%s", why);
			add(&d, "read", ST_SKIP, NULL, "no store");
		}
	}
	if (st) {
		check_list(&d, st);
		check_read(&d, st);
	} else if (!cache || !d.have_creds || !d.endpoint_ok) {
		const char *reason = !d.have_creds ? "no credentials" : "the endpoint is not "
				     "reachable";

		add(&d, "list", ST_SKIP, NULL, "%s", reason);
		add(&d, "read", ST_SKIP, NULL, "%s", reason);
	}
	rc = report(&d, endpoint);
	store_destroy(st);
	creds_cache_free(cache);
	for (i = 0; i < d.n; i++)
		json_object_put(d.checks[i].extra);
	http_client_free(http);
out_curl:
	curl_global_cleanup();
out:
	free(aws_endpoint);
	free(d.prefix);
	free(d.region_buf);
	return rc;
}
