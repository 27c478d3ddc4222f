/*
 * creds_i: helpers shared by the credential providers (private to auth/).
 *
 * The JSON shape that container agents, IMDS and credential_process all use
 * (AccessKeyId, SecretAccessKey, a token, Expiration), parsed with json-c
 * under a size cap; and an HTTP GET of a small JSON document with transient
 * faults retried. Nothing here formats a secret into `why`.
 */
#ifndef IRSAFS_AUTH_CREDS_I_H
#define IRSAFS_AUTH_CREDS_I_H

#include <stddef.h>

struct creds;
struct http_client;

#define CREDS_JSON_MAX (64 * 1024)

struct creds_json_keys {
	const char *token;		/* "Token" or "SessionToken" */
	int need_version;		/* credential_process: "Version": 1 */
	int need_expiration;		/* refreshable sources must say when */
};

/*
 * Parse json into *out. source names the origin for messages ("the container
 * agent at URL"). 0, or a negative errno with why filled.
 */
int creds_json_parse(const char *json, size_t len, const struct creds_json_keys *keys,
		     const char *source, struct creds **out, char *why, size_t whylen);

/*
 * The shared config and credentials files' grammar (creds_profile.c), for
 * tests/fuzz/fuzz_profile.c: parse text (NUL-terminated, changed in place)
 * as the file path into p, reading the section for name ("profile NAME" or
 * "default" when is_config, else "NAME"); override: a key already in p
 * takes the new value. Returns 1 when the section was there, 0 when not, or
 * a negative errno with why filled (the path and a line number, never a
 * line's text: it may hold a secret key).
 */
struct profile;
struct profile *profile_new(const char *name);
int profile_parse(char *text, const char *path, int is_config, const char *name,
		  struct profile *p, int override, char *why, size_t whylen);
size_t profile_count(const struct profile *p);
/* The i-th setting's key, and its value in *value. */
const char *profile_key_at(const struct profile *p, size_t i, const char **value);

/*
 * GET (or PUT) url with the given header lines, retrying transport errors,
 * throttling and 5xx with jittered backoff. Returns 0 with the status in
 * *status and the body in body (the caller cleanses it), or a negative errno
 * (the table's for what the last attempt met) with why filled when no usable
 * answer came. what names the source for messages.
 */
struct buf;
int creds_http_get(struct http_client *http, const char *method, const char *url,
		   const char *const *headers, size_t nheaders, const char *what, int *status,
		   struct buf *body, char *why, size_t whylen);

#endif
