/*
 * The shared config and credentials files, and the providers a profile names.
 *
 * The files are INI-like: `[default]`, `[profile NAME]` (config) or `[NAME]`
 * (credentials) sections of `key = value` lines; `#` and `;` start comments;
 * indented lines continue a nested setting (such as `s3 =`) and are skipped.
 * There is no INI library among irsafs's dependencies and the grammar is a
 * handful of line rules, so it is read here line by line under a size cap.
 * Values may be secret keys: a struct profile wipes them when freed.
 */
#include "auth/creds.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth/creds_i.h"
#include "core/strutil.h"

#define PROFILE_FILE_MAX (1024 * 1024)
#define PROFILE_KEYS_MAX 256

struct profile_kv {
	char *key;
	char *value;
};

struct profile {
	char *name;
	size_t n;
	struct profile_kv kv[PROFILE_KEYS_MAX];
};

const char *profile_name(const struct profile *p)
{
	return p->name;
}

const char *profile_get(const struct profile *p, const char *key)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (!strcasecmp(p->kv[i].key, key))
			return p->kv[i].value;
	return NULL;
}

void profile_free(struct profile *p)
{
	size_t i;

	if (!p)
		return;
	for (i = 0; i < p->n; i++) {
		free(p->kv[i].key);
		OPENSSL_cleanse(p->kv[i].value, strlen(p->kv[i].value));
		free(p->kv[i].value);
	}
	free(p->name);
	free(p);
}

/* Set key (replacing an earlier value when override). 0 or -ENOMEM/-E2BIG. */
static int profile_set(struct profile *p, const char *key, const char *value, int override)
{
	size_t i;
	char *v;

	for (i = 0; i < p->n; i++) {
		if (strcasecmp(p->kv[i].key, key))
			continue;
		if (!override)
			return 0;
		v = strdup(value);
		if (!v)
			return -ENOMEM;
		OPENSSL_cleanse(p->kv[i].value, strlen(p->kv[i].value));
		free(p->kv[i].value);
		p->kv[i].value = v;
		return 0;
	}
	if (p->n == PROFILE_KEYS_MAX)
		return -E2BIG;
	p->kv[p->n].key = strdup(key);
	p->kv[p->n].value = strdup(value);
	if (!p->kv[p->n].key || !p->kv[p->n].value) {
		free(p->kv[p->n].key);
		free(p->kv[p->n].value);
		return -ENOMEM;
	}
	p->n++;
	return 0;
}

static char *default_path(const char *var, const char *leaf)
{
	const char *v = getenv(var), *home = getenv("HOME");
	struct passwd pw, *res = NULL;
	char pwbuf[1024], *out = NULL;

	if (v && *v)
		return strdup(v);
	if (!home || !*home) {
		if (getpwuid_r(getuid(), &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res)
			home = res->pw_dir;
		else
			return NULL;
	}
	if (asprintf(&out, "%s/.aws/%s", home, leaf) < 0)
		return NULL;
	return out;
}

struct profile *profile_new(const char *name)
{
	struct profile *p = calloc(1, sizeof(*p));

	if (p && !(p->name = strdup(name))) {
		free(p);
		p = NULL;
	}
	return p;
}

size_t profile_count(const struct profile *p)
{
	return p->n;
}

const char *profile_key_at(const struct profile *p, size_t i, const char **value)
{
	*value = p->kv[i].value;
	return p->kv[i].key;
}

int profile_parse(char *text, const char *path, int is_config, const char *name,
		  struct profile *p, int override, char *why, size_t whylen)
{
	char *line, *save = NULL, *eq;
	int in = 0, found = 0, lineno = 0, rc;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int indented = line[0] == ' ' || line[0] == '\t';

		lineno++;
		str_trim(line);
		if (!*line || *line == '#' || *line == ';')
			continue;
		if (*line == '[') {
			char *end = strchr(line, ']'), *sec;

			if (!end) {
				snprintf(why, whylen, "%s: a section header without ']' near line %d",
					 path, lineno);
				return -EINVAL;
			}
			*end = '\0';
			sec = str_trim(line + 1);
			if (is_config && strcmp(sec, "default") != 0) {
				if (strncmp(sec, "profile", 7) || !isspace((unsigned char)sec[7])) {
					in = 0; /* [sso-session x], [services x] */
					continue;
				}
				sec = str_trim(sec + 8);
			}
			in = strcmp(sec, name) == 0;
			found |= in;
			continue;
		}
		if (!in || indented)
			continue;
		eq = strchr(line, '=');
		if (!eq) {
			snprintf(why, whylen, "%s: expected 'key = value' near line %d of profile %s",
				 path, lineno, name);
			return -EINVAL;
		}
		*eq = '\0';
		str_trim(line);
		/* A nested block ("s3 =" followed by indented lines) has no value. */
		rc = profile_set(p, line, str_trim(eq + 1), override);
		if (rc) {
			snprintf(why, whylen, "%s: %s", path,
				 rc == -E2BIG ? "too many settings in one profile" : "out of memory");
			return rc;
		}
	}
	return found;
}

/*
 * Read the section for name from one file into p (profile_parse). Returns 1
 * when the section was found, 0 when not (or the file is absent), or a
 * negative errno with why filled.
 */
static int read_file(const char *path, int is_config, const char *name, struct profile *p,
		     int override, char *why, size_t whylen)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	rc = file_read_small(path, PROFILE_FILE_MAX, &text, &len);
	if (rc == -ENOENT)
		return 0;
	if (rc) {
		const char *var = is_config ? "AWS_CONFIG_FILE" : "AWS_SHARED_CREDENTIALS_FILE";

		snprintf(why, whylen, "cannot read the shared %s file %s (%s, default ~/.aws/%s): "
			 "%s; point %s at a regular file of at most %d MiB, or unset it",
			 is_config ? "config" : "credentials", path, var,
			 is_config ? "config" : "credentials", file_read_strerror(rc), var,
			 PROFILE_FILE_MAX >> 20);
		return rc;
	}
	rc = profile_parse(text, path, is_config, name, p, override, why, whylen);
	OPENSSL_cleanse(text, len);
	free(text);
	return rc;
}

int profile_load(const char *name, struct profile **out, char *why, size_t whylen)
{
	char *config = default_path("AWS_CONFIG_FILE", "config");
	char *creds = default_path("AWS_SHARED_CREDENTIALS_FILE", "credentials");
	struct profile *p;
	int rc = -ENOMEM, a = 0, b = 0;

	*out = NULL;
	if (!name)
		name = getenv("AWS_PROFILE") && *getenv("AWS_PROFILE") ? getenv("AWS_PROFILE")
								       : "default";
	p = profile_new(name);
	if (!p) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	/* The credentials file wins: read it first, then fill gaps from config. */
	if (creds)
		b = read_file(creds, 0, name, p, 1, why, whylen);
	if (b < 0) {
		rc = b;
		goto out;
	}
	if (config)
		a = read_file(config, 1, name, p, 0, why, whylen);
	if (a < 0) {
		rc = a;
		goto out;
	}
	if (!a && !b) {
		rc = -ENOENT;
		goto out;
	}
	*out = p;
	p = NULL;
	rc = 0;
out:
	profile_free(p);
	free(config);
	free(creds);
	return rc;
}

char *creds_profile_region(void)
{
	struct profile *p = NULL;
	char why[CREDS_WHY_LEN];
	const char *r;
	char *out = NULL;

	if (profile_load(NULL, &p, why, sizeof(why)) != 0)
		return NULL;
	r = profile_get(p, "region");
	if (r && *r)
		out = strdup(r);
	profile_free(p);
	return out;
}

struct creds_provider *creds_profile_provider(const struct profile *p, struct http_client *http,
					      const char *region, long duration_seconds,
					      char *why, size_t whylen)
{
	const char *ak = profile_get(p, "aws_access_key_id");
	const char *sk = profile_get(p, "aws_secret_access_key");
	const char *role = profile_get(p, "role_arn");
	const char *wif = profile_get(p, "web_identity_token_file");
	const char *proc = profile_get(p, "credential_process");
	struct creds_provider *prov = NULL;
	struct creds *cr;

	if (role || wif) {
		struct webid_config wc;
		char *endpoint;

		if (!role || !wif) {
			snprintf(why, whylen, "profile %s sets %s without %s; irsafs supports "
				 "role_arn only together with web_identity_token_file (no "
				 "source_profile or credential_source role chaining)", p->name,
				 role ? "role_arn" : "web_identity_token_file",
				 role ? "web_identity_token_file" : "role_arn");
			return NULL;
		}
		char setting[160];

		if (!region)
			region = profile_get(p, "region");
		snprintf(setting, sizeof(setting), "web_identity_token_file of profile %.100s",
			 p->name);
		endpoint = creds_sts_endpoint(region, why, whylen);
		if (!endpoint)
			return NULL;
		memset(&wc, 0, sizeof(wc));
		wc.role_arn = role;
		wc.token_file = wif;
		wc.token_setting = setting;
		wc.session_name = profile_get(p, "role_session_name");
		wc.sts_endpoint = endpoint;
		wc.duration_seconds = duration_seconds;
		wc.timeout_ms = 10000;
		wc.budget_ms = 30000;
		prov = creds_webid_new(&wc, http);
		free(endpoint);
	} else if (ak || sk) {
		if (!ak || !*ak || !sk || !*sk) {
			snprintf(why, whylen, "profile %s sets %s without %s", p->name,
				 ak && *ak ? "aws_access_key_id" : "aws_secret_access_key",
				 ak && *ak ? "aws_secret_access_key" : "aws_access_key_id");
			return NULL;
		}
		cr = creds_new(ak, sk, profile_get(p, "aws_session_token"), 0, NULL);
		if (cr)
			prov = creds_static_new(cr, "profile");
		creds_release(cr);
	} else if (proc) {
		if (!*proc) {
			snprintf(why, whylen, "profile %s has an empty credential_process", p->name);
			return NULL;
		}
		prov = creds_process_new(proc, p->name);
	} else {
		snprintf(why, whylen, "profile %s has no credentials: irsafs reads "
			 "aws_access_key_id + aws_secret_access_key, role_arn + "
			 "web_identity_token_file, or credential_process%s", p->name,
			 profile_get(p, "sso_session") || profile_get(p, "sso_start_url")
				 ? " (SSO profiles are not supported)" : "");
		return NULL;
	}
	if (!prov)
		snprintf(why, whylen, "out of memory");
	return prov;
}
