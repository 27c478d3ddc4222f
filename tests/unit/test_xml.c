/*
 * test_xml: the XML parsers (http/xml, auth/sts_xml, s3/s3_xml): error
 * documents, STS answers, every shared fixture, and hostile documents for
 * each parser. The ListObjectsV2 pages of our own are test_s3_xml.c's.
 *
 * Inline documents of our own cover what no public fixture has: radosgw's
 * shapes (no namespace, 19/39-character keys, nanosecond expirations) and
 * hostile documents. The shared fixtures (real S3/STS bodies from
 * AWS-maintained suites; expectations taken from the .json beside them where
 * there is one) come from $IRSAFS_FIXTURES or SHARED_FIXTURES_DIR, and are
 * run by `test_xml fixtures` (meson test xml-fixtures) only: without them
 * that run says why and exits 77 (skipped), never 0, while the inline tests
 * (`test_xml`, meson test xml) run everywhere.
 *
 * Parsers always get an exact-size heap copy with no terminating NUL, so ASan
 * catches a read past `len`.
 */
#include "harness.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/sts_xml.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/strutil.h"
#include "http/xml.h"
#include "s3/s3_xml.h"
#include "xmlrun.h"

static const char *fixtures;

static char *read_fixture(const char *rel, size_t *len)
{
	char path[PATH_MAX], *data = NULL;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", fixtures, rel);
	rc = file_read_small(path, XML_MAX_BODY + 1, &data, len);
	if (rc)
		fprintf(stderr, "cannot read fixture %s: %s\n", path, strerror(-rc));
	CHECK(rc == 0);
	return rc ? NULL : data;
}

/* ---- the small helpers ------------------------------------------------------------------- */

TEST(helpers)
{
	static const char text[] = "<r xmlns=\"urn:a\" xmlns:p=\"urn:b\"><p:Name> n </p:Name>"
				   "<Empty/><Mixed>a<![CDATA[<b>]]>c<x>skipped</x>d</Mixed>"
				   "<Long>caf\xc3\xa9\xc3\xa9</Long><Euro>x\xe2\x82\xac</Euro></r>";
	static const struct {
		const char *name;
		size_t outlen;
		const char *want;
	} cases[] = {
		/* outlen 0: xml_child_text; else xml_child_copy, which cuts whole characters */
		{ "Name", 0, " n " }, { "Empty", 0, "" }, { "Mixed", 0, "a<b>cd" },
		{ "Name", 8, " n " }, { "Long", 8, "caf\xc3\xa9\xc3\xa9" }, { "Long", 5, "caf" },
		{ "Long", 7, "caf\xc3\xa9" }, { "Euro", 5, "x\xe2\x82\xac" }, { "Euro", 4, "x" },
		{ "Euro", 3, "x" },
	};
	xmlDocPtr doc = xml_parse(text, sizeof(text) - 1);
	xmlNodePtr root = xml_root(doc, "r");
	char out[8], *s;
	size_t i;

	CHECK(root != NULL && xml_root(doc, "Name") == NULL && xml_root(NULL, "r") == NULL);
	CHECK(xml_child(NULL, "Name") == NULL && xml_child_text(NULL, "Name") == NULL);
	CHECK(xml_child(root, "Missing") == NULL && xml_child_text(root, "Missing") == NULL);
	CHECK_INT(xml_child_copy(root, "Missing", out, sizeof(out)), -ENOENT);
	CHECK_STR(out, "");
	CHECK_INT(xml_child_copy(root, "Long", out, 0), 0);
	for (i = 0; i < N(cases); i++) {
		if (cases[i].outlen) {
			CHECK_INT(xml_child_copy(root, cases[i].name, out, cases[i].outlen), 0);
			CHECK_STR(out, cases[i].want);
		} else {
			s = xml_child_text(root, cases[i].name);
			CHECK_STR(s, cases[i].want);
			free(s);
		}
	}
	xmlFreeDoc(doc);
}

/* ---- error documents --------------------------------------------------------------------- */

struct error_case {
	const char *doc;	/* inline: the document; fixture: its path */
	const char *code;	/* NULL: the document must be refused */
	const char *request_id, *region;
	const char *message;	/* NULL: not checked */
};

static void check_error(const struct error_case *c, const struct s3_error *e)
{
	CHECK_STR(e->code, c->code);
	CHECK_STR(e->request_id, c->request_id);
	CHECK_STR(e->region, c->region);
	if (c->message)
		CHECK_STR(e->message, c->message);
	CHECK(e->http_status == 0 && e->curl_code == 0);
}

#define STS_NS "xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\""
#define STS_ERR(type, code, msg, rid)                                                        \
	"<ErrorResponse " STS_NS "><Error><Type>" type "</Type><Code>" code "</Code><Message>" \
	msg "</Message></Error><RequestId>" rid "</RequestId></ErrorResponse>"

static const struct error_case inline_errors[] = {
	{ STS_ERR("Sender", "AccessDenied", "Not authorized to perform sts:AssumeRole", "c6104cbe"),
	  "AccessDenied", "c6104cbe", "", "Not authorized to perform sts:AssumeRole" },
	{ STS_ERR("Receiver", "IDPCommunicationError", "IdP unreachable", "r-1"),
	  "IDPCommunicationError", "r-1", "", "IdP unreachable" },
	{ STS_ERR("Sender", "InvalidIdentityToken", "No verification key", "r-2"),
	  "InvalidIdentityToken", "r-2", "", "No verification key" },
	/* radosgw's STS denial: no namespace, always AccessDenied, empty message */
	{ "<ErrorResponse><Error><Code>AccessDenied</Code><Message></Message></Error>"
	  "<RequestId>tx00000a1b2c-default</RequestId></ErrorResponse>",
	  "AccessDenied", "tx00000a1b2c-default", "", "" },
	/* the bare <Error> form, as radosgw's S3 and aws-c-auth's STS tests send it */
	{ "<Error><Code>AccessDenied</Code><Message></Message><BucketName>other-bucket</BucketName>"
	  "<RequestId>tx0000012</RequestId><HostId>5e8f-default-default</HostId></Error>",
	  "AccessDenied", "tx0000012", "", "" },
	{ "<sts:ErrorResponse xmlns:sts=\"urn:x\"><sts:Error><sts:Code>IDPRejectedClaim</sts:Code>"
	  "<sts:Message>m</sts:Message></sts:Error><sts:RequestId>r-4</sts:RequestId>"
	  "</sts:ErrorResponse>", "IDPRejectedClaim", "r-4", "", "m" },
	/* RequestId inside <Error> wins over the STS position beside it */
	{ "<ErrorResponse><Error><Code>C</Code><RequestId>inner</RequestId></Error>"
	  "<RequestId>outer</RequestId></ErrorResponse>", "C", "inner", "", "" },
	/* fields are trimmed and control characters flattened: they go into log lines */
	{ "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- proxy -->\n<Error>\n  <Code>\n"
	  "AuthorizationHeaderMalformed\n</Code>\n  <Message>line one\nline\ttwo\r\n</Message>"
	  "<Region>ap-southeast-2</Region></Error>\n", "AuthorizationHeaderMalformed", "",
	  "ap-southeast-2", "line one line two" },
	/* a region that is not one is not taken: it may end up in a host name */
	{ "<Error><Code>AuthorizationHeaderMalformed</Code><Region>evil.example.com/x</Region>"
	  "</Error>", "AuthorizationHeaderMalformed", "", "", "" },
	{ "<Error><Code>AuthorizationHeaderMalformed</Code>"
	  "<Region>region-name-that-is-far-too-long-1</Region></Error>",
	  "AuthorizationHeaderMalformed", "", "", "" },
	{ "<Error><Code>PermanentRedirect</Code><Endpoint>b.s3.eu-west-3.amazonaws.com</Endpoint>"
	  "<Bucket>b</Bucket></Error>", "PermanentRedirect", "", "", "" },
	{ "<Error/>", "", "", "", "" },
	{ "<ErrorResponse><RequestId>r</RequestId></ErrorResponse>", NULL, NULL, NULL, NULL },
	{ "<Errors><Error><Code>C</Code></Error></Errors>", NULL, NULL, NULL, NULL },
	{ "<html><body><h1>503 Service Unavailable</h1></body></html>", NULL, NULL, NULL, NULL },
	{ "Service Unavailable", NULL, NULL, NULL, NULL },
};

TEST(errors_inline)
{
	struct s3_error e;
	size_t i;

	for (i = 0; i < N(inline_errors); i++) {
		const char *doc = inline_errors[i].doc;

		if (!inline_errors[i].code) {
			CHECK_INT(run_error(doc, strlen(doc)), -EPROTO);
			continue;
		}
		err_clear(&e);
		CHECK_INT(xml_parse_error(doc, strlen(doc), &e), 0);
		check_error(&inline_errors[i], &e);
		/* an error document is never a listing or credentials */
		CHECK_INT(run_list(doc, strlen(doc)), -EPROTO);
		CHECK_INT(run_sts(doc, strlen(doc)), -EPROTO);
	}
}

/* The HTTP layer may have the request id and region from headers already. */
TEST(errors_keep_header_fields)
{
	static const char doc[] = "<Error><Code>PermanentRedirect</Code></Error>";
	struct s3_error e = { .http_status = 301, .code = "stale", .message = "stale",
			      .request_id = "from-header", .region = "eu-central-1" };

	CHECK_INT(xml_parse_error(doc, sizeof(doc) - 1, &e), 0);
	CHECK(!strcmp(e.code, "PermanentRedirect") && !e.message[0] && e.http_status == 301);
	CHECK(!strcmp(e.request_id, "from-header") && !strcmp(e.region, "eu-central-1"));
}

#define MOCK "s3-errors/aws-c-s3-mock-server/"
#define MOCK_ID "656c76696e6727732072657175657374"
#define BOTO "s3-errors/botocore/"
#define MP "s3-errors/mountpoint-s3/"
#define FX(path, code, rid) { path, code, rid, "", NULL }
#define REDIRECT_MSG "The bucket you are attempting to access must be        addressed using " \
	"the specified endpoint. Please send         all future requests to this endpoint."

/* Messages are checked where a .json gives the expected parse, or where they test trimming. */
static const struct error_case fixture_errors[] = {
	{ "botocore-response-parsing/errors_s3-list-objects.xml", "AccessDenied",
	  "9C7D5181867045BB", "", "Access Denied" },
	{ "botocore-response-parsing/errors_sts-get-session-token.xml", "AccessDenied",
	  "8088f6eb-b7fb-11e2-8d25-4b9f3b52b80f", "", "GetSessionToken call failed, unable to "
	  "validate MFA code.  Please verify your MFA serial number is valid and associated with "
	  "this user." },
	{ MOCK "CompleteMultipartUpload_async_access_denied_error.xml", "AccessDenied", MOCK_ID, "",
	  "Access denied." },
	{ MOCK "CompleteMultipartUpload_async_internal_error.xml", "InternalError", MOCK_ID, "",
	  "We encountered an internal error. Please try again." },
	FX(MOCK "CreateMultipartUpload_request_time_too_skewed.xml", "RequestTimeTooSkewed", ""),
	FX(MOCK "CreateMultipartUpload_request_timeout.xml", "RequestTimeout", "1234"),
	{ MOCK "GetObject_get_object_error_part.xml", "AccessDenied", "", "", "Access Denied" },
	FX(MOCK "GetObject_get_object_long_error.xml", "NoSuchKey", "4442587FB7D0A2F9"),
	{ MOCK "UploadPart_throttle.xml", "SlowDown", MOCK_ID, "", "" },
	FX(BOTO "test_response--L32--AccessDenied.xml", "AccessDenied", "XXXXXXXXXXXXXXXX"),
	/* the indentation around the message is trimmed, the runs inside it kept */
	{ BOTO "test_s3--L1781--PermanentRedirect.xml", "PermanentRedirect", "", "", REDIRECT_MSG },
	{ BOTO "test_s3--L1797--AuthorizationHeaderMalformed.xml", "AuthorizationHeaderMalformed",
	  "BD9AA1730D454E39", "eu-central-1", NULL },
	{ BOTO "test_s3--L1961--PermanentRedirect.xml", "PermanentRedirect", "", "", REDIRECT_MSG },
	{ BOTO "test_s3--L1992--AuthorizationHeaderMalformed.xml", "AuthorizationHeaderMalformed",
	  "BD9AA1730D454E39", "us-west-1", NULL },
	{ BOTO "test_s3--L493--SlowDown.xml", "SlowDown", "", "",
	  "Please reduce your request rate." },
	FX(MP "copy_object--parse_403_object_not_in_active_tier_error.xml",
	   "ObjectNotInActiveTierError", "BHCQ0FTYY0HKMV43"),
	{ MP "copy_object--parse_404_error.xml", "", "BHCQ0FTYY0HKMV43", "", "" },
	FX(MP "delete_object--parse_404_no_such_bucket.xml", "NoSuchBucket", "BHCQ0FTYY0HKMV43"),
	FX(MP "get_object--parse_403_glacier_storage_class.xml", "InvalidObjectState",
	   "9FEFFF118E15B86F"),
	FX(MP "get_object--parse_404_no_such_bucket.xml", "NoSuchBucket", "4VAGDP5HMYTDNB3Y"),
	FX(MP "get_object--parse_404_no_such_key.xml", "NoSuchKey", "NTKJWKHQBYNS73A9"),
	FX(MP "get_object_attributes--parse_404_no_such_bucket.xml", "NoSuchBucket",
	   "4VAGDP5HMYTDNB3Y"),
	FX(MP "get_object_attributes--parse_404_no_such_key.xml", "NoSuchKey", "NTKJWKHQBYNS73A9"),
	FX(MP "list_objects--parse_404_no_such_bucket.xml", "NoSuchBucket", "4YAYHJ0E82DDDNF0"),
	/* <Endpoint> alone names no region */
	FX(MP "s3_crt_client--parse_301_redirect.xml", "PermanentRedirect", "CM0Z9YFABRVSWXDJ"),
	FX(MP "s3_crt_client--parse_400_expired_token.xml", "ExpiredToken", "RFXW0E15XSRPJYSW"),
	FX(MP "s3_crt_client--parse_400_invalid_token.xml", "InvalidToken", "CBFNVADDAZ8661HK"),
	{ MP "s3_crt_client--parse_400_redirect.xml", "AuthorizationHeaderMalformed",
	  "VR3NH4JF5F39GB66", "us-west-2", "The authorization header is malformed; the region "
	  "\\'us-east-1\\' is wrong; expecting \\'us-west-2\\'" },
	FX(MP "s3_crt_client--parse_403_access_denied.xml", "AccessDenied", "CM0R497NB0WAQ977"),
	FX(MP "s3_crt_client--parse_403_made_up_error.xml", "NotARealError", "CM0R497NB0WAQ977"),
	FX(MP "s3_crt_client--parse_403_signature_does_not_match.xml", "SignatureDoesNotMatch",
	   "A1F516XX5M8AATSQ"),
	{ "sts/aws-c-auth/web_identity--s_retryable_error_response_1.xml", "IDPCommunicationError",
	  "4442587FB7D0A2F9", "", "XXX" },
	{ "sts/aws-c-auth/web_identity--s_retryable_error_response_2.xml", "InvalidIdentityToken",
	  "4442587FB7D0A2F9", "", "XXX" },
};

/* ---- STS --------------------------------------------------------------------------------- */

#define RGW_TOKEN "pU3KGCUwux1tEyze1iN7LtkeP3IfyxlxF0SU1kk8nVw0YL4xIB5p/tqg7ui5mX9cfCmZ/a/l" \
	"kyU81lSvTfrXFCegrrP+6SMvivIhH57kkcWxC+y1Vjv8Hm+TQn7LyP4p=="

/* radosgw: no namespace, no ResponseMetadata, 19/39-character keys, nanoseconds. */
static const char rgw_sts_ok[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
	"<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>"
	"<SubjectFromWebIdentityToken>system:serviceaccount:demo:reader"
	"</SubjectFromWebIdentityToken><Audience>sts.amazonaws.com</Audience>"
	"<AssumedRoleUser><Arn>arn:aws:sts:::assumed-role/s3-reader/irsafs-1</Arn>"
	"<AssumedRoleId></AssumedRoleId></AssumedRoleUser>"
	"<Credentials><AccessKeyId>0555b35654ad1656d80</AccessKeyId>"
	"<Expiration>2026-11-28T16:00:00.123456789Z</Expiration>"
	"<SecretAccessKey>h7GhxuBLTrlhVUyxSPUKUV8r/2EI4ngqJxD7iBd</SecretAccessKey>"
	"<SessionToken>" RGW_TOKEN "</SessionToken></Credentials>"
	"<PackedPolicySize>0</PackedPolicySize><Provider>http://127.0.0.1:8088</Provider>"
	"</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";

/* AWS: namespaced, indented, with the fields radosgw does not send. */
static const char aws_sts_ok[] =
	"<AssumeRoleWithWebIdentityResponse " STS_NS ">\n <AssumeRoleWithWebIdentityResult>\n  "
	"<SubjectFromWebIdentityToken>system:serviceaccount:ns:sa</SubjectFromWebIdentityToken>\n"
	"  <Audience>sts.amazonaws.com</Audience>\n  <AssumedRoleUser>\n   "
	"<Arn>arn:aws:sts::111122223333:assumed-role/reader/s-1</Arn>\n   <AssumedRoleId>"
	"AROAEXAMPLEID:s-1</AssumedRoleId>\n  </AssumedRoleUser>\n  <Credentials>\n   "
	"<SessionToken>IQoJb3JpZ2luX2VjEXAMPLE+/=</SessionToken>\n   <SecretAccessKey>"
	"EXAMPLEsecretEXAMPLEsecretEXAMPLEsecret1</SecretAccessKey>\n   <Expiration>"
	"2014-10-24T23:00:23Z</Expiration>\n   <AccessKeyId>ASIAEXAMPLEIRSAFS001</AccessKeyId>\n"
	"  </Credentials>\n  <SourceIdentity>SourceIdentityValue</SourceIdentity>\n  "
	"<PackedPolicySize>6</PackedPolicySize>\n  <Provider>arn:aws:iam::111122223333:"
	"oidc-provider/oidc.eks.example</Provider>\n </AssumeRoleWithWebIdentityResult>\n "
	"<ResponseMetadata><RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>"
	"</ResponseMetadata>\n</AssumeRoleWithWebIdentityResponse>\n";

static const struct sts_want {
	const char *doc;	/* inline document, or a fixture path when from_fixture */
	int from_fixture;
	const char *akid, *secret, *token;
	long long sec, nsec;
	const char *arn, *subject, *audience, *provider; /* "" for NULL */
} sts_ok[] = {
	{ rgw_sts_ok, 0, "0555b35654ad1656d80", "h7GhxuBLTrlhVUyxSPUKUV8r/2EI4ngqJxD7iBd",
	  RGW_TOKEN, 1795881600, 123456789, "arn:aws:sts:::assumed-role/s3-reader/irsafs-1",
	  "system:serviceaccount:demo:reader", "sts.amazonaws.com", "http://127.0.0.1:8088" },
	{ aws_sts_ok, 0, "ASIAEXAMPLEIRSAFS001", "EXAMPLEsecretEXAMPLEsecretEXAMPLEsecret1",
	  "IQoJb3JpZ2luX2VjEXAMPLE+/=", 1414191623, 0,
	  "arn:aws:sts::111122223333:assumed-role/reader/s-1", "system:serviceaccount:ns:sa",
	  "sts.amazonaws.com", "arn:aws:iam::111122223333:oidc-provider/oidc.eks.example" },
	/* aws-c-auth's success body: no namespace, credentials in an unusual order */
	{ "sts/aws-c-auth/web_identity--s_good_response.xml", 1, "SuccessfulAccessKey",
	  "SuccessfulSecret", "TokenSuccess", 1582610611, 0,
	  "arn:aws:sts::123456789012:assumed-role/FederatedWebIdentityRole/app1", "", "",
	  "www.amazon.com" },
};

static void check_sts(const struct sts_want *w, const char *body, size_t len)
{
	struct sts_result r;

	CHECK_INT(sts_n(body, len, &r), 0);
	CHECK_STR(r.access_key_id, w->akid);
	CHECK_STR(r.secret_access_key, w->secret);
	CHECK_STR(r.session_token, w->token);
	CHECK(r.expiration.tv_sec == w->sec && r.expiration.tv_nsec == w->nsec);
	CHECK_STR(OPT(r.assumed_role_arn), w->arn);
	CHECK_STR(OPT(r.subject), w->subject);
	CHECK_STR(OPT(r.audience), w->audience);
	CHECK_STR(OPT(r.provider), w->provider);
	sts_result_cleanup(&r);
	CHECK(!r.access_key_id && !r.secret_access_key && !r.session_token && !r.provider);
	sts_result_cleanup(&r); /* twice is harmless */
	/* credentials are never an error document or a listing */
	CHECK_INT(run_error(body, len), -EPROTO);
	CHECK_INT(run_list(body, len), -EPROTO);
}

#define CREDS_HEAD "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>" \
	"<Credentials>"
#define CREDS_TAIL "</Credentials></AssumeRoleWithWebIdentityResult>" \
	"</AssumeRoleWithWebIdentityResponse>"
#define AKID "<AccessKeyId>AKID</AccessKeyId>"
#define SECRET "<SecretAccessKey>s3cr3t</SecretAccessKey>"
#define TOKEN "<SessionToken>tok</SessionToken>"
#define EXP "<Expiration>2026-11-28T16:00:00Z</Expiration>"

static const struct sts_case {
	const char *why, *doc;
	int rc;
} sts_cases[] = {
	{ "minimal", CREDS_HEAD AKID SECRET TOKEN EXP CREDS_TAIL, 0 },
	{ "whitespace around values is trimmed", CREDS_HEAD "<AccessKeyId>\n  AKID\n</AccessKeyId>"
	  "<SecretAccessKey> s3cr3t </SecretAccessKey><SessionToken>\ttok\t</SessionToken>"
	  "<Expiration> 2026-11-28T16:00:00Z\n</Expiration>" CREDS_TAIL, 0 },
	{ "CDATA", CREDS_HEAD AKID "<SecretAccessKey><![CDATA[s3cr3t]]></SecretAccessKey>" TOKEN EXP
	  CREDS_TAIL, 0 },
	{ "prefixed namespace", "<s:AssumeRoleWithWebIdentityResponse xmlns:s=\"urn:x\">"
	  "<s:AssumeRoleWithWebIdentityResult><s:Credentials><s:AccessKeyId>AKID</s:AccessKeyId>"
	  "<s:SecretAccessKey>s3cr3t</s:SecretAccessKey><s:SessionToken>tok</s:SessionToken>"
	  "<s:Expiration>2026-11-28T16:00:00Z</s:Expiration></s:Credentials>"
	  "</s:AssumeRoleWithWebIdentityResult></s:AssumeRoleWithWebIdentityResponse>", 0 },
	{ "no SessionToken", CREDS_HEAD AKID SECRET EXP CREDS_TAIL, -EPROTO },
	{ "empty AccessKeyId", CREDS_HEAD "<AccessKeyId> </AccessKeyId>" SECRET TOKEN EXP
	  CREDS_TAIL, -EPROTO },
	{ "no Expiration", CREDS_HEAD AKID SECRET TOKEN CREDS_TAIL, -EPROTO },
	{ "bad Expiration", CREDS_HEAD AKID SECRET TOKEN "<Expiration>tomorrow</Expiration>"
	  CREDS_TAIL, -EPROTO },
	{ "space inside a secret", CREDS_HEAD AKID "<SecretAccessKey>s3 cr3t</SecretAccessKey>"
	  TOKEN EXP CREDS_TAIL, -EPROTO },
	{ "CR LF in the token (header injection)", CREDS_HEAD AKID SECRET
	  "<SessionToken>tok&#13;&#10;X-Evil: 1</SessionToken>" EXP CREDS_TAIL, -EPROTO },
	{ "bare Result without the Response", "<AssumeRoleWithWebIdentityResult><Credentials>"
	  AKID SECRET TOKEN EXP "</Credentials></AssumeRoleWithWebIdentityResult>", -EPROTO },
	{ "another action", "<AssumeRoleResponse><AssumeRoleResult><Credentials>" AKID SECRET TOKEN
	  EXP "</Credentials></AssumeRoleResult></AssumeRoleResponse>", -EPROTO },
};

/* The inline successes (radosgw, AWS), then the edge cases. */
TEST(sts_cases)
{
	struct sts_result r;
	size_t i;
	int rc;

	for (i = 0; i < N(sts_ok); i++)
		if (!sts_ok[i].from_fixture)
			check_sts(&sts_ok[i], sts_ok[i].doc, strlen(sts_ok[i].doc));
	for (i = 0; i < N(sts_cases); i++) {
		rc = sts_n(sts_cases[i].doc, strlen(sts_cases[i].doc), &r);
		if (rc != sts_cases[i].rc)
			fprintf(stderr, "sts case \"%s\": got %d\n", sts_cases[i].why, rc);
		CHECK_INT(rc, sts_cases[i].rc);
		if (!rc) {
			CHECK_STR(r.access_key_id, "AKID");
			CHECK_STR(r.secret_access_key, "s3cr3t");
			CHECK_STR(r.session_token, "tok");
			CHECK_INT(r.expiration.tv_sec, 1795881600);
		}
		sts_result_cleanup(&r);
	}
}

/* The good fixture's body in three reads: only the whole is a document. */
TEST(sts_fixtures)
{
	static const char *const parts[] = {
		"sts/aws-c-auth/web_identity--s_good_response_first_part.xml",
		"sts/aws-c-auth/web_identity--s_good_response_second_part.xml",
		"sts/aws-c-auth/web_identity--s_good_response_third_part.xml",
	};
	struct buf whole;
	size_t i, len;
	char *body;

	buf_init(&whole, XML_MAX_BODY);
	for (i = 0; i < N(parts); i++) {
		if (!(body = read_fixture(parts[i], &len)))
			continue;
		CHECK_INT(buf_append(&whole, body, len), 0);
		if (i < N(parts) - 1)
			CHECK_INT(run_sts(whole.data, whole.len), -EPROTO);
		free(body);
	}
	check_sts(&sts_ok[2], whole.data, whole.len);
	buf_cleanup(&whole);
}

/* botocore's expected parse (the .json); list fixtures not named here hold no objects */
static const struct list_want {
	const char *path, *key, *etag;
	long long size, mtime;
} list_objs[] = {
	{ "botocore-response-parsing/responses_s3-list-objects.xml", "key1",
	  "\"1d921b22129502cbbe5cbaf2c8bac682\"", 10000, 1357854309 },
	{ "botocore-response-parsing/responses_s3-list-objects.xml", "key2",
	  "\"1d921b22129502cbbe5cbaf2c8bac682\"", 1234, 1357857909 },
	{ "s3-list/botocore/test_response--L41--ListBucketResult.xml", "test.png",
	  "\"00000000000000000000000000000000\"", 6702, 1393693600 },
};

/* ---- every fixture: exactly the right parser accepts it ---------------------------------- */

static size_t sweep_matched;

/* Check what the table says about this fixture, if anything. */
static void sweep_values(const char *rel, const char *body, size_t len)
{
	struct store_page p;
	struct s3_error e;
	size_t i, n = 0;

	for (i = 0; i < N(fixture_errors); i++) {
		if (strcmp(rel, fixture_errors[i].doc))
			continue;
		sweep_matched++;
		err_clear(&e);
		CHECK_INT(xml_parse_error(body, len, &e), 0);
		check_error(&fixture_errors[i], &e);
		if (strstr(rel, "long_error")) /* cut to the field, still terminated */
			CHECK(strlen(e.message) == sizeof(e.message) - 1 &&
			      !strncmp(e.message, "really long error really", 24));
	}
	for (i = 0; i < N(sts_ok); i++) {
		if (!sts_ok[i].from_fixture || strcmp(rel, sts_ok[i].doc))
			continue;
		sweep_matched++;
		check_sts(&sts_ok[i], body, len);
	}
	if (list_n(body, len, &p))
		return;
	for (i = 0; i < N(list_objs); i++) {
		if (strcmp(rel, list_objs[i].path))
			continue;
		sweep_matched++;
		check_obj(&p, n++, list_objs[i].key, list_objs[i].size, list_objs[i].etag,
			  list_objs[i].mtime, "STANDARD");
	}
	CHECK(p.nobjects == n && !p.nprefixes && !p.dropped && !p.truncated && !p.next_token);
	store_page_cleanup(&p);
}

static void sweep_one(const char *rel)
{
	int failures = harness_failures, error, list, sts;
	size_t len;
	char *body;

	if (!(body = read_fixture(rel, &len)))
		return;
	error = !strncmp(rel, "s3-errors/", 10) || strstr(rel, "/errors_") ||
		strstr(rel, "_error_response");
	list = !strncmp(rel, "s3-list/", 8) || strstr(rel, "responses_s3-list");
	sts = strstr(rel, "s_good_response.xml") != NULL;
	/* the rest: partial reads, the wrong document, another action's credentials */
	CHECK_INT(run_doc(body, len), strstr(rel, "_good_response_") ? -EPROTO : 0);
	CHECK_INT(run_error(body, len), error ? 0 : -EPROTO);
	CHECK_INT(run_list(body, len), list ? 0 : -EPROTO);
	CHECK_INT(run_sts(body, len), sts ? 0 : -EPROTO);
	sweep_values(rel, body, len);
	if (harness_failures != failures)
		fprintf(stderr, "  in fixture %s\n", rel);
	free(body);
}

TEST(fixtures_sweep)
{
	static const char *const patterns[] = { "*/*.xml", "*/*/*.xml" };
	size_t i, skip = strlen(fixtures) + 1;
	char pattern[PATH_MAX];
	glob_t g;

	memset(&g, 0, sizeof(g));
	for (i = 0; i < N(patterns); i++) {
		snprintf(pattern, sizeof(pattern), "%s/%s", fixtures, patterns[i]);
		glob(pattern, i ? GLOB_APPEND : 0, NULL, &g);
	}
	CHECK(g.gl_pathc >= 43);
	for (i = 0; i < g.gl_pathc; i++)
		sweep_one(g.gl_pathv[i] + skip);
	globfree(&g);
	/* no expectation without its file */
	CHECK_INT(sweep_matched, N(fixture_errors) + N(list_objs) + 1);
}

static const char rgw_list_page[] = RGW_LIST_PAGE;
static const char url_list_page[] = URL_LIST_PAGE;

/* ---- hostile input ----------------------------------------------------------------------- */

static const struct parser {
	const char *name;
	int (*run)(const char *s, size_t n);
	const char *head, *tail;	/* a valid document around one text field */
} parsers[] = {
	{ "xml_parse", run_doc, "<Error><Code>", "</Code></Error>" },
	{ "xml_parse_error", run_error, "<Error><Code>", "</Code><Message>m</Message></Error>" },
	{ "s3_xml_parse_list", run_list,
	  "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>",
	  "</Key><Size>1</Size></Contents></ListBucketResult>" },
	{ "sts_xml_parse_assume_role", run_sts, CREDS_HEAD AKID "<SecretAccessKey>",
	  "</SecretAccessKey>" TOKEN EXP CREDS_TAIL },
};

/* prolog + head + field + tail + pad spaces */
static void compose(struct buf *b, const struct parser *p, const char *prolog, const char *field,
		    size_t pad)
{
	static const char spaces[] = "                                                ";
	size_t n;

	buf_init(b, (size_t)-2);
	buf_puts(b, prolog);
	buf_puts(b, p->head);
	buf_puts(b, field);
	buf_puts(b, p->tail);
	for (; pad; pad -= n) {
		n = pad < sizeof(spaces) - 1 ? pad : sizeof(spaces) - 1;
		buf_append(b, spaces, n);
	}
}

#define TEN(a) "&" a ";&" a ";&" a ";&" a ";&" a ";&" a ";&" a ";&" a ";&" a ";&" a ";"
#define LOL(n, a) "<!ENTITY " n " \"" TEN(a) "\">"

static const struct hostile {
	const char *name, *prolog, *field;
} hostile[] = {
	{ "billion laughs", "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY l0 \"lol\">"
	  LOL("l1", "l0") LOL("l2", "l1") LOL("l3", "l2") LOL("l4", "l3") LOL("l5", "l4")
	  LOL("l6", "l5") LOL("l7", "l6") LOL("l8", "l7") LOL("l9", "l8")
	  "<!ENTITY e \"&l9;\">]>", "&e;" },
	{ "external entity", "<!DOCTYPE r [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>", "&e;" },
	{ "parameter entity", "<!DOCTYPE r [<!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;]>",
	  "x" },
	{ "external DTD", "<!DOCTYPE r PUBLIC \"-//X//DTD X//EN\" \"http://127.0.0.1:9/x.dtd\">",
	  "x" },
	{ "harmless internal entity", "<!DOCTYPE r [<!ENTITY e \"fine\">]>", "&e;" },
	{ "bare DOCTYPE", "<!DOCTYPE r>", "x" },
	{ "undeclared entity", "", "&e;" },
	{ "NUL character reference", "", "a&#0;b" },
	{ "unclosed element", "", "<x>" },
	{ "second root", "<r/>", "x" },
};

/* Each parser with: each hostile prolog and field, nesting, the size cap, no input. */
TEST(hostile_documents)
{
	struct buf b, deep;
	size_t i, j, base;
	int k;

	buf_init(&deep, (size_t)-2);
	for (k = 0; k < 2 * 10000; k++)
		buf_puts(&deep, k < 10000 ? "<a>" : "</a>");
	for (j = 0; j < N(parsers); j++) {
		/* control: the same document with a plain field is accepted */
		compose(&b, &parsers[j], "", "x", 0);
		base = b.len;
		CHECK_INT(parsers[j].run(b.data, b.len), 0);
		buf_cleanup(&b);
		for (i = 0; i < N(hostile); i++) {
			compose(&b, &parsers[j], hostile[i].prolog, hostile[i].field, 0);
			if (parsers[j].run(b.data, b.len) != -EPROTO)
				fprintf(stderr, "%s accepted \"%s\"\n", parsers[j].name,
					hostile[i].name);
			CHECK_INT(parsers[j].run(b.data, b.len), -EPROTO);
			buf_cleanup(&b);
		}
		/* 10,000 deep: libxml2's own limit (256 without XML_PARSE_HUGE) stops it */
		compose(&b, &parsers[j], "", deep.data, 0);
		CHECK_INT(parsers[j].run(b.data, b.len), -EPROTO);
		buf_cleanup(&b);
		compose(&b, &parsers[j], "", "x", XML_MAX_BODY - base);
		CHECK_INT(parsers[j].run(b.data, b.len), 0);
		buf_append(&b, " ", 1); /* XML_MAX_BODY + 1 */
		CHECK_INT(parsers[j].run(b.data, b.len), -EPROTO);
		buf_cleanup(&b);
		CHECK_INT(parsers[j].run("", 0), -EPROTO);
		CHECK_INT(parsers[j].run(" \n", 2), -EPROTO);
		CHECK_INT(parsers[j].run("\0", 1), -EPROTO);
	}
	buf_cleanup(&deep);
	CHECK(xml_parse(NULL, 0) == NULL && xml_parse(NULL, 10) == NULL);
	/* the depth control: 200 deep is fine */
	buf_init(&deep, (size_t)-2);
	for (k = 0; k < 2 * 200; k++)
		buf_puts(&deep, k < 200 ? "<a>" : "</a>");
	CHECK_INT(run_doc(deep.data, deep.len), 0);
	buf_cleanup(&deep);
}

/* Every cut before the root's closing '>' must be refused, by every parser. */
TEST(hostile_truncated)
{
	static const char *const docs[] = { rgw_list_page, url_list_page, rgw_sts_ok, aws_sts_ok };
	size_t i, j, k, end;

	for (i = 0; i < N(docs); i++) {
		end = strrchr(docs[i], '>') - docs[i];
		for (k = 0; k <= end; k++)
			for (j = 0; j < N(parsers); j++)
				CHECK_INT(parsers[j].run(docs[i], k), -EPROTO);
	}
	for (i = 0; i < N(inline_errors); i++) {
		if (!inline_errors[i].code)
			continue;
		end = strrchr(inline_errors[i].doc, '>') - inline_errors[i].doc;
		for (k = 0; k <= end; k++)
			CHECK_INT(run_error(inline_errors[i].doc, k), -EPROTO);
	}
}

/* libxml2 must not print: the daemon's stderr is its log. */
TEST(quiet)
{
	FILE *tmp = tmpfile();
	int saved = dup(2);
	struct buf b;
	size_t i, j;

	fflush(stderr);
	CHECK(tmp && saved >= 0 && dup2(fileno(tmp), 2) == 2);
	for (j = 0; j < N(parsers); j++) {
		for (i = 0; i < N(hostile); i++) {
			compose(&b, &parsers[j], hostile[i].prolog, hostile[i].field, 0);
			parsers[j].run(b.data, b.len);
			buf_cleanup(&b);
		}
		parsers[j].run(url_list_page, 100);
	}
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	CHECK(tmp && ftell(tmp) == 0);
	if (tmp)
		fclose(tmp);
}

/*
 * `test_xml`: the inline tests. `test_xml fixtures`: the shared fixtures only,
 * 77 (skipped, with the reason) when they are not there.
 */
int main(int argc, char **argv)
{
	const char *root = getenv("IRSAFS_FIXTURES");
	struct stat st;
	int rc;

#ifdef SHARED_FIXTURES_DIR
	if (!root || !*root)
		root = SHARED_FIXTURES_DIR;
#endif
	if (root && *root && !stat(root, &st) && S_ISDIR(st.st_mode))
		fixtures = root;
	xml_global_init();

	if (argc > 1 && !strcmp(argv[1], "fixtures")) {
		if (fixtures) {
			RUN(sts_fixtures);
			RUN(fixtures_sweep);
		} else {
			fprintf(stderr, "test_xml: fixtures %s not found (set IRSAFS_FIXTURES to "
				"../shared/fixtures/xml): skipped\n",
				root && *root ? root : "(no directory set)");
			harness_skip("no fixtures: sts_fixtures, fixtures_sweep");
		}
		rc = harness_done();
		xmlCleanupParser();
		return rc;
	}
	RUN(helpers);
	RUN(errors_inline);
	RUN(errors_keep_header_fields);
	RUN(sts_cases);
	RUN(hostile_documents);
	RUN(hostile_truncated);
	RUN(quiet);
	xmlCleanupParser();
	return harness_done();
}
