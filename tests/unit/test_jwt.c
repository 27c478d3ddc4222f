/* Unit tests for auth/jwt.c: claims read without verification. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"
#include "harness.h"

/* base64url without padding, for building tokens here. */
static void b64url(const char *in, char *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t n = strlen(in), i, o = 0;
	unsigned long v;

	for (i = 0; i + 2 < n; i += 3) {
		v = ((unsigned long)(unsigned char)in[i] << 16) |
		    ((unsigned long)(unsigned char)in[i + 1] << 8) | (unsigned char)in[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = tab[(v >> 6) & 63];
		out[o++] = tab[v & 63];
	}
	if (n - i == 1) {
		v = (unsigned long)(unsigned char)in[i] << 16;
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
	} else if (n - i == 2) {
		v = ((unsigned long)(unsigned char)in[i] << 16) |
		    ((unsigned long)(unsigned char)in[i + 1] << 8);
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = tab[(v >> 6) & 63];
	}
	out[o] = 0;
}

static char *token(const char *header, const char *payload)
{
	char h[1024], p[2048], *t;

	b64url(header, h);
	b64url(payload, p);
	if (asprintf(&t, "%s.%s.c2lnbmF0dXJl", h, p) < 0)
		return NULL;
	return t;
}

TEST(decode_vectors)
{
	static const struct {
		const char *in;
		const char *out;
	} v[] = {
		{ "", "" }, { "Zg", "f" }, { "Zm8", "fo" }, { "Zm9v", "foo" },
		{ "Zm9vYg==", "foob" }, { "Zm9vYmE", "fooba" }, { "_-8", "\xff\xef" },
		{ "/+8", "\xff\xef" },
	};
	unsigned char out[16];
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		long n = jwt_b64url_decode(v[i].in, strlen(v[i].in), out, sizeof(out));

		CHECK_INT(n, (long)strlen(v[i].out));
		if (n >= 0)
			CHECK(memcmp(out, v[i].out, (size_t)n) == 0);
	}
	CHECK_INT(jwt_b64url_decode("Z", 1, out, sizeof(out)), -EINVAL);
	CHECK_INT(jwt_b64url_decode("Zm9v*", 5, out, sizeof(out)), -EINVAL);
	CHECK_INT(jwt_b64url_decode("Zm9vYmFy", 8, out, 3), -EINVAL);
}

TEST(eks_token_claims)
{
	struct jwt_claims c;
	char why[128];
	char *t = token("{\"alg\":\"RS256\",\"kid\":\"k1\"}",
			"{\"aud\":[\"sts.amazonaws.com\",\"other\"],\"exp\":1796000000,"
			"\"iat\":1795996400,\"nbf\":1795996400,"
			"\"iss\":\"https://oidc.eks.us-east-1.amazonaws.com/id/ABC\","
			"\"sub\":\"system:serviceaccount:demo:reader\","
			"\"kubernetes.io\":{\"namespace\":\"demo\"}}");

	CHECK_INT(jwt_decode_claims(t, strlen(t), &c, why, sizeof(why)), 0);
	CHECK_STR(c.alg, "RS256");
	CHECK_STR(c.kid, "k1");
	CHECK_STR(c.iss, "https://oidc.eks.us-east-1.amazonaws.com/id/ABC");
	CHECK_STR(c.sub, "system:serviceaccount:demo:reader");
	CHECK_INT(c.naud, 2);
	CHECK_STR(c.aud[1], "other");
	CHECK(jwt_has_audience(&c, "sts.amazonaws.com"));
	CHECK(!jwt_has_audience(&c, "sts"));
	CHECK(c.has_exp && c.exp == 1796000000);
	CHECK(c.has_iat && c.iat == 1795996400);
	CHECK(c.has_nbf);
	free(t);
}

TEST(string_audience_and_whitespace)
{
	struct jwt_claims c;
	char why[128], *t, *padded;

	t = token("{\"alg\":\"RS256\"}", "{\"aud\":\"not-sts\",\"sub\":42}");
	CHECK(asprintf(&padded, "  %s\n", t) > 0);
	CHECK_INT(jwt_decode_claims(padded, strlen(padded), &c, why, sizeof(why)), 0);
	CHECK_INT(c.naud, 1);
	CHECK_STR(c.aud[0], "not-sts");
	CHECK(!jwt_has_audience(&c, "sts.amazonaws.com"));
	CHECK_STR(c.sub, ""); /* wrong type: left empty */
	CHECK(!c.has_exp && !c.has_iat);
	free(padded);
	free(t);
}

TEST(malformed)
{
	struct jwt_claims c;
	char why[128], *t;

	CHECK_INT(jwt_decode_claims("", 0, &c, why, sizeof(why)), -EINVAL);
	CHECK_INT(jwt_decode_claims("abc", 3, &c, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "three") != NULL);
	CHECK_INT(jwt_decode_claims("a.b.c.d", 7, &c, why, sizeof(why)), -EINVAL);
	CHECK_INT(jwt_decode_claims("e30.*.c", 7, &c, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "payload") != NULL);
	t = token("{}", "[1,2]");
	CHECK_INT(jwt_decode_claims(t, strlen(t), &c, why, sizeof(why)), -EINVAL);
	free(t);
	t = token("{}", "{\"aud\":\"x\"");
	CHECK_INT(jwt_decode_claims(t, strlen(t), &c, why, sizeof(why)), -EINVAL);
	free(t);
	t = token("not json", "{}");
	CHECK_INT(jwt_decode_claims(t, strlen(t), &c, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "header") != NULL);
	free(t);
}

int main(void)
{
	RUN(decode_vectors);
	RUN(eks_token_claims);
	RUN(string_audience_and_whitespace);
	RUN(malformed);
	return harness_done();
}
