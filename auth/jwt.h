/*
 * jwt: read the claims of a JSON Web Token without verifying it.
 *
 * `irsafs doctor` shows what the projected service-account token says (iss,
 * sub, aud, exp, iat, nbf) so a person can compare it with the role's trust
 * policy. Nothing here checks a signature: STS does that, and the result is
 * only ever shown, never trusted. The payload is base64url-decoded (padding
 * optional) and parsed with json-c, under a size cap. Pure and thread-safe.
 */
#ifndef IRSAFS_AUTH_JWT_H
#define IRSAFS_AUTH_JWT_H

#include <stddef.h>

#define JWT_MAX_LEN (64 * 1024)
#define JWT_MAX_AUD 8

struct jwt_claims {
	char alg[16];			/* from the header; "" when absent */
	char kid[128];
	char iss[256];
	char sub[256];
	char aud[JWT_MAX_AUD][128];	/* a string "aud" gives one entry */
	size_t naud;
	long long exp, iat, nbf;	/* seconds since the epoch */
	int has_exp, has_iat, has_nbf;
};

/*
 * Decode token[0..len) (surrounding whitespace allowed). Returns 0 with *out
 * filled, or -EINVAL with why saying what is wrong ("not three dot-separated
 * parts", "the payload is not base64url", "the payload is not a JSON
 * object"). Claims of the wrong type are left empty.
 */
int jwt_decode_claims(const char *token, size_t len, struct jwt_claims *out, char *why,
		      size_t whylen);

/* Does the token's aud hold this audience? 0 or 1. */
int jwt_has_audience(const struct jwt_claims *c, const char *aud);

/*
 * base64url (or standard base64) without required padding into out (at most
 * outcap bytes). Returns the decoded length, or -EINVAL.
 */
long jwt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t outcap);

#endif
