#include "auth/jwt.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

static int b64_value(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '-' || ch == '+')
		return 62;
	if (ch == '_' || ch == '/')
		return 63;
	return -1;
}

long jwt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t outcap)
{
	unsigned long acc = 0;
	size_t i, o = 0;
	int bits = 0, v;

	while (len > 0 && in[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		v = b64_value((unsigned char)in[i]);
		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (unsigned long)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == outcap)
				return -EINVAL;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1UL << bits) - 1;
		}
	}
	return (long)o;
}

static void copy_str(struct json_object *obj, const char *name, char *out, size_t outlen)
{
	struct json_object *v;

	if (json_object_object_get_ex(obj, name, &v) && json_object_is_type(v, json_type_string))
		snprintf(out, outlen, "%s", json_object_get_string(v));
}

static int get_time(struct json_object *obj, const char *name, long long *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, name, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return 0;
	*out = json_object_get_int64(v);
	return 1;
}

/* Decode one part into a JSON object; NULL when it is not one. */
static struct json_object *part_json(const char *p, size_t n)
{
	struct json_object *obj;
	unsigned char *raw;
	long got;

	raw = malloc(n + 1);
	if (!raw)
		return NULL;
	got = jwt_b64url_decode(p, n, raw, n);
	if (got < 0) {
		OPENSSL_cleanse(raw, n + 1);
		free(raw);
		return NULL;
	}
	raw[got] = 0;
	obj = memchr(raw, 0, (size_t)got) ? NULL : json_tokener_parse((const char *)raw);
	/* Part of a token: no copy outlives the parse. */
	OPENSSL_cleanse(raw, n + 1);
	free(raw);
	if (obj && !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		obj = NULL;
	}
	return obj;
}

int jwt_decode_claims(const char *token, size_t len, struct jwt_claims *out, char *why,
		      size_t whylen)
{
	struct json_object *head, *body, *aud;
	const char *dot1, *dot2, *end;

	memset(out, 0, sizeof(*out));
	while (len > 0 && isspace((unsigned char)*token)) {
		token++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)token[len - 1]))
		len--;
	if (len == 0 || len > JWT_MAX_LEN) {
		snprintf(why, whylen, len ? "longer than %d bytes" : "empty", JWT_MAX_LEN);
		return -EINVAL;
	}
	end = token + len;
	dot1 = memchr(token, '.', len);
	dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1)) : NULL;
	if (!dot1 || !dot2 || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1))) {
		snprintf(why, whylen, "not a JWT: expected three dot-separated parts");
		return -EINVAL;
	}
	head = part_json(token, (size_t)(dot1 - token));
	if (!head) {
		snprintf(why, whylen, "not a JWT: the header is not base64url-encoded JSON");
		return -EINVAL;
	}
	copy_str(head, "alg", out->alg, sizeof(out->alg));
	copy_str(head, "kid", out->kid, sizeof(out->kid));
	json_object_put(head);
	body = part_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	if (!body) {
		snprintf(why, whylen, "not a JWT: the payload is not base64url-encoded JSON");
		return -EINVAL;
	}
	copy_str(body, "iss", out->iss, sizeof(out->iss));
	copy_str(body, "sub", out->sub, sizeof(out->sub));
	if (json_object_object_get_ex(body, "aud", &aud)) {
		if (json_object_is_type(aud, json_type_string)) {
			snprintf(out->aud[0], sizeof(out->aud[0]), "%s", json_object_get_string(aud));
			out->naud = 1;
		} else if (json_object_is_type(aud, json_type_array)) {
			size_t i, n = json_object_array_length(aud);

			for (i = 0; i < n && out->naud < JWT_MAX_AUD; i++) {
				struct json_object *a = json_object_array_get_idx(aud, i);

				if (!json_object_is_type(a, json_type_string))
					continue;
				snprintf(out->aud[out->naud], sizeof(out->aud[0]), "%s",
					 json_object_get_string(a));
				out->naud++;
			}
		}
	}
	out->has_exp = get_time(body, "exp", &out->exp);
	out->has_iat = get_time(body, "iat", &out->iat);
	out->has_nbf = get_time(body, "nbf", &out->nbf);
	json_object_put(body);
	return 0;
}

int jwt_has_audience(const struct jwt_claims *c, const char *aud)
{
	size_t i;

	for (i = 0; i < c->naud; i++)
		if (!strcmp(c->aud[i], aud))
			return 1;
	return 0;
}
