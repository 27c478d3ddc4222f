/*
 * sts_xml: read the credentials out of an AssumeRoleWithWebIdentity response.
 *
 * Only the full <AssumeRoleWithWebIdentityResponse> envelope is accepted, as
 * both AWS (namespaced) and radosgw (no namespace) send it. A bare
 * <AssumeRoleWithWebIdentityResult>, or the <Credentials> of some other
 * action, is refused: credentials are only taken from the document that
 * answers the request we made.
 *
 * The three credential strings go into HTTP headers and the signature, so
 * each must be one run of printable ASCII with no spaces (a CR/LF in a session
 * token would be a header injection). Surrounding whitespace is trimmed, and
 * no key or secret length is assumed: radosgw's are 19 and 39 characters.
 *
 * Secrets live in three places while we parse: the caller's body, the libxml2
 * document and our copies. The caller wipes the body; our copies are wiped by
 * sts_result_cleanup(). For the document we overwrite the text nodes we took
 * the secrets from and free it before returning. That narrows the window but
 * does not close it: libxml2's copy of its input buffer is freed unwiped, and
 * only a custom global allocator could reach it.
 */
#include "auth/sts_xml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/strutil.h"
#include "http/xml.h"

static void free_secret(char **p)
{
	if (*p) {
		OPENSSL_cleanse(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

void sts_result_cleanup(struct sts_result *r)
{
	if (!r)
		return;
	free_secret(&r->access_key_id);
	free_secret(&r->secret_access_key);
	free_secret(&r->session_token);
	free(r->assumed_role_arn);
	free(r->subject);
	free(r->audience);
	free(r->provider);
	memset(r, 0, sizeof(*r));
}

/* Printable ASCII without spaces: safe in a header and in a signature. */
static int credential_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (!*p)
		return 0;
	for (; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			return 0;
	return 1;
}

/*
 * Take one required credential. *out is set before it is checked, so a
 * refused value is still wiped by sts_result_cleanup(). Trimming moves the
 * string left; the bytes it leaves behind are wiped here, since cleanup only
 * wipes up to the NUL.
 */
static int take_credential(xmlNodePtr creds, const char *name, char **out)
{
	xmlNodePtr node = xml_child(creds, name);
	size_t before;

	if (!node)
		return -EPROTO;
	*out = xml_node_text(node);
	if (!*out)
		return -ENOMEM;
	before = strlen(*out);
	str_trim(*out);
	OPENSSL_cleanse(*out + strlen(*out), before - strlen(*out));
	return credential_ok(*out) ? 0 : -EPROTO;
}

/* Take an optional field; 0 when present or absent, -ENOMEM. */
static int take_optional(xmlNodePtr parent, const char *name, char **out)
{
	xmlNodePtr node = xml_child(parent, name);

	if (!node)
		return 0;
	*out = xml_node_text(node);
	if (!*out)
		return -ENOMEM;
	str_trim(*out);
	return 0;
}

/*
 * Overwrite the text of element `name` in the document. Strings interned in
 * the document's dictionary are shared and short (libxml2 interns only
 * blanks and values of three bytes or fewer), so they are left alone.
 */
static void wipe_text(xmlDocPtr doc, xmlNodePtr parent, const char *name)
{
	xmlNodePtr node = xml_child(parent, name), c;

	if (!node)
		return;
	for (c = node->children; c; c = c->next) {
		if ((c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE) ||
		    !c->content)
			continue;
		if (doc->dict && xmlDictOwns(doc->dict, c->content) == 1)
			continue;
		OPENSSL_cleanse(c->content, strlen((const char *)c->content));
	}
}

int sts_xml_parse_assume_role(const char *body, size_t len, struct sts_result *out)
{
	xmlNodePtr root, result, creds = NULL;
	char *expiration = NULL;
	xmlDocPtr doc;
	int rc = -EPROTO;

	memset(out, 0, sizeof(*out));
	doc = xml_parse(body, len);
	if (!doc)
		return -EPROTO;
	root = xml_root(doc, "AssumeRoleWithWebIdentityResponse");
	result = xml_child(root, "AssumeRoleWithWebIdentityResult");
	creds = xml_child(result, "Credentials");
	if (!creds)
		goto out;

	rc = take_credential(creds, "AccessKeyId", &out->access_key_id);
	if (!rc)
		rc = take_credential(creds, "SecretAccessKey", &out->secret_access_key);
	if (!rc)
		rc = take_credential(creds, "SessionToken", &out->session_token);
	if (rc)
		goto out;

	expiration = xml_child_text(creds, "Expiration");
	if (!expiration || time_parse_iso8601(str_trim(expiration), &out->expiration)) {
		rc = -EPROTO;
		goto out;
	}

	rc = take_optional(xml_child(result, "AssumedRoleUser"), "Arn", &out->assumed_role_arn);
	if (!rc)
		rc = take_optional(result, "SubjectFromWebIdentityToken", &out->subject);
	if (!rc)
		rc = take_optional(result, "Audience", &out->audience);
	if (!rc)
		rc = take_optional(result, "Provider", &out->provider);

out:
	if (creds) {
		wipe_text(doc, creds, "SecretAccessKey");
		wipe_text(doc, creds, "SessionToken");
	}
	xmlFreeDoc(doc);
	free(expiration);
	if (rc)
		sts_result_cleanup(out);
	return rc;
}
