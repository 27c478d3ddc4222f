/*
 * Unit tests for auth/creds*: the source chain and its fail-closed rules, the
 * STS endpoint, container URLs, profile files, credential_process, hostile
 * token and profile files. The refreshing cache is test_creds_cache.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/creds.h"
#include "core/log.h"
#include "core/strutil.h"
#include "harness.h"

static const char *const chain_vars[] = {
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN",
	"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME",
	"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
	"AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL",
	"AWS_ENDPOINT_URL_STS", "AWS_STS_REGIONAL_ENDPOINTS", "AWS_USE_FIPS_ENDPOINT",
	"AWS_EC2_METADATA_SERVICE_ENDPOINT",
};

static char tmpdir[64];

static void clean_env(void)
{
	char path[128];
	size_t i;

	for (i = 0; i < sizeof(chain_vars) / sizeof(chain_vars[0]); i++)
		unsetenv(chain_vars[i]);
	/* Never read the real ~/.aws of whoever runs the tests. */
	snprintf(path, sizeof(path), "%s/no-config", tmpdir);
	setenv("AWS_CONFIG_FILE", path, 1);
	snprintf(path, sizeof(path), "%s/no-credentials", tmpdir);
	setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
}

static void write_file(const char *name, const char *text, char *path, size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
}

/* The provider the chain picks for the current environment, or NULL + why. */
static const char *chain_pick(int allow_imds, char *why, size_t whylen)
{
	struct creds_chain_config cfg = { .region = "us-east-1", .allow_instance_role = allow_imds };
	struct creds_provider *p;
	static char name[64];

	why[0] = '\0';
	p = creds_provider_from_env(NULL, &cfg, why, whylen);
	if (!p)
		return NULL;
	snprintf(name, sizeof(name), "%s", p->name);
	p->destroy(p);
	return name;
}

TEST(chain_order_and_fail_closed)
{
	char why[CREDS_WHY_LEN], path[128];

	clean_env();
	CHECK(chain_pick(0, why, sizeof(why)) == NULL);
	CHECK(strstr(why, "no credentials") != NULL);
	CHECK(strstr(why, "--allow-instance-role") != NULL);
	/* The instance role only when allowed, and only as the last resort. */
	CHECK_STR(chain_pick(1, why, sizeof(why)), "instance role (IMDSv2)");

	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/creds", 1);
	CHECK_STR(chain_pick(1, why, sizeof(why)), "container credentials");
	setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/r", 1);
	setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent", 1);
	CHECK_STR(chain_pick(1, why, sizeof(why)), "web identity");
	setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
	CHECK_STR(chain_pick(1, why, sizeof(why)), "environment");

	/* Half-configured static keys stop the chain, even with IRSA present. */
	unsetenv("AWS_SECRET_ACCESS_KEY");
	CHECK(chain_pick(1, why, sizeof(why)) == NULL);
	CHECK(strstr(why, "AWS_ACCESS_KEY_ID is set without AWS_SECRET_ACCESS_KEY") != NULL);
	CHECK(strstr(why, "wJalr") == NULL);
	unsetenv("AWS_ACCESS_KEY_ID");

	/* Half-configured IRSA stops the chain, even with container creds and IMDS. */
	unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE");
	CHECK(chain_pick(1, why, sizeof(why)) == NULL);
	CHECK(strstr(why, "AWS_ROLE_ARN is set but AWS_WEB_IDENTITY_TOKEN_FILE is not") != NULL);
	unsetenv("AWS_ROLE_ARN");

	/* A refused container URI stops the chain. */
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://0.0.0.0:1/creds", 1);
	CHECK(chain_pick(1, why, sizeof(why)) == NULL);
	CHECK(strstr(why, "plain HTTP") != NULL);
	unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");

	/* A named profile that does not exist stops the chain. */
	setenv("AWS_PROFILE", "nope", 1);
	CHECK(chain_pick(1, why, sizeof(why)) == NULL);
	CHECK(strstr(why, "AWS_PROFILE is 'nope'") != NULL);
	/* A default profile with only a region is not a credential source. */
	unsetenv("AWS_PROFILE");
	write_file("config-region", "[default]\nregion = eu-west-3\n", path, sizeof(path));
	setenv("AWS_CONFIG_FILE", path, 1);
	CHECK(chain_pick(0, why, sizeof(why)) == NULL);
	CHECK(strstr(why, "no credentials") != NULL);
	{
		char *r = creds_profile_region();

		CHECK_STR(r, "eu-west-3");
		free(r);
	}
	/* A default profile with broken credentials stops the chain. */
	write_file("config-broken", "[default]\naws_access_key_id = AKIDONLY\n", path, sizeof(path));
	setenv("AWS_CONFIG_FILE", path, 1);
	CHECK(chain_pick(1, why, sizeof(why)) == NULL);
	CHECK(strstr(why, "aws_access_key_id without aws_secret_access_key") != NULL);
	clean_env();
}

TEST(sts_endpoint_selection)
{
	static const struct {
		const char *sts, *any, *mode, *fips, *region, *want;
	} cases[] = {
		{ NULL, NULL, NULL, NULL, "us-west-2", "https://sts.us-west-2.amazonaws.com" },
		{ NULL, NULL, NULL, NULL, "cn-north-1", "https://sts.cn-north-1.amazonaws.com.cn" },
		{ NULL, NULL, NULL, "true", "us-east-1", "https://sts-fips.us-east-1.amazonaws.com" },
		{ NULL, NULL, "legacy", NULL, "eu-west-1", "https://sts.amazonaws.com" },
		{ NULL, NULL, "legacy", NULL, "cn-north-1", "https://sts.cn-north-1.amazonaws.com.cn" },
		{ NULL, NULL, "regional", NULL, "eu-west-1", "https://sts.eu-west-1.amazonaws.com" },
		{ NULL, "http://127.0.0.1:7480", NULL, NULL, NULL, "http://127.0.0.1:7480" },
		{ "http://sts.local:1", "http://127.0.0.1:7480", "legacy", NULL, "eu-west-1",
		  "http://sts.local:1" },
		{ NULL, NULL, NULL, NULL, NULL, NULL },
		{ NULL, NULL, "sometimes", NULL, "eu-west-1", NULL },
		{ "ftp://x", NULL, NULL, NULL, "eu-west-1", NULL },
	};
	char why[CREDS_WHY_LEN];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got;

		clean_env();
		if (cases[i].sts)
			setenv("AWS_ENDPOINT_URL_STS", cases[i].sts, 1);
		if (cases[i].any)
			setenv("AWS_ENDPOINT_URL", cases[i].any, 1);
		if (cases[i].mode)
			setenv("AWS_STS_REGIONAL_ENDPOINTS", cases[i].mode, 1);
		if (cases[i].fips)
			setenv("AWS_USE_FIPS_ENDPOINT", cases[i].fips, 1);
		why[0] = '\0';
		got = creds_sts_endpoint(cases[i].region, why, sizeof(why));
		if (cases[i].want) {
			CHECK_STR(got, cases[i].want);
		} else {
			CHECK(got == NULL);
			CHECK(why[0] != '\0');
		}
		free(got);
	}
	clean_env();
}

TEST(container_urls)
{
	static const struct {
		const char *full, *relative, *want;
	} cases[] = {
		{ "http://169.254.170.23/v1/credentials", NULL, "http://169.254.170.23/v1/credentials" },
		{ "http://169.254.170.2/creds", NULL, "http://169.254.170.2/creds" },
		{ "http://[fd00:ec2::23]/v1/credentials", NULL, "http://[fd00:ec2::23]/v1/credentials" },
		{ "http://127.0.0.1:8080/c", NULL, "http://127.0.0.1:8080/c" },
		{ "http://127.9.8.7/c", NULL, "http://127.9.8.7/c" },
		{ "http://localhost:1/c", NULL, "http://localhost:1/c" },
		{ "http://[::1]:80/c", NULL, "http://[::1]:80/c" },
		{ "https://creds.example.com/c", NULL, "https://creds.example.com/c" },
		{ NULL, "/v2/credentials/abc", "http://169.254.170.2/v2/credentials/abc" },
		/* Refused: plain HTTP elsewhere, odd schemes, user info, a bad relative path. */
		{ "http://creds.example.com/c", NULL, NULL },
		{ "http://0.0.0.0:1/c", NULL, NULL },
		{ "http://169.254.169.254/latest", NULL, NULL },
		{ "http://128.0.0.1/c", NULL, NULL },
		{ "http://127.0.0.1.example.com/c", NULL, NULL },
		{ "http://user@127.0.0.1/c", NULL, NULL },
		{ "ftp://127.0.0.1/c", NULL, NULL },
		{ NULL, "v2/no-slash", NULL },
	};
	char why[CREDS_WHY_LEN];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got;

		why[0] = '\0';
		got = creds_container_url(cases[i].full, cases[i].relative, why, sizeof(why));
		if (cases[i].want) {
			CHECK_STR(got, cases[i].want);
		} else {
			if (got)
				fprintf(stderr, "accepted: %s\n", got);
			CHECK(got == NULL);
			CHECK(why[0] != '\0');
		}
		free(got);
	}
}

TEST(profile_files)
{
	char why[CREDS_WHY_LEN], cfg[128], cred[128];
	struct profile *p = NULL;

	clean_env();
	write_file("config",
		   "# comment\n"
		   "[default]\n"
		   "region = us-west-1\n"
		   "\n"
		   "[profile dev]\r\n"
		   "region=eu-central-1\r\n"
		   "aws_access_key_id = FROMCONFIG\n"
		   "s3 =\n"
		   "  max_concurrent_requests = 20\n"
		   "; another comment\n"
		   "[sso-session corp]\n"
		   "sso_region = us-east-1\n"
		   "[dev]\n"
		   "region = wrong-because-config-needs-the-profile-word\n",
		   cfg, sizeof(cfg));
	write_file("credentials",
		   "[dev]\n"
		   "aws_access_key_id = AKIDDEV\n"
		   "aws_secret_access_key = secretdev\n",
		   cred, sizeof(cred));
	setenv("AWS_CONFIG_FILE", cfg, 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", cred, 1);

	CHECK_INT(profile_load("dev", &p, why, sizeof(why)), 0);
	if (p) {
		CHECK_STR(profile_name(p), "dev");
		CHECK_STR(profile_get(p, "region"), "eu-central-1");
		/* The credentials file wins over the config file. */
		CHECK_STR(profile_get(p, "AWS_ACCESS_KEY_ID"), "AKIDDEV");
		CHECK_STR(profile_get(p, "aws_secret_access_key"), "secretdev");
		CHECK(profile_get(p, "max_concurrent_requests") == NULL);
		CHECK(profile_get(p, "sso_region") == NULL);
		profile_free(p);
	}
	p = NULL;
	CHECK_INT(profile_load("default", &p, why, sizeof(why)), 0);
	if (p) {
		CHECK_STR(profile_get(p, "region"), "us-west-1");
		profile_free(p);
	}
	p = NULL;
	CHECK_INT(profile_load("missing", &p, why, sizeof(why)), -ENOENT);
	CHECK(p == NULL);
	setenv("AWS_PROFILE", "dev", 1);
	{
		char *r = creds_profile_region();

		CHECK_STR(r, "eu-central-1");
		free(r);
	}
	write_file("config-bad", "[profile x\nregion = a\n", cfg, sizeof(cfg));
	setenv("AWS_CONFIG_FILE", cfg, 1);
	CHECK_INT(profile_load("x", &p, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "without ']'") != NULL);
	clean_env();
}

/* The provider a one-profile config file makes, and its fetch. */
static int profile_fetch(const char *text, struct creds **out, char *name, size_t namelen,
			 char *why, size_t whylen)
{
	struct creds_provider *prov;
	struct profile *p = NULL;
	char cfg[128];
	int rc;

	*out = NULL;
	write_file("config-kind", text, cfg, sizeof(cfg));
	setenv("AWS_CONFIG_FILE", cfg, 1);
	rc = profile_load("k", &p, why, whylen);
	if (rc)
		return rc;
	prov = creds_profile_provider(p, NULL, "us-east-1", 0, why, whylen);
	profile_free(p);
	if (!prov)
		return -EINVAL;
	snprintf(name, namelen, "%s", prov->name);
	rc = prov->fetch(prov, out, why, whylen);
	prov->destroy(prov);
	return rc;
}

TEST(profile_kinds)
{
	char why[CREDS_WHY_LEN], name[64];
	struct creds *cr = NULL;
	struct creds_provider *prov;
	struct profile *p = NULL;
	char cfg[128];

	clean_env();
	CHECK_INT(profile_fetch("[profile k]\naws_access_key_id = AK\naws_secret_access_key = SK\n"
				"aws_session_token = ST\n", &cr, name, sizeof(name), why,
				sizeof(why)), 0);
	CHECK_STR(name, "profile");
	if (cr) {
		CHECK_STR(cr->access_key_id, "AK");
		CHECK_STR(cr->secret_access_key, "SK");
		CHECK_STR(cr->session_token, "ST");
		CHECK_INT(cr->expiration, 0);
		creds_release(cr);
	}
	CHECK_INT(profile_fetch("[profile k]\ncredential_process = printf '{\"Version\": 1, "
				"\"AccessKeyId\": \"PAK\", \"SecretAccessKey\": \"PSK\", "
				"\"SessionToken\": \"PST\", \"Expiration\": "
				"\"2030-01-02T03:04:05Z\"}'\n", &cr, name, sizeof(name), why,
				sizeof(why)), 0);
	CHECK_STR(name, "credential_process");
	if (cr) {
		CHECK_STR(cr->access_key_id, "PAK");
		CHECK_STR(cr->session_token, "PST");
		CHECK_INT(cr->expiration, 1893553445);
		creds_release(cr);
	}
	cr = NULL;
	CHECK(profile_fetch("[profile k]\ncredential_process = echo 'sso expired' >&2; exit 3\n",
			    &cr, name, sizeof(name), why, sizeof(why)) != 0);
	CHECK(cr == NULL);
	CHECK(strstr(why, "credential_process for profile k exited with status 3: sso expired") !=
	      NULL);
	CHECK(profile_fetch("[profile k]\ncredential_process = /nonexistent/helper\n", &cr, name,
			    sizeof(name), why, sizeof(why)) != 0);
	CHECK(strstr(why, "exited with status 127") != NULL);
	CHECK(profile_fetch("[profile k]\ncredential_process = echo not json\n", &cr, name,
			    sizeof(name), why, sizeof(why)) != 0);
	CHECK(strstr(why, "did not send a JSON object") != NULL);

	/* Web identity from a profile: the provider is made; its fetch reads the file. */
	write_file("config-kind", "[profile k]\nrole_arn = arn:aws:iam::1:role/r\n"
		   "web_identity_token_file = /nonexistent/token\n", cfg, sizeof(cfg));
	setenv("AWS_CONFIG_FILE", cfg, 1);
	CHECK_INT(profile_load("k", &p, why, sizeof(why)), 0);
	if (p) {
		prov = creds_profile_provider(p, NULL, "us-east-1", 0, why, sizeof(why));
		CHECK(prov != NULL);
		if (prov) {
			CHECK_STR(prov->name, "web identity");
			CHECK(prov->fetch(prov, &cr, why, sizeof(why)) != 0);
			CHECK(strstr(why, "/nonexistent/token") != NULL);
			prov->destroy(prov);
		}
		profile_free(p);
	}
	/* Unsupported or incomplete kinds say so. */
	CHECK(profile_fetch("[profile k]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = b\n",
			    &cr, name, sizeof(name), why, sizeof(why)) != 0);
	CHECK(strstr(why, "role_arn without web_identity_token_file") != NULL);
	CHECK(profile_fetch("[profile k]\nsso_session = corp\n", &cr, name, sizeof(name), why,
			    sizeof(why)) != 0);
	CHECK(strstr(why, "SSO profiles are not supported") != NULL);
	CHECK(profile_fetch("[profile k]\naws_secret_access_key = SECRETONLY\n", &cr, name,
			    sizeof(name), why, sizeof(why)) != 0);
	CHECK(strstr(why, "aws_secret_access_key without aws_access_key_id") != NULL);
	CHECK(strstr(why, "SECRETONLY") == NULL);
	clean_env();
}

TEST(credential_process_output)
{
	static const struct {
		const char *json, *why;
	} bad[] = {
		{ "{\"AccessKeyId\": \"A\", \"SecretAccessKey\": \"TOPSECRET\"}", "no \"Version\"" },
		{ "{\"Version\": 2, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"TOPSECRET\"}",
		  "\"Version\" must be 1" },
		{ "{\"Version\": \"1\", \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"TOPSECRET\"}",
		  "\"Version\" must be 1" },
		{ "{\"Version\": 1, \"SecretAccessKey\": \"TOPSECRET\"}", "lacks \"AccessKeyId\"" },
		{ "{\"Version\": 1, \"AccessKeyId\": \"A\"}", "lacks \"SecretAccessKey\"" },
		{ "{\"Version\": 1, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"TOPSECRET\", "
		  "\"Expiration\": \"tomorrow\"}", "not an ISO 8601 time" },
		{ "[1, 2]", "did not send a JSON object" },
		{ "{\"Version\": 1, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"TOPSECRET\"",
		  "did not send a JSON object" },
		{ "", "did not send a JSON object" },
	};
	char why[CREDS_WHY_LEN];
	struct creds *cr = NULL;
	size_t i;

	CHECK_INT(creds_process_parse("{\"Version\": 1, \"AccessKeyId\": \"A\", "
				      "\"SecretAccessKey\": \"S\"}", 58, &cr, why, sizeof(why)), 0);
	if (cr) {
		CHECK_STR(cr->access_key_id, "A");
		CHECK(cr->session_token == NULL);
		CHECK_INT(cr->expiration, 0);
		creds_release(cr);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr = NULL;
		why[0] = '\0';
		CHECK(creds_process_parse(bad[i].json, strlen(bad[i].json), &cr, why,
					  sizeof(why)) != 0);
		CHECK(cr == NULL);
		if (!strstr(why, bad[i].why))
			fprintf(stderr, "case %zu: %s\n", i, why);
		CHECK(strstr(why, bad[i].why) != NULL);
		CHECK(strstr(why, "TOPSECRET") == NULL);
	}
}

TEST(near_expiry_window)
{
	time_t now = time(NULL);
	struct creds *hour = creds_new("A", "S", "T", now + 3600, NULL);
	struct creds *minute = creds_new("A", "S", "T", now + 60, NULL);
	struct creds *forever = creds_new("A", "S", NULL, 0, NULL);

	CHECK(hour && minute && forever);
	if (!hour || !minute || !forever)
		return;
	/* One hour: the last minute counts as "near". */
	CHECK(!creds_near_expiry(hour, now + 3600 - 61));
	CHECK(creds_near_expiry(hour, now + 3600 - 59));
	/* One minute: only the last quarter, so a real denial is not a refresh. */
	CHECK(!creds_near_expiry(minute, now));
	CHECK(!creds_near_expiry(minute, now + 44));
	CHECK(creds_near_expiry(minute, now + 46));
	CHECK(creds_near_expiry(minute, now + 100));
	CHECK(!creds_near_expiry(forever, now + 1000000));
	creds_release(hour);
	creds_release(minute);
	creds_release(forever);
}

/*
 * Token and profile files that are not files: a FIFO (would block an open
 * for ever), a directory, /dev/zero, a 1 GiB file. Each is one error naming
 * the variable, at once; the alarm turns a hang into a failure, not a stuck CI.
 */
TEST(hostile_token_and_profile_files)
{
	const char *bad[4];
	char fifo[128], dir[128], big[128], why[CREDS_WHY_LEN];
	struct creds *cr = NULL;
	struct profile *prof = NULL;
	size_t i;
	int fd;

	snprintf(fifo, sizeof(fifo), "%s/token-fifo", tmpdir);
	snprintf(dir, sizeof(dir), "%s/token-dir", tmpdir);
	snprintf(big, sizeof(big), "%s/token-big", tmpdir);
	CHECK_INT(mkfifo(fifo, 0600), 0);
	CHECK_INT(mkdir(dir, 0700), 0);
	fd = open(big, O_CREAT | O_WRONLY, 0600);
	CHECK(fd >= 0 && ftruncate(fd, 1LL << 30) == 0);
	if (fd >= 0)
		close(fd);
	bad[0] = fifo;
	bad[1] = dir;
	bad[2] = "/dev/zero";
	bad[3] = big;
	alarm(20);
	for (i = 0; i < 4; i++) {
		struct webid_config wc = {
			.role_arn = "arn:aws:iam::1:role/r", .token_file = bad[i],
			.sts_endpoint = "http://127.0.0.1:9", .timeout_ms = 1000, .budget_ms = 1000,
		};
		struct creds_provider *p = creds_webid_new(&wc, NULL);

		CHECK(p != NULL);
		if (!p)
			continue;
		why[0] = '\0';
		CHECK(p->fetch(p, &cr, why, sizeof(why)) < 0);
		CHECK(strstr(why, bad[i]) != NULL);
		CHECK(strstr(why, "; AWS_WEB_IDENTITY_TOKEN_FILE must name the token") != NULL);
		CHECK(strstr(why, i == 1 ? "is a directory" : i == 3 ? "too large" :
				  "not a regular file") != NULL);
		p->destroy(p);

		p = creds_container_new("http://127.0.0.1:9/creds", bad[i], NULL, NULL);
		CHECK(p != NULL);
		if (!p)
			continue;
		why[0] = '\0';
		CHECK(p->fetch(p, &cr, why, sizeof(why)) < 0);
		CHECK(strstr(why, bad[i]) != NULL);
		CHECK(strstr(why, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") != NULL);
		p->destroy(p);

		clean_env();
		setenv(i % 2 ? "AWS_SHARED_CREDENTIALS_FILE" : "AWS_CONFIG_FILE", bad[i], 1);
		why[0] = '\0';
		CHECK(profile_load(NULL, &prof, why, sizeof(why)) < 0);
		CHECK(prof == NULL);
		CHECK(strstr(why, bad[i]) != NULL);
		CHECK(strstr(why, i % 2 ? "AWS_SHARED_CREDENTIALS_FILE" : "AWS_CONFIG_FILE") != NULL);
	}
	alarm(0);
	clean_env();
	unlink(fifo);
	unlink(big);
	rmdir(dir);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/irsafs-test-creds-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	log_set_level(LOG_CRIT);
	RUN(chain_order_and_fail_closed);
	RUN(sts_endpoint_selection);
	RUN(container_urls);
	RUN(profile_files);
	RUN(profile_kinds);
	RUN(credential_process_output);
	RUN(near_expiry_window);
	RUN(hostile_token_and_profile_files);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
	}
	return harness_done();
}
