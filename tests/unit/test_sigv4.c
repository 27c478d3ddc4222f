/*
 * test_sigv4: SigV4 vector runner, stage by stage, plus our own S3 cases.
 *
 * usage: test_sigv4 [DIR...]
 *
 * Each DIR is walked recursively. Two layouts are recognised:
 *
 *  classic (the AWS sig-v4 test suite): NAME.req with NAME.creq, NAME.sts and
 *  NAME.authz (or NAME.signature). Credentials, region and service are the
 *  suite's (AKIDEXAMPLE, us-east-1, "service", normalized paths) unless a
 *  context.json in the case folder or above says otherwise. A request that
 *  carries X-Amz-Date is signed in headers with that date; one without it is
 *  a presigned URL, signed in the query with the context's timestamp.
 *
 *  aws-c-auth: a folder with context.json and request.txt, checked twice,
 *  header-*.txt for header signing (the runner adds X-Amz-Date and, given a
 *  token, X-Amz-Security-Token before signing) and query-*.txt for presigning.
 *
 * Stages are checked separately, each from the expected output of the stage
 * before, so a failure names the stage that broke; the Authorization value,
 * where the case gives one, checks the whole chain at once.
 *
 * Without DIR the vectors come from $IRSAFS_VECTORS, else SHARED_VECTORS_DIR;
 * if that is missing the program prints SKIP and exits 77.
 */
#include "auth/sigv4.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/buf.h"
#include "core/strutil.h"
#include "tests/unit/harness.h"

#define FILE_MAX ((size_t)1024 * 1024)
#define OUT_MAX ((size_t)256 * 1024)
#define REQ_MAX_HEADERS 64
/* Headers the runner may add to a parsed request before signing. */
#define REQ_EXTRA_HEADERS 3

#define AKID_EXAMPLE "AKIDEXAMPLE"
#define SECRET_EXAMPLE "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct context {
	char *access_key;
	char *secret_key;
	char *token;		/* NULL when none */
	char *region;
	char *service;
	char amz_date[17];	/* "" when the context gives no timestamp */
	int normalize;
	int sign_body;
	long expires;		/* 0 when not given */
};

/* A request parsed in place: every pointer points into the file's text. */
struct request {
	const char *method;
	const char *path;
	const char *query;	/* "" when none */
	struct sigv4_header hdr[REQ_MAX_HEADERS + REQ_EXTRA_HEADERS];
	size_t nhdr;
	const char *body;
	size_t body_len;
};

/* Expected stage outputs; NULL when the case does not give that stage. */
struct expect {
	char *creq;
	char *sts;
	char *sig;
	char *authz;
};

/* ---- files ---------------------------------------------------------------- */

static int path_join(char *out, const char *dir, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);

	return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

static int is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Read dir/name; NULL when it does not exist (or cannot be read). */
static char *read_case_file(const char *dir, const char *name, size_t *len)
{
	char path[PATH_MAX];
	char *data;

	if (path_join(path, dir, name) || file_read_small(path, FILE_MAX, &data, len))
		return NULL;
	return data;
}

/* Expected output in dir/<a><b>: CRLF becomes LF and trailing line breaks go. */
static char *read_expected(const char *dir, const char *a, const char *b)
{
	char name[NAME_MAX + 1], *s, *r, *w;
	int n;

	n = snprintf(name, sizeof(name), "%s%s", a, b);
	s = n < 0 || n >= (int)sizeof(name) ? NULL : read_case_file(dir, name, NULL);
	if (!s)
		return NULL;
	for (r = w = s; *r; r++)
		if (!(r[0] == '\r' && r[1] == '\n'))
			*w++ = *r;
	while (w > s && (w[-1] == '\n' || w[-1] == '\r'))
		w--;
	*w = '\0';
	return s;
}

/* ---- requests ------------------------------------------------------------- */

/*
 * "METHOD target HTTP/1.1", header lines, a blank line, the body. The target
 * may contain spaces (the suites write "/example space/"), so it runs from the
 * first space to the last. A line that starts with a blank continues the
 * header before it (obs-fold); its line break becomes a space, which the
 * signer then collapses.
 */
static int parse_request(char *text, size_t len, struct request *r)
{
	char *end = text + len, *p = text, *eol, *sp, *q;

	memset(r, 0, sizeof(*r));
	eol = memchr(p, '\n', len);
	eol = eol ? eol : end;
	*eol = '\0';
	if (eol > p && eol[-1] == '\r')
		eol[-1] = '\0';
	sp = strchr(p, ' ');
	if (!sp)
		return -EINVAL;
	*sp = '\0';
	r->method = p;
	r->path = sp + 1;
	sp = strrchr(sp + 1, ' ');
	if (sp && !strncmp(sp + 1, "HTTP/", 5))
		*sp = '\0';
	q = strchr(r->path, '?');
	r->query = "";
	if (q) {
		*q = '\0';
		r->query = q + 1;
	}
	p = eol < end ? eol + 1 : end;

	while (p < end) {
		char *line = p, *colon;

		eol = memchr(p, '\n', (size_t)(end - p));
		eol = eol ? eol : end;
		if (eol == line || (eol == line + 1 && *line == '\r')) {
			p = eol < end ? eol + 1 : end;
			break;
		}
		while (eol < end && (eol[1] == ' ' || eol[1] == '\t')) {
			if (eol[-1] == '\r')
				eol[-1] = ' ';
			*eol = ' ';
			eol = memchr(eol + 1, '\n', (size_t)(end - eol - 1));
			eol = eol ? eol : end;
		}
		p = eol < end ? eol + 1 : end;
		*eol = '\0';
		if (eol[-1] == '\r')
			eol[-1] = '\0';
		colon = strchr(line, ':');
		if (!colon || colon == line || r->nhdr == REQ_MAX_HEADERS)
			return -EINVAL;
		*colon = '\0';
		r->hdr[r->nhdr].name = line;
		r->hdr[r->nhdr++].value = colon + 1;
	}
	r->body = p;
	r->body_len = (size_t)(end - p);
	return 0;
}

static const char *find_header(const struct request *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->nhdr; i++)
		if (!strcasecmp(r->hdr[i].name, name))
			return r->hdr[i].value;
	return NULL;
}

static void add_header(struct request *r, const char *name, const char *value)
{
	r->hdr[r->nhdr].name = name;
	r->hdr[r->nhdr++].value = value;
}

/* Is name in the signed-header line (the one before the last) of a canonical request? */
static int expected_signs(const char *creq, const char *name)
{
	const char *last, *line, *p;
	size_t n = strlen(name);

	last = strrchr(creq, '\n');
	if (!last)
		return 0;
	for (line = last; line > creq && line[-1] != '\n'; line--)
		;
	for (p = line; p < last; p += strcspn(p, ";\n") + 1)
		if (!strncasecmp(p, name, n) && (p[n] == ';' || p[n] == '\n'))
			return 1;
	return 0;
}

/* ---- contexts ------------------------------------------------------------- */

static void context_cleanup(struct context *ctx)
{
	free(ctx->access_key);
	free(ctx->secret_key);
	free(ctx->token);
	free(ctx->region);
	free(ctx->service);
	memset(ctx, 0, sizeof(*ctx));
}

/* The classic suite's own setting. */
static int context_default(struct context *ctx)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->access_key = strdup(AKID_EXAMPLE);
	ctx->secret_key = strdup(SECRET_EXAMPLE);
	ctx->region = strdup("us-east-1");
	ctx->service = strdup("service");
	ctx->normalize = 1;
	if (!ctx->access_key || !ctx->secret_key || !ctx->region || !ctx->service) {
		context_cleanup(ctx);
		return -ENOMEM;
	}
	return 0;
}

static int ctx_str(struct json_object *obj, const char *key, char **out)
{
	struct json_object *v;
	char *s;

	if (!json_object_object_get_ex(obj, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	s = strdup(json_object_get_string(v));
	if (!s)
		return -ENOMEM;
	free(*out);
	*out = s;
	return 0;
}

static void ctx_long(struct json_object *obj, const char *key, long *out)
{
	struct json_object *v;

	if (json_object_object_get_ex(obj, key, &v))
		*out = (long)json_object_get_int64(v);
}

static void ctx_bool(struct json_object *obj, const char *key, int *out)
{
	struct json_object *v;

	if (json_object_object_get_ex(obj, key, &v))
		*out = json_object_get_boolean(v);
}

static int context_load(const char *path, struct context *ctx)
{
	struct json_object *root, *creds;
	char *timestamp = NULL;
	struct timespec ts;
	int rc;

	rc = context_default(ctx);
	if (rc)
		return rc;
	root = json_object_from_file(path);
	if (!root || !json_object_is_type(root, json_type_object)) {
		rc = -EINVAL;
		goto out;
	}
	if (json_object_object_get_ex(root, "credentials", &creds)) {
		rc = ctx_str(creds, "access_key_id", &ctx->access_key);
		if (!rc)
			rc = ctx_str(creds, "secret_access_key", &ctx->secret_key);
		if (!rc)
			rc = ctx_str(creds, "token", &ctx->token);
	}
	if (!rc)
		rc = ctx_str(root, "region", &ctx->region);
	if (!rc)
		rc = ctx_str(root, "service", &ctx->service);
	if (!rc)
		rc = ctx_str(root, "timestamp", &timestamp);
	if (!rc && timestamp) {
		rc = time_parse_iso8601(timestamp, &ts);
		if (!rc)
			time_format_amz(ts.tv_sec, ctx->amz_date);
	}
	ctx_bool(root, "normalize", &ctx->normalize);
	ctx_bool(root, "sign_body", &ctx->sign_body);
	ctx_long(root, "expiration_in_seconds", &ctx->expires);
	ctx_long(root, "presigned_expires_seconds", &ctx->expires);
out:
	free(timestamp);
	json_object_put(root);
	if (rc)
		context_cleanup(ctx);
	return rc;
}

/* ---- checking ------------------------------------------------------------- */

static void fail_case(const char *label, const char *what, const char *expected, const char *got)
{
	fprintf(stderr, "%s: %s differs\n--- expected\n%s\n--- got\n%s\n---\n", label, what,
		expected ? expected : "(none)", got ? got : "(none)");
	harness_failures++;
	harness_current_failed = 1;
}

static void fail_rc(const char *label, const char *what, int rc)
{
	fprintf(stderr, "%s: %s: %s\n", label, what, strerror(-rc));
	harness_failures++;
	harness_current_failed = 1;
}

static void check_stage(const char *label, const char *what, const char *expected,
			const char *got)
{
	if (expected && strcmp(expected, got) != 0)
		fail_case(label, what, expected, got);
}

/*
 * The S3 documentation writes "Credential=...,SignedHeaders=...,Signature="
 * where the generic suite has ", " between the parts; AWS accepts both, so
 * blanks after a comma do not count.
 */
static int authz_equal(const char *a, const char *b)
{
	for (;;) {
		if (*a != *b)
			return 0;
		if (!*a)
			return 1;
		if (*a++ == ',') {
			while (*a == ' ')
				a++;
			while (*b == ' ' || *b == ',')
				b++;
		} else {
			b++;
		}
	}
}

static void case_begin(void)
{
	harness_current_failed = 0;
}

static void case_end(const char *label)
{
	if (harness_current_failed)
		harness_failed++;
	else
		harness_passed++;
	printf("%s: %s\n", harness_current_failed ? "FAIL" : "ok", label);
}

/*
 * Run the stages of one case. In query mode the presign parameters are added
 * to in->query first. Each stage starts from the expected output of the
 * previous one where the case gives it, so one bug fails one stage.
 */
static void run_stages(const char *label, struct sigv4_input *in, const struct context *ctx,
		       int query_mode, const struct expect *exp)
{
	struct buf creq, sts, authz, query;
	char sig[65];
	int rc;

	buf_init(&creq, OUT_MAX);
	buf_init(&sts, OUT_MAX);
	buf_init(&authz, OUT_MAX);
	buf_init(&query, OUT_MAX);

	if (query_mode) {
		rc = buf_puts(&query, in->query ? in->query : "");
		if (!rc && query.len)
			rc = buf_puts(&query, "&");
		if (!rc)
			rc = sigv4_presign_params(in, ctx->access_key, ctx->token, ctx->expires,
						  &query);
		if (rc) {
			fail_rc(label, "presign parameters", rc);
			goto out;
		}
		in->query = query.data;
	}

	rc = sigv4_canonical_request(in, &creq, NULL);
	if (rc) {
		fail_rc(label, "canonical request", rc);
		goto out;
	}
	check_stage(label, "canonical request", exp->creq, creq.data);

	rc = sigv4_string_to_sign(in, exp->creq ? exp->creq : creq.data, &sts);
	if (rc) {
		fail_rc(label, "string to sign", rc);
		goto out;
	}
	check_stage(label, "string to sign", exp->sts, sts.data);

	rc = sigv4_signature(in, ctx->secret_key, exp->sts ? exp->sts : sts.data, sig);
	if (rc) {
		fail_rc(label, "signature", rc);
		goto out;
	}
	check_stage(label, "signature", exp->sig, sig);

	if (exp->authz) {
		rc = sigv4_authorization(in, ctx->access_key, ctx->secret_key, &authz);
		if (rc)
			fail_rc(label, "authorization", rc);
		else if (!authz_equal(exp->authz, authz.data))
			fail_case(label, "authorization", exp->authz, authz.data);
	}
	if (!exp->creq && !exp->sts && !exp->sig && !exp->authz)
		fail_case(label, "case", "at least one expected stage", "none");
out:
	buf_cleanup(&query);
	buf_cleanup(&authz);
	buf_cleanup(&sts);
	buf_cleanup(&creq);
}

static void expect_cleanup(struct expect *exp)
{
	free(exp->creq);
	free(exp->sts);
	free(exp->sig);
	free(exp->authz);
}

/* The Signature= part of an Authorization value, as a new string. */
static char *authz_signature(const char *authz)
{
	const char *p = authz ? strstr(authz, "Signature=") : NULL;

	return p ? strndup(p + 10, strcspn(p + 10, ", \n")) : NULL;
}

static char *trimmed_dup(const char *s)
{
	char *d = strdup(s);

	return d ? str_trim(d) : NULL;
}

/*
 * The payload hash a server would use: x-amz-content-sha256 when the request
 * names one (S3), UNSIGNED-PAYLOAD for an S3 presigned URL, else the body's.
 */
static void payload_hash(const struct request *r, const struct context *ctx, int query_mode,
			 char out[65])
{
	const char *h = find_header(r, "x-amz-content-sha256");

	if (h) {
		while (*h == ' ' || *h == '\t')
			h++;
		snprintf(out, 65, "%.*s", (int)strcspn(h, " \t"), h);
	} else if (query_mode && !ctx->sign_body && !strcmp(ctx->service, "s3")) {
		snprintf(out, 65, "UNSIGNED-PAYLOAD");
	} else {
		sha256_hex(r->body, r->body_len, out);
	}
}

static void fill_input(struct sigv4_input *in, const struct request *r, const struct context *ctx,
		       const char *amz_date, const char *payload)
{
	memset(in, 0, sizeof(*in));
	in->method = r->method;
	in->path = r->path;
	in->query = r->query;
	in->headers = r->hdr;
	in->nheaders = r->nhdr;
	in->payload_hash = payload;
	in->amz_date = amz_date;
	in->region = ctx->region;
	in->service = ctx->service;
	in->normalize_path = ctx->normalize;
}

/* ---- the two layouts ------------------------------------------------------ */

static void run_classic(const char *dir, const char *label, const char *stem,
			const struct context *ctx)
{
	char name[NAME_MAX + 1], payload[65], *text, *stext = NULL, *date = NULL;
	struct request req, sreq;
	struct expect exp = { 0 };
	struct sigv4_input in;
	const char *h, *amz_date;
	size_t len;
	int query_mode;

	case_begin();
	snprintf(name, sizeof(name), "%s.req", stem);
	text = read_case_file(dir, name, &len);
	if (!text || parse_request(text, len, &req)) {
		fail_case(label, "request file", "a parsable HTTP request", name);
		goto out;
	}
	exp.creq = read_expected(dir, stem, ".creq");
	exp.sts = read_expected(dir, stem, ".sts");
	exp.authz = read_expected(dir, stem, ".authz");
	exp.sig = read_expected(dir, stem, ".signature");
	if (!exp.sig)
		exp.sig = authz_signature(exp.authz);

	h = find_header(&req, "x-amz-date");
	query_mode = !h;
	if (h) {
		amz_date = date = trimmed_dup(h);
	} else {
		amz_date = ctx->amz_date;
		if (!*amz_date) {
			fail_case(label, "date", "X-Amz-Date or a context timestamp", "none");
			goto out;
		}
	}

	/*
	 * Session tokens in the classic suite: the .req is the request before
	 * signing, the .sreq the request as sent. A token that appears only in
	 * the .sreq is the case's credential; whether the signer adds it before
	 * signing (get-vanilla-with-session-token) or after (post-sts-header-
	 * after) is the service's choice, which the case states in its signed
	 * headers.
	 */
	snprintf(name, sizeof(name), "%s.sreq", stem);
	stext = read_case_file(dir, name, &len);
	h = NULL;
	if (!query_mode && stext && !parse_request(stext, len, &sreq) &&
	    !find_header(&req, "x-amz-security-token"))
		h = find_header(&sreq, "x-amz-security-token");
	if (h && exp.creq && expected_signs(exp.creq, "x-amz-security-token"))
		add_header(&req, "X-Amz-Security-Token", h);

	payload_hash(&req, ctx, query_mode, payload);
	fill_input(&in, &req, ctx, amz_date, payload);
	run_stages(label, &in, ctx, query_mode, &exp);
out:
	case_end(label);
	expect_cleanup(&exp);
	free(date);
	free(stext);
	free(text);
}

static void run_crt(const char *dir, const char *label, const struct context *ctx,
		    int query_mode)
{
	const char *prefix = query_mode ? "query" : "header";
	char full[PATH_MAX], payload[65], *text, *stext = NULL;
	struct request req, sreq;
	struct expect exp = { 0 };
	struct sigv4_input in;
	const char *h;
	size_t len;

	snprintf(full, sizeof(full), "%s [%s]", label, prefix);
	case_begin();
	text = read_case_file(dir, "request.txt", &len);
	if (!text || parse_request(text, len, &req)) {
		fail_case(full, "request file", "a parsable HTTP request", "request.txt");
		goto out;
	}
	if (!*ctx->amz_date) {
		fail_case(full, "context", "a timestamp", "none");
		goto out;
	}
	exp.creq = read_expected(dir, prefix, "-canonical-request.txt");
	exp.sts = read_expected(dir, prefix, "-string-to-sign.txt");
	exp.sig = read_expected(dir, prefix, "-signature.txt");
	/* The signed request shows the Authorization value; the query variant has none. */
	if (!query_mode) {
		stext = read_case_file(dir, "header-signed-request.txt", &len);
		h = stext && !parse_request(stext, len, &sreq) ?
			    find_header(&sreq, "authorization") : NULL;
		exp.authz = h ? trimmed_dup(h) : NULL;
	}

	payload_hash(&req, ctx, query_mode, payload);
	if (!query_mode) {
		add_header(&req, "X-Amz-Date", ctx->amz_date);
		if (ctx->token)
			add_header(&req, "X-Amz-Security-Token", ctx->token);
		if (ctx->sign_body)
			add_header(&req, "X-Amz-Content-Sha256", payload);
	}
	fill_input(&in, &req, ctx, ctx->amz_date, payload);
	run_stages(full, &in, ctx, query_mode, &exp);
out:
	case_end(full);
	expect_cleanup(&exp);
	free(stext);
	free(text);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n > m && !strcmp(s + n - m, suffix);
}

static void walk(const char *dir, const char *label, const struct context *parent)
{
	char path[PATH_MAX], sub[PATH_MAX];
	const struct context *ctx = parent;
	struct context own;
	struct dirent **ents = NULL;
	int i, n, have_own = 0;

	if (!path_join(path, dir, "context.json") && access(path, R_OK) == 0) {
		if (context_load(path, &own)) {
			case_begin();
			fail_case(label, "context.json", "a valid context", path);
			case_end(label);
			return;
		}
		ctx = &own;
		have_own = 1;
	}
	n = scandir(dir, &ents, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "%s: %s\n", dir, strerror(errno));
		harness_failures++;
		goto out;
	}
	if (!path_join(path, dir, "request.txt") && access(path, R_OK) == 0) {
		run_crt(dir, label, ctx, 0);
		run_crt(dir, label, ctx, 1);
	}
	for (i = 0; i < n; i++) {
		const char *name = ents[i]->d_name;
		char stem[NAME_MAX + 1];
		const char *base;

		if (!ends_with(name, ".req"))
			continue;
		snprintf(stem, sizeof(stem), "%.*s", (int)(strlen(name) - 4), name);
		base = strrchr(label, '/');
		base = base ? base + 1 : label;
		if (!strcmp(base, stem)) {
			run_classic(dir, label, stem, ctx);
		} else {
			snprintf(sub, sizeof(sub), "%s/%s", label, stem);
			run_classic(dir, sub, stem, ctx);
		}
	}
	for (i = 0; i < n; i++) {
		const char *name = ents[i]->d_name;

		if (name[0] == '.' || path_join(path, dir, name) || !is_dir(path))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", label, name);
		walk(path, sub, ctx);
	}
out:
	for (i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	if (have_own)
		context_cleanup(&own);
}

/*
 * A case folder given on its own still gets the context.json of the suite it
 * belongs to (s3-doc-examples keeps one at its top): the nearest one above.
 */
static int context_above(const char *dir, struct context *ctx)
{
	char up[PATH_MAX], path[PATH_MAX], *slash;

	if (!realpath(dir, up))
		return context_default(ctx);
	while ((slash = strrchr(up, '/')) != NULL && slash != up) {
		*slash = '\0';
		if (!path_join(path, up, "context.json") && access(path, R_OK) == 0)
			return context_load(path, ctx);
	}
	return context_default(ctx);
}

static void run_dir(const char *dir)
{
	struct context ctx;
	char label[PATH_MAX];
	const char *base;
	size_t n;

	snprintf(label, sizeof(label), "%s", dir);
	n = strlen(label);
	while (n > 1 && label[n - 1] == '/')
		label[--n] = '\0';
	base = strrchr(label, '/');
	base = base ? base + 1 : label;
	if (context_above(dir, &ctx)) {
		case_begin();
		fail_case(base, "context.json above", "a valid context", dir);
		case_end(base);
		return;
	}
	walk(dir, base, &ctx);
	context_cleanup(&ctx);
}

/* ---- our own S3 cases ----------------------------------------------------- */

/*
 * Expected values below were computed by an independent SigV4 implementation
 * and agree with curl 7.88 --aws-sigv4 "aws:amz:us-east-1:s3" for the key and
 * token cases (curl signs the path as given, as S3 wants).
 */
#define S3_AKID "AKIAIOSFODNN7EXAMPLE"
#define S3_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define S3_HOST "examplebucket.s3.amazonaws.com"
#define S3_DATE "20130524T000000Z"

static void s3_input(struct sigv4_input *in, const char *path, const char *query,
		     const struct sigv4_header *h, size_t nh, const char *payload)
{
	memset(in, 0, sizeof(*in));
	in->method = "GET";
	in->path = path;
	in->query = query;
	in->headers = h;
	in->nheaders = nh;
	in->payload_hash = payload;
	in->amz_date = S3_DATE;
	in->region = "us-east-1";
	in->service = "s3";
	in->normalize_path = 0;
}

/* Canonical request and Authorization of in, checked against the expected strings. */
static void check_s3(const struct sigv4_input *in, const char *creq, const char *authz)
{
	struct buf c, a, sh;

	buf_init(&c, OUT_MAX);
	buf_init(&a, OUT_MAX);
	buf_init(&sh, OUT_MAX);
	CHECK_INT(sigv4_canonical_request(in, &c, &sh), 0);
	CHECK_STR(c.data, creq);
	CHECK(sh.data && strstr(sh.data, "x-amz-content-sha256"));
	CHECK_INT(sigv4_authorization(in, S3_AKID, S3_SECRET, &a), 0);
	CHECK_STR(a.data, authz);
	buf_cleanup(&sh);
	buf_cleanup(&a);
	buf_cleanup(&c);
}

/* Spaces, '+', '~', UTF-8 and "//" in a key: encoded once by the S3 layer, signed as is. */
TEST(s3_key_encoded_once)
{
	static const char key[] = "/photos//a b+c~\xc3\xbc.jpg";
	static const char creq[] =
		"GET\n/photos//a%20b%2Bc~%C3%BC.jpg\n\nhost:" S3_HOST
		"\nx-amz-content-sha256:" EMPTY_SHA256 "\nx-amz-date:" S3_DATE
		"\n\nhost;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA256;
	static const char authz[] =
		"AWS4-HMAC-SHA256 Credential=" S3_AKID "/20130524/us-east-1/s3/aws4_request, "
		"SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
		"Signature=725ff08d1b3f6b69b471e068274278f596398825c3d528779ddbf3a22f8f9187";
	const struct sigv4_header h[] = {
		{ "Host", S3_HOST },
		{ "x-amz-content-sha256", EMPTY_SHA256 },
		{ "x-amz-date", S3_DATE },
	};
	struct sigv4_input in;
	struct buf path;

	buf_init(&path, OUT_MAX);
	CHECK_INT(uri_encode(&path, key, strlen(key), 1), 0);
	CHECK_STR(path.data, "/photos//a%20b%2Bc~%C3%BC.jpg");
	s3_input(&in, path.data, NULL, h, 3, EMPTY_SHA256);
	check_s3(&in, creq, authz);
	/* The raw key gives the same canonical URI: encoded once, never twice. */
	s3_input(&in, key, NULL, h, 3, EMPTY_SHA256);
	check_s3(&in, creq, authz);
	buf_cleanup(&path);
}

TEST(s3_session_token_signed)
{
	const struct sigv4_header h[] = {
		{ "X-Amz-Security-Token", "FwoGZXIvYXdzEXAMPLE//token+with/slashes==" },
		{ "Host", S3_HOST },
		{ "Range", "bytes=0-9" },
		{ "x-amz-content-sha256", EMPTY_SHA256 },
		{ "x-amz-date", S3_DATE },
	};
	struct sigv4_input in;

	s3_input(&in, "/test.txt", "", h, 5, EMPTY_SHA256);
	check_s3(&in,
		 "GET\n/test.txt\n\nhost:" S3_HOST "\nrange:bytes=0-9\nx-amz-content-sha256:"
		 EMPTY_SHA256 "\nx-amz-date:" S3_DATE
		 "\nx-amz-security-token:FwoGZXIvYXdzEXAMPLE//token+with/slashes==\n\n"
		 "host;range;x-amz-content-sha256;x-amz-date;x-amz-security-token\n" EMPTY_SHA256,
		 "AWS4-HMAC-SHA256 Credential=" S3_AKID "/20130524/us-east-1/s3/aws4_request, "
		 "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date;x-amz-security-token, "
		 "Signature=7b29f9db8fb829882df9faf201e0d6ade0ecf73e1a61d3620fa299df88cd2496");
}

/* ListObjectsV2 as s3/ sends it: UNSIGNED-PAYLOAD named in x-amz-content-sha256. */
TEST(s3_list_unsigned_payload)
{
	const struct sigv4_header h[] = {
		{ "Host", S3_HOST },
		{ "x-amz-content-sha256", "UNSIGNED-PAYLOAD" },
		{ "x-amz-date", S3_DATE },
	};
	struct sigv4_input in;

	s3_input(&in, "/",
		 "list-type=2&prefix=a%20b%2F&delimiter=%2F&continuation-token=1%2Fab%2B%3D", h, 3,
		 "UNSIGNED-PAYLOAD");
	check_s3(&in,
		 "GET\n/\n"
		 "continuation-token=1%2Fab%2B%3D&delimiter=%2F&list-type=2&prefix=a%20b%2F\n"
		 "host:" S3_HOST "\nx-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:" S3_DATE
		 "\n\nhost;x-amz-content-sha256;x-amz-date\nUNSIGNED-PAYLOAD",
		 "AWS4-HMAC-SHA256 Credential=" S3_AKID "/20130524/us-east-1/s3/aws4_request, "
		 "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
		 "Signature=3260633c9306f621948c9ec3fcd8c4c334024aaef942106321fa48f3a41ce3c0");
}

/* The canonical URI line of a one-header GET. */
static void check_uri(const char *path, int normalize, const char *want)
{
	const struct sigv4_header h = { "host", "h" };
	struct sigv4_input in;
	struct buf c, w;

	s3_input(&in, path, NULL, &h, 1, EMPTY_SHA256);
	in.normalize_path = normalize;
	buf_init(&c, OUT_MAX);
	buf_init(&w, OUT_MAX);
	buf_printf(&w, "GET\n%s\n\nhost:h\n\nhost\n" EMPTY_SHA256, want);
	CHECK_INT(sigv4_canonical_request(&in, &c, NULL), 0);
	CHECK_STR(c.data, w.data);
	buf_cleanup(&w);
	buf_cleanup(&c);
}

TEST(canonical_uri)
{
	check_uri("", 0, "/");
	check_uri("/a//b/../c/./", 0, "/a//b/../c/./");
	check_uri("/%2b%41 x", 0, "/%2b%41%20x");
	check_uri("/100%", 0, "/100%25");
	check_uri("", 1, "/");
	check_uri("/a/b/../c/./d", 1, "/a/c/d");
	check_uri("/a/b/..", 1, "/a/");
	check_uri("/../..", 1, "/");
	check_uri("/a/%41", 1, "/a/%2541");
}

TEST(rejects_bad_input)
{
	const struct sigv4_header good = { "host", "h" };
	const struct sigv4_header colon = { "ho:st", "h" };
	struct sigv4_input in;
	struct buf out;
	char sig[65];

	/* Room for "keep" and a partial canonical request, not for a whole one. */
	buf_init(&out, 64);
	buf_puts(&out, "keep");
	s3_input(&in, "/", NULL, &good, 1, EMPTY_SHA256);
	in.amz_date = "2013-05-24T00:00:00Z";
	CHECK_INT(sigv4_canonical_request(&in, &out, NULL), -EINVAL);
	CHECK_INT(sigv4_signature(&in, S3_SECRET, "x", sig), -EINVAL);
	in.amz_date = S3_DATE;
	in.region = "us/east";
	CHECK_INT(sigv4_string_to_sign(&in, "x", &out), -EINVAL);
	in.region = "us-east-1";
	in.query = "a=%zz";
	CHECK_INT(sigv4_canonical_request(&in, &out, NULL), -EINVAL);
	in.query = NULL;
	in.headers = &colon;
	CHECK_INT(sigv4_canonical_request(&in, &out, NULL), -EINVAL);
	in.headers = &good;
	CHECK_INT(sigv4_canonical_request(&in, &out, NULL), -EMSGSIZE);
	CHECK_INT(sigv4_presign_params(&in, S3_AKID, NULL, 0, &out), -EINVAL);
	CHECK_INT(sigv4_presign_params(&in, S3_AKID, NULL, 604801, &out), -EINVAL);
	/* Failures leave the output as it was. */
	CHECK_STR(out.data, "keep");
	buf_cleanup(&out);
}

TEST(presign_params)
{
	const struct sigv4_header h = { "Host", S3_HOST };
	struct sigv4_input in;
	struct buf out;

	buf_init(&out, OUT_MAX);
	s3_input(&in, "/test.txt", NULL, &h, 1, "UNSIGNED-PAYLOAD");
	CHECK_INT(sigv4_presign_params(&in, S3_AKID, "a/b+c=", 3600, &out), 0);
	CHECK_STR(out.data, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" S3_AKID
			    "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=" S3_DATE
			    "&X-Amz-Expires=3600&X-Amz-Security-Token=a%2Fb%2Bc%3D"
			    "&X-Amz-SignedHeaders=host");
	buf_cleanup(&out);
}

/* ---- main ----------------------------------------------------------------- */

int main(int argc, char **argv)
{
	char why[PATH_MAX + 64];
	const char *dir;
	int i, rc;

	/* Keep ok/FAIL lines next to the stderr detail in CI logs. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	RUN(s3_key_encoded_once);
	RUN(s3_session_token_signed);
	RUN(s3_list_unsigned_payload);
	RUN(canonical_uri);
	RUN(rejects_bad_input);
	RUN(presign_params);

	for (i = 1; i < argc; i++) {
		if (!is_dir(argv[i])) {
			fprintf(stderr, "%s: not a directory\n", argv[i]);
			harness_failures++;
			continue;
		}
		run_dir(argv[i]);
	}
	if (argc > 1)
		return harness_done();

	dir = getenv("IRSAFS_VECTORS");
#ifdef SHARED_VECTORS_DIR
	if (!dir || !*dir)
		dir = SHARED_VECTORS_DIR;
#endif
	if (!dir || !*dir || !is_dir(dir)) {
		/* Our own cases still count: a failure among them is not a skip. */
		snprintf(why, sizeof(why), "SigV4 vectors %s not found",
			 dir && *dir ? dir : "(no directory set)");
		harness_skip(why);
		rc = harness_done();
		return rc ? rc : 77;
	}
	run_dir(dir);
	return harness_done();
}
