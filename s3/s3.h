/*
 * s3: the S3 implementation of the store interface.
 *
 * Builds each request (path-style or virtual-hosted addressing, the query in
 * canonical order), signs it with SigV4 using a reference to the current
 * credentials, runs it through http/, and retries what can heal (transport
 * errors, throttling, 5xx) with jittered backoff inside a per-operation
 * budget and a retry token bucket that all operations share. Denials are
 * logged once per (principal, action, resource).
 * Thread-safe: every operation may run concurrently.
 */
#ifndef IRSAFS_S3_S3_H
#define IRSAFS_S3_S3_H

#include "s3/store.h"

struct creds_cache;
struct http_client;

struct s3_config {
	const char *bucket;
	const char *endpoint;		/* "https://host[:port]"; NULL: AWS for region */
	const char *region;
	int path_style;			/* 1 path-style, 0 virtual-hosted */
	int page_size;			/* ListObjectsV2 max-keys (1..1000) */
	int max_attempts;		/* per operation */
	long budget_ms;			/* per operation, attempts and sleeps */
	long request_timeout_ms;	/* one request */
	long retry_tokens;		/* shared retry budget (0: RETRY_BUCKET_CAPACITY) */
	unsigned long long *requests;	/* if set: +1 (atomic) per request sent */
};

/*
 * The store keeps pointers to http and creds (not owned). Returns NULL with
 * why filled when the endpoint cannot be used.
 */
struct store *s3_store_new(const struct s3_config *cfg, struct http_client *http,
			   struct creds_cache *creds, char *why, size_t whylen);

/* The endpoint URL actually used (for logs and xattrs). */
const char *s3_store_endpoint(const struct store *s);

#endif
