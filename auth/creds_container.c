/*
 * Container credentials: EKS Pod Identity and ECS.
 *
 * The agent serves the credentials JSON at a URL named by the environment.
 * Every fetch re-reads AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (the Pod
 * Identity token is a projected, rotated file) and sends it as the
 * Authorization header. Plain HTTP would send that token and receive secret
 * keys in the clear, so it is allowed only to loopback and to the agents'
 * link-local addresses; anything else must be HTTPS. The agent does not say
 * which role it serves, so the principal is "unknown" unless the JSON carries
 * a RoleArn (ECS does).
 *
 * The token file is read without ever blocking and must be a regular file
 * (core/strutil.h); the agent's words that reach an error are redacted of
 * the token (core/redact.h).
 */
#include "auth/creds.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "auth/creds_i.h"
#include "core/buf.h"
#include "core/redact.h"
#include "core/strutil.h"
#include "http/http.h"

#define TOKEN_MAX (16 * 1024)
#define ECS_HOST "http://169.254.170.2"

struct container {
	struct creds_provider base;	/* first: the provider is cast back */
	struct http_client *http;
	char *url;
	char *token_file;		/* NULL: use token */
	char *token;			/* NULL: no Authorization header */
};

/* Is host (as written in the URL, IPv6 in brackets) one plain HTTP may use? */
static int host_allows_http(const char *host, size_t n)
{
	static const char *const agents[] = { "169.254.170.2", "169.254.170.23", "[fd00:ec2::23]",
					      "[::1]", "localhost" };
	struct in_addr a4;
	char h[64];
	size_t i;

	if (n == 0 || n >= sizeof(h))
		return 0;
	memcpy(h, host, n);
	h[n] = '\0';
	for (i = 0; i < sizeof(agents) / sizeof(agents[0]); i++)
		if (!strcasecmp(h, agents[i]))
			return 1;
	if (!strcmp(h, "[fd00:ec2:0:0:0:0:0:23]") || !strcmp(h, "[0:0:0:0:0:0:0:1]"))
		return 1;
	/* 127.0.0.0/8, written as a dotted quad (inet_pton takes no other form). */
	if (inet_pton(AF_INET, h, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127)
		return 1;
	return 0;
}

char *creds_container_url(const char *full, const char *relative, char *why, size_t whylen)
{
	const char *p, *host, *end;
	char *url = NULL;

	if (!full) {
		if (!relative || relative[0] != '/') {
			snprintf(why, whylen, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must be a path "
				 "starting with '/'");
			return NULL;
		}
		if (asprintf(&url, "%s%s", ECS_HOST, relative) < 0) {
			snprintf(why, whylen, "out of memory");
			return NULL;
		}
		return url;
	}
	if (!strncasecmp(full, "https://", 8)) {
		p = full + 8;
	} else if (!strncasecmp(full, "http://", 7)) {
		p = full + 7;
	} else {
		snprintf(why, whylen, "AWS_CONTAINER_CREDENTIALS_FULL_URI '%.200s' must start with "
			 "http:// or https://", full);
		return NULL;
	}
	host = p;
	if (*host == '[') {
		end = strchr(host, ']');
		end = end ? end + 1 : host + strlen(host);
	} else {
		end = host + strcspn(host, ":/?#");
	}
	if (end == host || memchr(host, '@', strcspn(host, "/?#"))) {
		snprintf(why, whylen, "AWS_CONTAINER_CREDENTIALS_FULL_URI '%.200s' has no usable "
			 "host", full);
		return NULL;
	}
	if (p == full + 7 && !host_allows_http(host, (size_t)(end - host))) {
		snprintf(why, whylen, "AWS_CONTAINER_CREDENTIALS_FULL_URI '%.200s' uses plain HTTP "
			 "to %.*s: the credentials and the authorization token would cross the "
			 "network in the clear; plain HTTP is allowed only to loopback, "
			 "169.254.170.2, 169.254.170.23 and fd00:ec2::23, use https:// otherwise",
			 full, (int)(end - host), host);
		return NULL;
	}
	url = strdup(full);
	if (!url)
		snprintf(why, whylen, "out of memory");
	return url;
}

/* The Authorization header line, malloc'd (wipe it), or NULL with rc set. */
static char *auth_header(const struct container *c, int *rc, char *why, size_t whylen)
{
	char *token = NULL, *line = NULL;
	size_t len = 0;

	*rc = 0;
	if (c->token_file) {
		*rc = file_read_small(c->token_file, TOKEN_MAX, &token, &len);
		if (*rc) {
			snprintf(why, whylen, "cannot read the container authorization token file "
				 "%s (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE): %s; "
				 "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE must name the token "
				 "itself, a regular file of at most %d KiB (on EKS the "
				 "eks-pod-identity-token volume)", c->token_file,
				 file_read_strerror(*rc), TOKEN_MAX / 1024);
			return NULL;
		}
		str_trim(token);
	} else if (c->token) {
		token = strdup(c->token);
		if (!token) {
			*rc = -ENOMEM;
			snprintf(why, whylen, "out of memory");
			return NULL;
		}
		len = strlen(token);
	} else {
		return NULL;
	}
	if (!*token || strpbrk(token, "\r\n")) {
		snprintf(why, whylen, "the container authorization token%s%s is %s",
			 c->token_file ? " in " : " (AWS_CONTAINER_AUTHORIZATION_TOKEN)",
			 c->token_file ? c->token_file : "",
			 *token ? "not one line" : "empty");
		*rc = -EINVAL;
	} else if (asprintf(&line, "Authorization: %s", token) < 0) {
		line = NULL;
		*rc = -ENOMEM;
		snprintf(why, whylen, "out of memory");
	}
	OPENSSL_cleanse(token, len);
	free(token);
	return line;
}

static int container_fetch(struct creds_provider *p, struct creds **out, char *why,
			   size_t whylen)
{
	static const struct creds_json_keys keys = { .token = "Token", .need_expiration = 0 };
	struct container *c = (struct container *)p;
	const char *headers[2] = { "Accept: application/json", NULL };
	char source[300];
	struct buf body;
	char *authz;
	int rc, status = 0;

	authz = auth_header(c, &rc, why, whylen);
	if (rc)
		return rc;
	headers[1] = authz;
	buf_init(&body, CREDS_JSON_MAX);
	snprintf(source, sizeof(source), "the container credentials endpoint %.200s", c->url);
	rc = creds_http_get(c->http, "GET", c->url, headers, authz ? 2 : 1, source, &status,
			    &body, why, whylen);
	if (rc)
		goto out;
	if (status != 200) {
		snprintf(why, whylen, "%s answered HTTP %d%s", source, status,
			 status == 401 || status == 403
				 ? ": it refused the authorization token (check "
				   "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE and the Pod Identity "
				   "association for this service account)"
				 : "");
		rc = status == 401 || status == 403 ? -EACCES : -EPROTO;
		goto out;
	}
	rc = creds_json_parse(body.data, body.len, &keys, source, out, why, whylen);
out:
	if (authz) {
		/* why may quote the agent (its Code): never let it quote the token. */
		const char *token = authz + strlen("Authorization: ");

		if (rc)
			redact_text(why, whylen, &token, 1);
		OPENSSL_cleanse(authz, strlen(authz));
		free(authz);
	}
	buf_cleanse(&body);
	return rc;
}

static void container_destroy(struct creds_provider *p)
{
	struct container *c = (struct container *)p;

	free(c->url);
	free(c->token_file);
	if (c->token) {
		OPENSSL_cleanse(c->token, strlen(c->token));
		free(c->token);
	}
	free(c);
}

struct creds_provider *creds_container_new(const char *url, const char *token_file,
					   const char *token, struct http_client *http)
{
	struct container *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->base.name = "container credentials";
	c->base.fetch = container_fetch;
	c->base.destroy = container_destroy;
	c->http = http;
	c->url = strdup(url);
	c->token_file = token_file ? strdup(token_file) : NULL;
	c->token = !token_file && token ? strdup(token) : NULL;
	if (!c->url || (token_file && !c->token_file) || (!token_file && token && !c->token)) {
		container_destroy(&c->base);
		return NULL;
	}
	return &c->base;
}
