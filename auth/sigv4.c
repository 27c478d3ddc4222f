/*
 * sigv4: AWS Signature Version 4 in three pure stages.
 *
 * canonical request -> string to sign -> signature, exactly as the AWS
 * documentation lays them out, each callable on its own so that the vector
 * runner can name the stage that broke. Nothing here allocates anything the
 * caller must free; scratch buffers that may hold a session token or key
 * material are wiped before they are released.
 */
#include "auth/sigv4.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/buf.h"
#include "core/strutil.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SIGV4_TERMINATOR "aws4_request"
/*
 * Bound on the scratch copies we build (canonical request, query). A real S3
 * request is a few KiB even with a 2 KiB session token and a 1 KiB key
 * encoded three bytes per byte; anything near this limit is a bug upstream.
 */
#define SIGV4_SCRATCH_MAX ((size_t)256 * 1024)
/* Longest X-Amz-Expires AWS accepts for a SigV4 presigned URL: 7 days. */
#define SIGV4_EXPIRES_MAX 604800L

struct hdr_ref {
	const struct sigv4_header *h;
	size_t pos;	/* position in the input, to keep duplicates in order */
};

/* On failure every public function leaves out as it found it. */
static void buf_truncate(struct buf *b, size_t len)
{
	b->len = len;
	if (b->data)
		b->data[len] = '\0';
}

/* ASCII only: the result must not depend on the process locale. */
static int ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int name_cmp_ci(const char *a, const char *b)
{
	int ca, cb;

	do {
		ca = ascii_lower((unsigned char)*a++);
		cb = ascii_lower((unsigned char)*b++);
	} while (ca && ca == cb);
	return ca - cb;
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/*
 * Non-empty, no blanks or control bytes, none of the bytes in bad: a header
 * name with ':' or a region with '/' would forge the structure it sits in.
 */
static int is_token(const char *s, const char *bad)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f || strchr(bad, *s))
			return 0;
	return 1;
}

/* "20150830T123600Z": the scope date is its first eight bytes. */
static int check_scope(const struct sigv4_input *in)
{
	static const char digits[] = "0123456789";
	const char *d = in->amz_date;

	if (!d || strlen(d) != 16 || strspn(d, digits) != 8 || d[8] != 'T' ||
	    strspn(d + 9, digits) != 6 || d[15] != 'Z' || !is_token(in->region, "/") ||
	    !is_token(in->service, "/"))
		return -EINVAL;
	return 0;
}

static int check_request(const struct sigv4_input *in)
{
	size_t i;

	if (!is_token(in->method, "") || !in->path || !is_token(in->payload_hash, "") ||
	    (in->nheaders && !in->headers))
		return -EINVAL;
	/* Values may hold line breaks: they are folded like any other blank. */
	for (i = 0; i < in->nheaders; i++)
		if (!is_token(in->headers[i].name, ":") || !in->headers[i].value)
			return -EINVAL;
	return check_scope(in);
}

struct path_seg {
	const char *p;
	size_t len;
};

/*
 * The generic (non-S3) path: drop empty and "." segments, let ".." eat its
 * parent, and keep a trailing '/' when the path ended in '/', "." or ".."
 * (RFC 3986 section 5.2.4). Each segment is then encoded, so a '%' that was
 * already in the path is encoded again: that is the double encoding every
 * service but S3 expects.
 */
static int append_normalized_path(struct buf *out, const char *path)
{
	struct path_seg *seg;
	size_t nseg = 0, max = 1, i;
	const char *p, *last;
	int trailing, rc = 0;

	for (p = path; *p; p++)
		max += *p == '/';
	seg = calloc(max, sizeof(*seg));
	if (!seg)
		return -ENOMEM;
	last = strrchr(path, '/');
	last = last ? last + 1 : path;
	trailing = !*last || !strcmp(last, ".") || !strcmp(last, "..");

	for (p = path; *p;) {
		const char *s;

		while (*p == '/')
			p++;
		for (s = p; *p && *p != '/'; p++)
			;
		if (p - s == 0 || (p - s == 1 && s[0] == '.'))
			continue;
		if (p - s == 2 && s[0] == '.' && s[1] == '.') {
			nseg -= nseg > 0;
			continue;
		}
		seg[nseg].p = s;
		seg[nseg++].len = (size_t)(p - s);
	}

	for (i = 0; i < nseg && !rc; i++) {
		rc = buf_puts(out, "/");
		if (!rc)
			rc = uri_encode(out, seg[i].p, seg[i].len, 0);
	}
	if (!rc && (nseg == 0 || trailing))
		rc = buf_puts(out, "/");
	free(seg);
	return rc;
}

/*
 * The S3 path: never normalized, never encoded twice. An existing %XX escape
 * is kept (its hex digits are unreserved, so only the '%' needs care); any
 * other byte outside the unreserved set and '/' is encoded. That is a no-op
 * for a path our S3 layer encoded, and covers the AWS examples that write
 * e.g. '$' raw in the request line.
 */
static int append_s3_path(struct buf *out, const char *path)
{
	const char *p;
	int rc = 0;

	if (!*path)
		return buf_puts(out, "/");
	for (p = path; *p && !rc; p++) {
		if (p[0] == '%' && is_hex(p[1]) && is_hex(p[2]))
			rc = buf_append(out, p, 1);
		else
			rc = uri_encode(out, p, 1, 1);
	}
	return rc;
}

struct qparam {
	size_t off;	/* "name\0value\0" in the scratch buffer, which may move */
	const char *name;
	const char *value;
};

static int qparam_cmp(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

/*
 * Decode each name and value, encode it again with the one encoder, then sort
 * by encoded name and value: the order AWS compares in. '+' stays a literal
 * plus (%2B); we never send it for a space.
 */
static int append_canonical_query(struct buf *out, const char *query)
{
	struct qparam *params = NULL;
	size_t n = 0, max = 1, i;
	char *dup, *piece, *next;
	struct buf enc;
	int rc = 0;

	if (!query || !*query)
		return 0;
	buf_init(&enc, SIGV4_SCRATCH_MAX);
	for (i = 0; query[i]; i++)
		max += query[i] == '&';
	dup = strdup(query);
	params = calloc(max, sizeof(*params));
	if (!dup || !params) {
		rc = -ENOMEM;
		goto out;
	}

	for (piece = dup; piece && !rc; piece = next) {
		long nlen, vlen;
		char *value;

		next = strchr(piece, '&');
		if (next)
			*next++ = '\0';
		if (!*piece)
			continue;
		value = strchr(piece, '=');
		if (value)
			*value++ = '\0';
		nlen = uri_decode(piece, 0);
		vlen = value ? uri_decode(value, 0) : 0;
		if (nlen < 0 || vlen < 0) {
			rc = -EINVAL;
			break;
		}
		params[n++].off = enc.len;
		rc = uri_encode(&enc, piece, (size_t)nlen, 0);
		if (!rc)
			rc = buf_append(&enc, "", 1);
		if (!rc && value)
			rc = uri_encode(&enc, value, (size_t)vlen, 0);
		if (!rc)
			rc = buf_append(&enc, "", 1);
	}
	if (rc)
		goto out;
	for (i = 0; i < n; i++) {
		params[i].name = enc.data + params[i].off;
		params[i].value = params[i].name + strlen(params[i].name) + 1;
	}
	qsort(params, n, sizeof(*params), qparam_cmp);
	for (i = 0; i < n && !rc; i++)
		rc = buf_printf(out, "%s%s=%s", i ? "&" : "", params[i].name, params[i].value);
out:
	/* A presigned query carries the session token: wipe the copies. */
	if (dup)
		OPENSSL_cleanse(dup, strlen(query));
	free(dup);
	free(params);
	buf_cleanse(&enc);
	return rc;
}

static int hdr_ref_cmp(const void *a, const void *b)
{
	const struct hdr_ref *x = a, *y = b;
	int c = name_cmp_ci(x->h->name, y->h->name);

	if (c)
		return c;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Sorted by lower-case name; duplicates keep their input order (qsort is not stable). */
static int sort_headers(const struct sigv4_input *in, struct hdr_ref **out)
{
	struct hdr_ref *refs;
	size_t i;

	refs = calloc(in->nheaders ? in->nheaders : 1, sizeof(*refs));
	if (!refs)
		return -ENOMEM;
	for (i = 0; i < in->nheaders; i++) {
		refs[i].h = &in->headers[i];
		refs[i].pos = i;
	}
	qsort(refs, in->nheaders, sizeof(*refs), hdr_ref_cmp);
	*out = refs;
	return 0;
}

static int append_lower(struct buf *out, const char *s)
{
	size_t i = out->len;
	int rc = buf_puts(out, s);

	for (; !rc && i < out->len; i++)
		out->data[i] = (char)ascii_lower((unsigned char)out->data[i]);
	return rc;
}

/* Trim, and turn every inner run of blanks (folded lines included) into one space. */
static int append_header_value(struct buf *out, const char *v)
{
	const char *start;
	int rc = 0;

	while (is_ws(*v))
		v++;
	while (*v && !rc) {
		for (start = v; *v && !is_ws(*v); v++)
			;
		rc = buf_append(out, start, (size_t)(v - start));
		while (is_ws(*v))
			v++;
		if (*v && !rc)
			rc = buf_puts(out, " ");
	}
	return rc;
}

static int is_first_of_name(const struct hdr_ref *refs, size_t i)
{
	return i == 0 || name_cmp_ci(refs[i - 1].h->name, refs[i].h->name) != 0;
}

/*
 * "name:v1,v2\n" per distinct name, duplicates joined in their given order,
 * then the blank line that ends the block.
 */
static int append_canonical_headers(struct buf *out, const struct hdr_ref *refs, size_t n)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < n && !rc; i++) {
		if (is_first_of_name(refs, i)) {
			rc = append_lower(out, refs[i].h->name);
			if (!rc)
				rc = buf_puts(out, ":");
		} else {
			rc = buf_puts(out, ",");
		}
		if (!rc)
			rc = append_header_value(out, refs[i].h->value);
		if (!rc && (i + 1 == n || is_first_of_name(refs, i + 1)))
			rc = buf_puts(out, "\n");
	}
	return rc ? rc : buf_puts(out, "\n");
}

static int append_signed_headers(struct buf *out, const struct hdr_ref *refs, size_t n)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < n && !rc; i++) {
		if (!is_first_of_name(refs, i))
			continue;
		if (i)
			rc = buf_puts(out, ";");
		if (!rc)
			rc = append_lower(out, refs[i].h->name);
	}
	return rc;
}

int sigv4_canonical_request(const struct sigv4_input *in, struct buf *out,
			    struct buf *signed_headers)
{
	size_t out_len = out->len, sh_len = signed_headers ? signed_headers->len : 0;
	struct hdr_ref *refs = NULL;
	int rc;

	rc = check_request(in);
	if (rc)
		return rc;
	rc = sort_headers(in, &refs);
	if (rc)
		return rc;

	rc = buf_printf(out, "%s\n", in->method);
	if (!rc)
		rc = in->normalize_path ? append_normalized_path(out, in->path) :
					  append_s3_path(out, in->path);
	if (!rc)
		rc = buf_puts(out, "\n");
	if (!rc)
		rc = append_canonical_query(out, in->query);
	if (!rc)
		rc = buf_puts(out, "\n");
	if (!rc)
		rc = append_canonical_headers(out, refs, in->nheaders);
	if (!rc)
		rc = append_signed_headers(out, refs, in->nheaders);
	if (!rc)
		rc = buf_printf(out, "\n%s", in->payload_hash);
	if (!rc && signed_headers)
		rc = append_signed_headers(signed_headers, refs, in->nheaders);

	if (rc) {
		buf_truncate(out, out_len);
		if (signed_headers)
			buf_truncate(signed_headers, sh_len);
	}
	free(refs);
	return rc;
}

int sigv4_string_to_sign(const struct sigv4_input *in, const char *canonical_request,
			 struct buf *out)
{
	char hash[65];

	if (!canonical_request || check_scope(in))
		return -EINVAL;
	sha256_hex(canonical_request, strlen(canonical_request), hash);
	/* One append: out is untouched when it does not fit. */
	return buf_printf(out, SIGV4_ALGORITHM "\n%s\n%.8s/%s/%s/" SIGV4_TERMINATOR "\n%s",
			  in->amz_date, in->amz_date, in->region, in->service, hash);
}

static int hmac_sha256(const void *key, size_t keylen, const char *msg, size_t msglen,
		       unsigned char md[32])
{
	unsigned int mdlen = 32;

	/* Fails only when OpenSSL cannot allocate or has no SHA-256. */
	if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, msglen, md, &mdlen))
		return -EIO;
	return 0;
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request") */
static int derive_signing_key(const struct sigv4_input *in, const char *secret_key,
			      unsigned char key[32])
{
	unsigned char k1[32], k2[32];
	struct buf seed;
	int rc;

	buf_init(&seed, 4 + strlen(secret_key));
	rc = buf_puts(&seed, "AWS4");
	if (!rc)
		rc = buf_puts(&seed, secret_key);
	if (!rc)
		rc = hmac_sha256(seed.data, seed.len, in->amz_date, 8, k1);
	if (!rc)
		rc = hmac_sha256(k1, 32, in->region, strlen(in->region), k2);
	if (!rc)
		rc = hmac_sha256(k2, 32, in->service, strlen(in->service), k1);
	if (!rc)
		rc = hmac_sha256(k1, 32, SIGV4_TERMINATOR, strlen(SIGV4_TERMINATOR), key);
	OPENSSL_cleanse(k1, sizeof(k1));
	OPENSSL_cleanse(k2, sizeof(k2));
	buf_cleanse(&seed);
	return rc;
}

int sigv4_signature(const struct sigv4_input *in, const char *secret_key,
		    const char *string_to_sign, char sig[65])
{
	unsigned char key[32], md[32];
	int rc;

	if (!secret_key || !*secret_key || !string_to_sign || check_scope(in))
		return -EINVAL;
	rc = derive_signing_key(in, secret_key, key);
	if (!rc)
		rc = hmac_sha256(key, sizeof(key), string_to_sign, strlen(string_to_sign), md);
	if (!rc)
		hex_encode(md, sizeof(md), sig);
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(md, sizeof(md));
	return rc;
}

int sigv4_authorization(const struct sigv4_input *in, const char *access_key,
			const char *secret_key, struct buf *out)
{
	struct buf creq, signed_headers, sts;
	char sig[65];
	int rc;

	if (!access_key || !*access_key)
		return -EINVAL;
	buf_init(&creq, SIGV4_SCRATCH_MAX);
	buf_init(&signed_headers, SIGV4_SCRATCH_MAX);
	buf_init(&sts, SIGV4_SCRATCH_MAX);

	rc = sigv4_canonical_request(in, &creq, &signed_headers);
	if (rc)
		goto out;
	rc = sigv4_string_to_sign(in, creq.data, &sts);
	if (rc)
		goto out;
	rc = sigv4_signature(in, secret_key, sts.data, sig);
	if (rc)
		goto out;
	rc = buf_printf(out,
			SIGV4_ALGORITHM " Credential=%s/%.8s/%s/%s/" SIGV4_TERMINATOR
			", SignedHeaders=%s, Signature=%s",
			access_key, in->amz_date, in->region, in->service,
			signed_headers.data ? signed_headers.data : "", sig);
out:
	buf_cleanup(&sts);
	buf_cleanup(&signed_headers);
	/* The canonical request may carry X-Amz-Security-Token; the signature is
	 * a credential for this request until it expires. */
	buf_cleanse(&creq);
	OPENSSL_cleanse(sig, sizeof(sig));
	return rc;
}

int sigv4_presign_params(const struct sigv4_input *in, const char *access_key,
			 const char *session_token, long expires, struct buf *out)
{
	struct hdr_ref *refs = NULL;
	struct buf scratch;
	size_t out_len = out->len;
	int rc;

	rc = check_request(in);
	if (rc)
		return rc;
	if (!access_key || !*access_key || expires < 1 || expires > SIGV4_EXPIRES_MAX)
		return -EINVAL;
	buf_init(&scratch, SIGV4_SCRATCH_MAX);
	rc = sort_headers(in, &refs);
	if (rc)
		goto out;

	rc = buf_printf(&scratch, "%s/%.8s/%s/%s/" SIGV4_TERMINATOR, access_key, in->amz_date,
			in->region, in->service);
	if (!rc)
		rc = buf_puts(out, "X-Amz-Algorithm=" SIGV4_ALGORITHM "&X-Amz-Credential=");
	if (!rc)
		rc = uri_encode(out, scratch.data, scratch.len, 0);
	if (!rc)
		rc = buf_printf(out, "&X-Amz-Date=%s&X-Amz-Expires=%ld", in->amz_date, expires);
	if (!rc && session_token) {
		rc = buf_puts(out, "&X-Amz-Security-Token=");
		if (!rc)
			rc = uri_encode(out, session_token, strlen(session_token), 0);
	}
	buf_reset(&scratch);
	if (!rc)
		rc = append_signed_headers(&scratch, refs, in->nheaders);
	if (!rc)
		rc = buf_puts(out, "&X-Amz-SignedHeaders=");
	if (!rc)
		rc = uri_encode(out, scratch.data ? scratch.data : "", scratch.len, 0);
out:
	if (rc)
		buf_truncate(out, out_len);
	free(refs);
	buf_cleanup(&scratch);
	return rc;
}
