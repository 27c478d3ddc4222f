/*
 * creds: credentials, the providers that make them, and the refreshing cache.
 *
 * struct creds is immutable and reference-counted: a signer takes a reference
 * (creds_cache_acquire), signs, and releases it; a refresh builds a new struct
 * and swaps the cache's pointer under its lock, so readers never see a half-
 * written key and never wait for a refresh while their credentials are still
 * valid. The last release wipes the secrets with OPENSSL_cleanse. There is no
 * function that formats a struct creds: secrets cannot reach a log by accident.
 *
 * A provider is one source (environment keys, web identity, ...). Its fetch
 * either returns fresh credentials or fails with a one-line explanation meant
 * for a person ("why"), which never contains a secret. The chain is decided
 * once at startup by creds_provider_from_env(): a source that is configured
 * but broken is an error, never a reason to try the next source.
 */
#ifndef IRSAFS_AUTH_CREDS_H
#define IRSAFS_AUTH_CREDS_H

#include <stddef.h>
#include <time.h>

struct http_client;

struct creds {
	int refs;			/* atomic */
	char *access_key_id;
	char *secret_access_key;
	char *session_token;		/* NULL when none */
	time_t expiration;		/* 0: never expires */
	char *principal_arn;		/* NULL when the source does not say */
};

/* Copies every string. Returns NULL on ENOMEM. One reference. */
struct creds *creds_new(const char *access_key_id, const char *secret_access_key,
			const char *session_token, time_t expiration, const char *principal_arn);
struct creds *creds_ref(struct creds *c);
void creds_release(struct creds *c);

#define CREDS_WHY_LEN 512

struct creds_provider;

typedef int (*creds_fetch_fn)(struct creds_provider *p, struct creds **out, char *why,
			      size_t whylen);
typedef void (*creds_destroy_fn)(struct creds_provider *p);

struct creds_provider {
	const char *name;		/* "environment", "web identity" */
	creds_fetch_fn fetch;		/* 0 or negative errno with why filled */
	creds_destroy_fn destroy;
};

/* Static keys from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN. */
struct creds_provider *creds_env_new(void);

struct webid_config {
	const char *role_arn;
	const char *token_file;
	const char *session_name;	/* NULL: generated */
	const char *sts_endpoint;	/* full URL, e.g. https://sts.us-east-1.amazonaws.com */
	long duration_seconds;		/* 0: let STS choose */
	long timeout_ms;		/* one STS call */
	long budget_ms;			/* all attempts of one fetch */
};

/* IRSA: AssumeRoleWithWebIdentity with the token file read afresh each call. */
struct creds_provider *creds_webid_new(const struct webid_config *cfg, struct http_client *http);

/*
 * Pick the provider the environment asks for. region may be NULL. On error
 * returns NULL with why filled (e.g. AWS_ROLE_ARN set without
 * AWS_WEB_IDENTITY_TOKEN_FILE); never falls back to another identity.
 */
struct creds_provider *creds_provider_from_env(struct http_client *http, const char *region,
					       long duration_seconds, char *why, size_t whylen);

/* The STS endpoint the environment selects, malloc'd; NULL with why set. */
char *creds_sts_endpoint(const char *region, char *why, size_t whylen);

/*
 * The refreshing cache. Refreshes ahead of expiry by min(5 minutes, a quarter
 * of the credentials' lifetime); one refresh in flight at a time; while it
 * runs, callers keep the old credentials if they are still valid and wait for
 * the refresh only if they are not. Thread-safe.
 */
struct creds_cache;

/* Takes ownership of the provider. */
struct creds_cache *creds_cache_new(struct creds_provider *p);
void creds_cache_free(struct creds_cache *c);

/*
 * A reference to valid credentials in *out (release it), or -EKEYEXPIRED with
 * why filled when none can be had.
 */
int creds_cache_acquire(struct creds_cache *c, struct creds **out, char *why, size_t whylen);

/* Drop the current credentials so the next acquire fetches anew. */
void creds_cache_invalidate(struct creds_cache *c, const struct creds *seen);

/* The provider's name ("web identity"). */
const char *creds_cache_source(const struct creds_cache *c);

#endif
