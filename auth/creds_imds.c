/*
 * The EC2 instance role through IMDSv2. Used only when the user passed
 * --allow-instance-role: on EKS the instance role is the node's, shared by
 * every Pod on it, and a Pod that silently runs as the node is the failure
 * this project exists to prevent.
 *
 * Each fetch gets a session token (PUT /latest/api/token), reads the role
 * name (GET .../iam/security-credentials/) and then its credentials. IMDSv1
 * (no token) is never used.
 */
#include "auth/creds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/creds_i.h"
#include "core/buf.h"
#include "core/strutil.h"
#include "http/http.h"

#define IMDS_DEFAULT "http://169.254.169.254"
#define CREDS_PATH "/latest/meta-data/iam/security-credentials/"

struct imds {
	struct creds_provider base;	/* first: the provider is cast back */
	struct http_client *http;
	char *base_url;
};

const char *creds_imds_endpoint(void)
{
	const char *v = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");

	return v && *v ? v : IMDS_DEFAULT;
}

/* "X-aws-ec2-metadata-token: ..." into *line (wipe and free it). */
static int imds_session(struct http_client *http, const char *base, char **line, char *why,
			size_t whylen)
{
	static const char *const h[] = { "X-aws-ec2-metadata-token-ttl-seconds: 300" };
	struct buf body;
	char *url = NULL;
	int rc, status = 0;

	*line = NULL;
	if (asprintf(&url, "%s/latest/api/token", base) < 0)
		return -ENOMEM;
	buf_init(&body, CREDS_JSON_MAX);
	rc = creds_http_get(http, "PUT", url, h, 1, "IMDSv2 (instance metadata)", &status, &body,
			    why, whylen);
	if (!rc && status != 200) {
		snprintf(why, whylen, "IMDSv2 at %s refused a session token (HTTP %d)", base,
			 status);
		rc = -EACCES;
	}
	if (!rc) {
		str_trim(body.data);
		if (!*body.data || strpbrk(body.data, "\r\n") ||
		    asprintf(line, "X-aws-ec2-metadata-token: %s", body.data) < 0) {
			*line = NULL;
			snprintf(why, whylen, "IMDSv2 at %s sent an unusable session token", base);
			rc = -EPROTO;
		}
	}
	buf_cleanse(&body);
	free(url);
	return rc;
}

static void free_line(char *line)
{
	if (line) {
		OPENSSL_cleanse(line, strlen(line));
		free(line);
	}
}

static int imds_get(struct http_client *http, const char *base, const char *path,
		    const char *session, struct buf *body, char *why, size_t whylen)
{
	const char *h[1] = { session };
	char *url = NULL;
	int rc, status = 0;

	if (asprintf(&url, "%s%s", base, path) < 0)
		return -ENOMEM;
	rc = creds_http_get(http, "GET", url, h, 1, "IMDSv2 (instance metadata)", &status, body,
			    why, whylen);
	if (!rc && status != 200) {
		snprintf(why, whylen, "IMDSv2 at %s answered HTTP %d for %s%s", base, status, path,
			 status == 404 ? " (no instance role attached?)" : "");
		rc = status == 404 ? -ENOENT : -EACCES;
	}
	free(url);
	return rc;
}

static int imds_fetch(struct creds_provider *p, struct creds **out, char *why, size_t whylen)
{
	static const struct creds_json_keys keys = { .token = "Token", .need_expiration = 1 };
	struct imds *m = (struct imds *)p;
	char *session = NULL, *path = NULL, *nl, source[160];
	struct buf body;
	int rc;

	buf_init(&body, CREDS_JSON_MAX);
	rc = imds_session(m->http, m->base_url, &session, why, whylen);
	if (rc)
		goto out;
	rc = imds_get(m->http, m->base_url, CREDS_PATH, session, &body, why, whylen);
	if (rc)
		goto out;
	str_trim(body.data);
	nl = strchr(body.data, '\n');
	if (nl)
		*nl = '\0';
	if (!*body.data || strchr(body.data, '/')) {
		snprintf(why, whylen, "IMDSv2 at %s names no instance role", m->base_url);
		rc = -ENOENT;
		goto out;
	}
	if (asprintf(&path, "%s%s", CREDS_PATH, body.data) < 0) {
		path = NULL;
		rc = -ENOMEM;
		goto out;
	}
	rc = imds_get(m->http, m->base_url, path, session, &body, why, whylen);
	if (rc)
		goto out;
	snprintf(source, sizeof(source), "IMDSv2 at %.100s", m->base_url);
	rc = creds_json_parse(body.data, body.len, &keys, source, out, why, whylen);
out:
	free_line(session);
	free(path);
	buf_cleanse(&body);
	return rc;
}

int creds_imds_region(const char *base, struct http_client *http, char *out, size_t outlen,
		      char *why, size_t whylen)
{
	char *session = NULL;
	struct buf body;
	int rc;

	buf_init(&body, CREDS_JSON_MAX);
	rc = imds_session(http, base, &session, why, whylen);
	if (!rc)
		rc = imds_get(http, base, "/latest/meta-data/placement/region", session, &body, why,
			      whylen);
	if (!rc) {
		str_trim(body.data);
		if (!*body.data || strlen(body.data) >= outlen || strpbrk(body.data, " /\n")) {
			snprintf(why, whylen, "IMDSv2 at %s sent no usable region", base);
			rc = -EPROTO;
		} else {
			snprintf(out, outlen, "%s", body.data);
		}
	}
	free_line(session);
	buf_cleanup(&body);
	return rc;
}

static void imds_destroy(struct creds_provider *p)
{
	struct imds *m = (struct imds *)p;

	free(m->base_url);
	free(m);
}

struct creds_provider *creds_imds_new(const char *base, struct http_client *http)
{
	struct imds *m = calloc(1, sizeof(*m));
	size_t n;

	if (!m)
		return NULL;
	m->base.name = "instance role (IMDSv2)";
	m->base.fetch = imds_fetch;
	m->base.destroy = imds_destroy;
	m->http = http;
	m->base_url = strdup(base);
	if (!m->base_url) {
		free(m);
		return NULL;
	}
	n = strlen(m->base_url);
	while (n && m->base_url[n - 1] == '/')
		m->base_url[--n] = '\0';
	return &m->base;
}
