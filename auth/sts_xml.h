/*
 * sts_xml: the AssumeRoleWithWebIdentity response.
 *
 * Parses <AssumeRoleWithWebIdentityResponse> (with or without the STS
 * namespace; radosgw sends none) into struct sts_result. Errors are parsed by
 * xml_parse_error() in http/xml.h. The result holds secrets: release it with
 * sts_result_cleanup(), which wipes them. Thread-safe.
 */
#ifndef IRSAFS_AUTH_STS_XML_H
#define IRSAFS_AUTH_STS_XML_H

#include <stddef.h>
#include <time.h>

struct sts_result {
	char *access_key_id;
	char *secret_access_key;
	char *session_token;
	struct timespec expiration;
	char *assumed_role_arn;		/* AssumedRoleUser/Arn, NULL if absent */
	char *subject;			/* SubjectFromWebIdentityToken, NULL if absent */
	char *audience;			/* NULL if absent */
	char *provider;			/* NULL if absent */
};

/*
 * Returns 0 and fills out (all of AccessKeyId, SecretAccessKey, SessionToken
 * and a parseable Expiration are required; the three credentials are trimmed
 * and must then be printable ASCII without spaces, as they go into headers),
 * or -EPROTO (-ENOMEM when memory runs out) with out zeroed.
 */
int sts_xml_parse_assume_role(const char *body, size_t len, struct sts_result *out);

/* Wipes the secrets and frees every field; out is zeroed. */
void sts_result_cleanup(struct sts_result *r);

#endif
