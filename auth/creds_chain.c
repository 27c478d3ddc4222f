/*
 * Which credential source the environment asks for, and where STS is.
 *
 * The order: static keys, web identity (IRSA), container credentials (EKS
 * Pod Identity, ECS), the shared profile files, and the instance role only
 * when the user allowed it. Two deliberate differences from the AWS SDKs:
 *  - a source that is configured but incomplete or broken is an error here,
 *    never a reason to fall through to another identity: a Pod whose IRSA
 *    wiring is broken must not quietly run as some other principal;
 *  - the instance role (IMDS) is never used unless asked for, because on EKS
 *    it is the node's role, which the workload was never meant to have.
 */
#include "auth/creds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static int env_true(const char *name)
{
	const char *v = env(name);

	return v && (!strcasecmp(v, "true") || !strcmp(v, "1"));
}

char *creds_sts_endpoint(const char *region, char *why, size_t whylen)
{
	const char *url = env("AWS_ENDPOINT_URL_STS");
	const char *mode = env("AWS_STS_REGIONAL_ENDPOINTS");
	int fips = env_true("AWS_USE_FIPS_ENDPOINT");
	int cn;
	char buf[256];

	if (!url)
		url = env("AWS_ENDPOINT_URL");
	if (url) {
		if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
			snprintf(why, whylen, "the STS endpoint '%.200s' must start with http:// "
				 "or https:// (AWS_ENDPOINT_URL_STS or AWS_ENDPOINT_URL)", url);
			return NULL;
		}
		return strdup(url);
	}
	if (mode && strcasecmp(mode, "legacy") && strcasecmp(mode, "regional")) {
		snprintf(why, whylen, "AWS_STS_REGIONAL_ENDPOINTS is '%.40s': expected "
			 "'regional' or 'legacy'", mode);
		return NULL;
	}
	if (mode && !strcasecmp(mode, "legacy") && !fips &&
	    (!region || (strncmp(region, "cn-", 3) && strncmp(region, "us-gov-", 7))))
		return strdup("https://sts.amazonaws.com");
	if (!region) {
		snprintf(why, whylen, "no region for the STS endpoint: set AWS_REGION "
			 "(or --region), or AWS_ENDPOINT_URL_STS");
		return NULL;
	}
	cn = strncmp(region, "cn-", 3) == 0;
	snprintf(buf, sizeof(buf), "https://sts%s.%s.amazonaws.com%s", fips ? "-fips" : "",
		 region, cn ? ".cn" : "");
	return strdup(buf);
}

static struct creds_provider *from_webid_env(struct http_client *http,
					     const struct creds_chain_config *cfg, char *why,
					     size_t whylen)
{
	const char *role = env("AWS_ROLE_ARN");
	const char *token_file = env("AWS_WEB_IDENTITY_TOKEN_FILE");
	struct webid_config wc;
	struct creds_provider *p;
	char *endpoint;

	if (!role || !token_file) {
		snprintf(why, whylen, "%s is set but %s is not: IRSA needs both (check the "
			 "service account's eks.amazonaws.com/role-arn annotation and that "
			 "the Pod uses that service account)",
			 role ? "AWS_ROLE_ARN" : "AWS_WEB_IDENTITY_TOKEN_FILE",
			 role ? "AWS_WEB_IDENTITY_TOKEN_FILE" : "AWS_ROLE_ARN");
		return NULL;
	}
	endpoint = creds_sts_endpoint(cfg->region, why, whylen);
	if (!endpoint)
		return NULL;
	memset(&wc, 0, sizeof(wc));
	wc.role_arn = role;
	wc.token_file = token_file;
	wc.session_name = env("AWS_ROLE_SESSION_NAME");
	wc.sts_endpoint = endpoint;
	wc.duration_seconds = cfg->duration_seconds;
	wc.timeout_ms = 10000;
	wc.budget_ms = 30000;
	p = creds_webid_new(&wc, http);
	free(endpoint);
	if (!p)
		snprintf(why, whylen, "out of memory");
	return p;
}

static struct creds_provider *from_container_env(struct http_client *http, char *why,
						 size_t whylen)
{
	struct creds_provider *p;
	char *url;

	url = creds_container_url(env("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
				  env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"), why, whylen);
	if (!url)
		return NULL;
	p = creds_container_new(url, env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
				env("AWS_CONTAINER_AUTHORIZATION_TOKEN"), http);
	free(url);
	if (!p)
		snprintf(why, whylen, "out of memory");
	return p;
}

/* 1: the profile source applies (p or why set); 0: no profile configured. */
static int from_profile(struct http_client *http, const struct creds_chain_config *cfg,
			struct creds_provider **p, char *why, size_t whylen)
{
	const char *name = env("AWS_PROFILE");
	struct profile *prof = NULL;
	int rc;

	*p = NULL;
	rc = profile_load(name, &prof, why, whylen);
	if (rc == -ENOENT) {
		if (!name)
			return 0;
		snprintf(why, whylen, "AWS_PROFILE is '%.100s' but no such profile is in the "
			 "shared config or credentials file (AWS_CONFIG_FILE, "
			 "AWS_SHARED_CREDENTIALS_FILE)", name);
		return 1;
	}
	if (rc)
		return 1;
	/* A default profile that only sets a region is not a credential source. */
	if (!name && !profile_get(prof, "aws_access_key_id") &&
	    !profile_get(prof, "aws_secret_access_key") && !profile_get(prof, "role_arn") &&
	    !profile_get(prof, "web_identity_token_file") &&
	    !profile_get(prof, "credential_process") && !profile_get(prof, "source_profile") &&
	    !profile_get(prof, "credential_source")) {
		profile_free(prof);
		return 0;
	}
	*p = creds_profile_provider(prof, http, cfg->region, cfg->duration_seconds, why, whylen);
	profile_free(prof);
	return 1;
}

struct creds_provider *creds_provider_from_env(struct http_client *http,
					       const struct creds_chain_config *cfg, char *why,
					       size_t whylen)
{
	struct creds_provider *p;

	if (env("AWS_ACCESS_KEY_ID") || env("AWS_SECRET_ACCESS_KEY")) {
		if (!env("AWS_ACCESS_KEY_ID") || !env("AWS_SECRET_ACCESS_KEY")) {
			snprintf(why, whylen, "%s is set without %s: set both, or unset both to "
				 "use another source",
				 env("AWS_ACCESS_KEY_ID") ? "AWS_ACCESS_KEY_ID"
							  : "AWS_SECRET_ACCESS_KEY",
				 env("AWS_ACCESS_KEY_ID") ? "AWS_SECRET_ACCESS_KEY"
							  : "AWS_ACCESS_KEY_ID");
			return NULL;
		}
		p = creds_env_new();
		if (!p)
			snprintf(why, whylen, "out of memory");
		return p;
	}
	if (env("AWS_ROLE_ARN") || env("AWS_WEB_IDENTITY_TOKEN_FILE"))
		return from_webid_env(http, cfg, why, whylen);
	if (env("AWS_CONTAINER_CREDENTIALS_FULL_URI") ||
	    env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"))
		return from_container_env(http, why, whylen);
	if (from_profile(http, cfg, &p, why, whylen))
		return p;
	if (cfg->allow_instance_role) {
		p = creds_imds_new(creds_imds_endpoint(), http);
		if (!p)
			snprintf(why, whylen, "out of memory");
		return p;
	}
	snprintf(why, whylen, "no credentials: set AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE "
		 "(IRSA; on EKS annotate the service account with eks.amazonaws.com/role-arn), "
		 "or AWS_CONTAINER_CREDENTIALS_FULL_URI (EKS Pod Identity), or AWS_PROFILE, "
		 "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; the instance role is not "
		 "used unless --allow-instance-role is given");
	return NULL;
}
