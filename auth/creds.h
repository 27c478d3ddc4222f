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

#include "core/err.h"

struct http_client;
struct log_fields;

struct creds {
	int refs;			/* atomic */
	char *access_key_id;
	char *secret_access_key;
	char *session_token;		/* NULL when none */
	time_t expiration;		/* 0: never expires */
	time_t obtained;		/* when creds_new made it (local clock) */
	char *principal_arn;		/* NULL when the source does not say */
};

/* Copies every string. Returns NULL on ENOMEM. One reference. */
struct creds *creds_new(const char *access_key_id, const char *secret_access_key,
			const char *session_token, time_t expiration, const char *principal_arn);
struct creds *creds_ref(struct creds *c);
void creds_release(struct creds *c);

/*
 * Are these credentials close enough to expiry (the last minute, or the last
 * quarter of a shorter lifetime) that a plain 403 probably means "expired"?
 * radosgw says AccessDenied, not ExpiredToken. now: creds_cache_now().
 */
int creds_near_expiry(const struct creds *c, time_t now);

#define CREDS_WHY_LEN 512

struct creds_provider;

typedef int (*creds_fetch_fn)(struct creds_provider *p, struct creds **out, char *why,
			      size_t whylen);
typedef void (*creds_destroy_fn)(struct creds_provider *p);

struct creds_provider {
	const char *name;		/* "environment", "web identity" */
	creds_fetch_fn fetch;		/* 0 or negative errno with why filled */
	creds_destroy_fn destroy;
	/*
	 * For the fields of the log lines about a failed fetch (log_op): the
	 * request it makes ("STS"; NULL for a source that asks no server) and
	 * the last failed fetch's answer (status, code, request ids, latency;
	 * redacted like why). Written by fetch, read after it returned: the
	 * cache runs one fetch at a time.
	 */
	const char *op;
	struct s3_error failure;
};

/* Static keys from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN. */
struct creds_provider *creds_env_new(void);

/* Always hands out cr (a reference is taken). name must be a string literal. */
struct creds_provider *creds_static_new(struct creds *cr, const char *name);

struct webid_config {
	const char *role_arn;
	const char *token_file;
	const char *token_setting;	/* what named token_file, for messages; NULL:
					   "AWS_WEB_IDENTITY_TOKEN_FILE" */
	const char *session_name;	/* NULL: generated */
	const char *sts_endpoint;	/* full URL, e.g. https://sts.us-east-1.amazonaws.com */
	long duration_seconds;		/* 0: let STS choose */
	long timeout_ms;		/* one STS call */
	long budget_ms;			/* all attempts of one fetch */
};

/* IRSA: AssumeRoleWithWebIdentity with the token file read afresh each call. */
struct creds_provider *creds_webid_new(const struct webid_config *cfg, struct http_client *http);

/*
 * Container credentials (EKS Pod Identity, ECS). url is the full URL (already
 * checked by creds_container_url); the Authorization header comes from
 * token_file (read afresh on every fetch) or else token (either may be NULL).
 */
struct creds_provider *creds_container_new(const char *url, const char *token_file,
					   const char *token, struct http_client *http);

/*
 * The URL the container variables ask for: AWS_CONTAINER_CREDENTIALS_FULL_URI,
 * else http://169.254.170.2 + AWS_CONTAINER_CREDENTIALS_RELATIVE_URI. Plain
 * HTTP is allowed only to loopback and the agents' link-local addresses
 * (169.254.170.2, 169.254.170.23, fd00:ec2::23). Returns a malloc'd URL, or
 * NULL with why filled. full and relative come from the environment.
 */
char *creds_container_url(const char *full, const char *relative, char *why, size_t whylen);

/*
 * Shared config and credentials files (AWS_CONFIG_FILE, default
 * ~/.aws/config; AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials).
 * A profile is a set of key = value settings; the credentials file wins over
 * the config file for the same key.
 */
struct profile;

/*
 * Load profile name (NULL: AWS_PROFILE, else "default"). Returns 0 with *out
 * set, -ENOENT when no file has that profile (*out NULL), or another negative
 * errno with why filled (unreadable or malformed file).
 */
int profile_load(const char *name, struct profile **out, char *why, size_t whylen);
/* A setting's value, or NULL. Keys are compared without case. */
const char *profile_get(const struct profile *p, const char *key);
const char *profile_name(const struct profile *p);
/* Wipes every value (they may be secret keys) and frees. */
void profile_free(struct profile *p);

/* credential_process: run command (through /bin/sh -c) and parse its JSON. */
struct creds_provider *creds_process_new(const char *command, const char *profile_name);

/*
 * Parse credential_process output (Version 1 JSON). Returns 0 with *out set,
 * else a negative errno with why filled (never quoting a secret).
 */
int creds_process_parse(const char *json, size_t len, struct creds **out, char *why,
			size_t whylen);

/*
 * The provider a profile asks for: static keys, role_arn +
 * web_identity_token_file, or credential_process. NULL with why filled when
 * the profile has none of them or an incomplete one.
 */
struct creds_provider *creds_profile_provider(const struct profile *p, struct http_client *http,
					      const char *region, long duration_seconds,
					      char *why, size_t whylen);

/*
 * The EC2 instance role through IMDSv2 (PUT a session token, then GET the
 * role name and its credentials). base is AWS_EC2_METADATA_SERVICE_ENDPOINT
 * or http://169.254.169.254.
 */
struct creds_provider *creds_imds_new(const char *base, struct http_client *http);

/* The instance's region from IMDSv2 into out; 0 or negative errno with why. */
int creds_imds_region(const char *base, struct http_client *http, char *out, size_t outlen,
		      char *why, size_t whylen);

/* AWS_EC2_METADATA_SERVICE_ENDPOINT or the default; never NULL. */
const char *creds_imds_endpoint(void);

struct creds_chain_config {
	const char *region;		/* NULL when unknown */
	long duration_seconds;		/* --credential-duration, 0: STS default */
	int allow_instance_role;	/* IMDS may be used as the last source */
};

/*
 * Pick the provider the environment asks for, in this order: static keys,
 * web identity (IRSA), container credentials (Pod Identity, ECS), the shared
 * profile files, and the instance role only when cfg->allow_instance_role.
 * On error returns NULL with why filled (e.g. AWS_ROLE_ARN set without
 * AWS_WEB_IDENTITY_TOKEN_FILE); a source that is configured but broken is an
 * error, never a reason to try the next one.
 */
struct creds_provider *creds_provider_from_env(struct http_client *http,
					       const struct creds_chain_config *cfg, char *why,
					       size_t whylen);

/*
 * The STS endpoint: AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, the global
 * endpoint when AWS_STS_REGIONAL_ENDPOINTS=legacy, else the regional one
 * (FIPS with AWS_USE_FIPS_ENDPOINT=true, .amazonaws.com.cn for cn- regions).
 * malloc'd; NULL with why set.
 */
char *creds_sts_endpoint(const char *region, char *why, size_t whylen);

/* The region from the shared profile (AWS_PROFILE or default), or NULL. malloc'd. */
char *creds_profile_region(void);

/*
 * The refreshing cache. Refreshes ahead of expiry by min(5 minutes, a quarter
 * of the credentials' lifetime); one refresh in flight at a time, however
 * many threads need one. While credentials are still valid, a due refresh
 * runs in a background thread (once creds_cache_background() allowed it)
 * and callers keep using the old ones; a caller waits only when there are no
 * valid credentials, and never past its operation's deadline. A failed
 * refresh is retried with jittered, growing delays; while there are no valid
 * credentials and the last attempt failed moments ago, callers fail at once
 * with -EKEYEXPIRED instead of queueing on STS. Credentials that arrive
 * already expired count as a failed refresh. Thread-safe.
 */
struct creds_cache;

/* Takes ownership of the provider. */
struct creds_cache *creds_cache_new(struct creds_provider *p);
/* Waits for a background refresh in flight, then frees. */
void creds_cache_free(struct creds_cache *c);

/*
 * Allow background refreshes from now on. Call it after the process has
 * forked into the background (threads do not survive fork); until then a due
 * refresh runs in the caller.
 */
void creds_cache_background(struct creds_cache *c);

/*
 * A reference to valid credentials in *out (release it), or -EKEYEXPIRED with
 * why filled when none can be had. Waits for a refresh for as long as it
 * takes: for startup, not for file operations.
 */
int creds_cache_acquire(struct creds_cache *c, struct creds **out, char *why, size_t whylen);

/*
 * The same, for an operation with a budget: a wait for a refresh ends at
 * deadline_ms (clock_mono_ms()'s clock; 0: none) with -EKEYEXPIRED, so that
 * waiting for credentials counts inside the operation's budget. (Before
 * creds_cache_background, a refresh runs in the caller and is bounded only by
 * the provider's own budget.)
 */
int creds_cache_acquire_until(struct creds_cache *c, long long deadline_ms, struct creds **out,
			      char *why, size_t whylen);

/*
 * The server rejected seen as expired or revoked (ExpiredToken, InvalidToken,
 * or a 403 near expiry): stop handing it out, so the next acquire refreshes
 * (once, whichever thread asks) or waits for the refresh in flight. reason
 * names the answer for the log (no secret). Returns 1 when the caller should
 * try again with fresh credentials, 0 when not: seen replaced rejected
 * credentials a moment ago and no server has accepted it since, so the
 * rejection is counted as a failed refresh, with its backoff, and file
 * operations fail with EKEYEXPIRED meanwhile.
 */
int creds_cache_invalidate(struct creds_cache *c, const struct creds *seen, const char *reason);

/*
 * A server answered a request signed with seen without rejecting the
 * credentials: they work. Cheap (one atomic load) unless seen is on
 * probation after a rejection.
 */
void creds_cache_accepted(struct creds_cache *c, const struct creds *seen);

/* The provider's name ("web identity"). */
const char *creds_cache_source(const struct creds_cache *c);

/*
 * Clock correction: seconds to add to the local clock to get the servers'
 * time (set when a server reports skew). creds_cache_now() is the corrected
 * time used for signing and for expiry decisions. Thread-safe.
 */
void creds_cache_set_clock_offset(struct creds_cache *c, long seconds);
long creds_cache_clock_offset(const struct creds_cache *c);
time_t creds_cache_now(const struct creds_cache *c);

/*
 * The fields of a log line about the last failed fetch (op "STS", status,
 * code, errno, request ids, latency; only the op when the source asks no
 * server). The strings point into the cache: use them before the next
 * refresh can run (at startup, or with no background refresh).
 */
void creds_cache_failure_fields(const struct creds_cache *c, struct log_fields *f);

/*
 * What the server said to the last failed fetch, in the words the doctor's
 * hints need (the STS codes stay in auth/): the role's trust policy refused
 * (AccessDenied), the token was rejected (InvalidIdentityToken), or STS
 * could not fetch the issuer's keys (IDPCommunicationError). Same rules as
 * creds_cache_failure_fields for when it may be read.
 */
enum creds_refusal {
	CREDS_REFUSAL_NONE,
	CREDS_REFUSAL_DENIED,
	CREDS_REFUSAL_BAD_TOKEN,
	CREDS_REFUSAL_IDP,
};
enum creds_refusal creds_cache_refusal(const struct creds_cache *c);

/* How many times the provider was asked for credentials (for logs and tests). */
unsigned long creds_cache_fetches(const struct creds_cache *c);

#endif
