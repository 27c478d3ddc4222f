/*
 * Which credential source the environment asks for, and where STS is.
 *
 * The order follows the AWS SDKs (static keys, then web identity), with one
 * deliberate difference: a source that is configured but incomplete is an
 * error here, never a reason to fall through to another identity. A Pod whose
 * IRSA wiring is broken must not quietly run as some other principal.
 */
#include "auth/creds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

char *creds_sts_endpoint(const char *region, char *why, size_t whylen)
{
	const char *url = env("AWS_ENDPOINT_URL_STS");
	char buf[256];

	if (!url)
		url = env("AWS_ENDPOINT_URL");
	if (url)
		return strdup(url);
	if (!region) {
		snprintf(why, whylen, "no region for the STS endpoint: set AWS_REGION "
			 "(or --region), or AWS_ENDPOINT_URL_STS");
		return NULL;
	}
	snprintf(buf, sizeof(buf), "https://sts.%s.amazonaws.com%s", region,
		 strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
	return strdup(buf);
}

struct creds_provider *creds_provider_from_env(struct http_client *http, const char *region,
					       long duration_seconds, char *why, size_t whylen)
{
	const char *role = env("AWS_ROLE_ARN");
	const char *token_file = env("AWS_WEB_IDENTITY_TOKEN_FILE");
	struct webid_config cfg;
	struct creds_provider *p;
	char *endpoint;

	if (env("AWS_ACCESS_KEY_ID") || env("AWS_SECRET_ACCESS_KEY")) {
		if (!env("AWS_ACCESS_KEY_ID")) {
			snprintf(why, whylen, "AWS_SECRET_ACCESS_KEY is set without "
				 "AWS_ACCESS_KEY_ID: set both, or unset both to use IRSA");
			return NULL;
		}
		p = creds_env_new();
		if (!p)
			snprintf(why, whylen, "out of memory");
		return p;
	}
	if (role || token_file) {
		if (!role || !token_file) {
			snprintf(why, whylen, "%s is set but %s is not: IRSA needs both (check the "
				 "service account's eks.amazonaws.com/role-arn annotation and that "
				 "the Pod uses that service account)",
				 role ? "AWS_ROLE_ARN" : "AWS_WEB_IDENTITY_TOKEN_FILE",
				 role ? "AWS_WEB_IDENTITY_TOKEN_FILE" : "AWS_ROLE_ARN");
			return NULL;
		}
		endpoint = creds_sts_endpoint(region, why, whylen);
		if (!endpoint)
			return NULL;
		memset(&cfg, 0, sizeof(cfg));
		cfg.role_arn = role;
		cfg.token_file = token_file;
		cfg.session_name = env("AWS_ROLE_SESSION_NAME");
		cfg.sts_endpoint = endpoint;
		cfg.duration_seconds = duration_seconds;
		cfg.timeout_ms = 10000;
		cfg.budget_ms = 30000;
		p = creds_webid_new(&cfg, http);
		free(endpoint);
		if (!p)
			snprintf(why, whylen, "out of memory");
		return p;
	}
	snprintf(why, whylen, "no credentials: set AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE "
		 "(IRSA; on EKS annotate the service account with eks.amazonaws.com/role-arn), "
		 "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
	return NULL;
}
