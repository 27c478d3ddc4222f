/*
 * sigv4: AWS Signature Version 4, pure.
 *
 * Strings in, strings out: no I/O, no clock, no curl. The caller describes the
 * request exactly as it will go on the wire (method, encoded path, query,
 * headers) and gets back the canonical request, the string to sign, the
 * signature and the Authorization header value, each as its own stage so that
 * tests can check them one by one against the AWS suites.
 *
 * S3 rules (set normalize_path = 0): the path is used as given, never
 * normalized and never encoded a second time; x-amz-content-sha256 must be one
 * of the signed headers (the caller adds it); X-Amz-Security-Token is signed
 * like any other header. All functions are thread-safe.
 *
 * Canonical URI: with normalize_path = 0 an existing %XX escape is kept as it
 * stands and any other byte outside A-Z a-z 0-9 - . _ ~ / is encoded once, so
 * a path our S3 layer encoded passes through unchanged. With normalize_path = 1
 * the path loses empty, "." and ".." segments and each segment is encoded
 * (a '%' already in the path is encoded again, as non-S3 services expect).
 * On any error the output buffers are left as they were.
 */
#ifndef IRSAFS_AUTH_SIGV4_H
#define IRSAFS_AUTH_SIGV4_H

#include <stddef.h>

struct buf;

struct sigv4_header {
	const char *name;
	const char *value;
};

struct sigv4_input {
	const char *method;		/* "GET" */
	const char *path;		/* as sent on the wire, already percent-encoded */
	const char *query;		/* as sent, without '?'; NULL or "" for none */
	const struct sigv4_header *headers; /* the headers to sign, any order/case */
	size_t nheaders;
	const char *payload_hash;	/* lower-case hex SHA-256 of the body, or UNSIGNED-PAYLOAD */
	const char *amz_date;		/* "20150830T123600Z" */
	const char *region;		/* "us-east-1" */
	const char *service;		/* "s3", "sts" */
	int normalize_path;		/* 1 for the generic suite, 0 for S3 */
};

/*
 * Stage 1. Appends the canonical request to out and, when signed_headers is
 * not NULL, the ';'-joined list of signed header names to it.
 * Returns 0, or -EINVAL (malformed input) / -EMSGSIZE / -ENOMEM.
 */
int sigv4_canonical_request(const struct sigv4_input *in, struct buf *out,
			    struct buf *signed_headers);

/* Stage 2. Appends the string to sign for this canonical request. */
int sigv4_string_to_sign(const struct sigv4_input *in, const char *canonical_request,
			 struct buf *out);

/* Stage 3. Lower-case hex signature of string_to_sign into sig[65]. */
int sigv4_signature(const struct sigv4_input *in, const char *secret_key,
		    const char *string_to_sign, char sig[65]);

/*
 * All stages: appends the Authorization header value
 * ("AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request,
 *  SignedHeaders=..., Signature=...") to out. The secret never leaves this
 * call except as the signature; intermediate keys are wiped.
 */
int sigv4_authorization(const struct sigv4_input *in, const char *access_key,
			const char *secret_key, struct buf *out);

/*
 * Query-string (presigned URL) signing: appends to out the X-Amz-Algorithm,
 * X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and (when
 * session_token is not NULL) X-Amz-Security-Token parameters, encoded, so the
 * caller can append them to in->query before signing and then add
 * X-Amz-Signature. Used by the vector runner; irsafs itself signs headers.
 * The parameters are joined with '&', with no leading '&'. expires must be
 * 1..604800 (seven days), else -EINVAL.
 */
int sigv4_presign_params(const struct sigv4_input *in, const char *access_key,
			 const char *session_token, long expires, struct buf *out);

#endif
