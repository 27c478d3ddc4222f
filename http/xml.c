/*
 * xml: libxml2 behind a size cap, with no DTDs, no entities and no network.
 *
 * Every document from S3 or STS goes through xml_parse(). The rules, and why:
 *
 *  - The size cap is checked before libxml2 sees a byte, so a hostile peer
 *    costs at most XML_MAX_BODY of parsing.
 *  - No document S3 or STS sends has a DOCTYPE, so any DOCTYPE is refused.
 *    A SAX hook stops the parser the moment it meets one, before the internal
 *    subset (where billion-laughs and external entities live) is read; the
 *    check of doc->intSubset/extSubset afterwards is the second lock on the
 *    same door.
 *  - XML_PARSE_NONET, and never XML_PARSE_NOENT or XML_PARSE_DTDLOAD, so
 *    nothing is fetched or expanded even if the hook were bypassed.
 *  - XML_PARSE_HUGE is never set: libxml2 then keeps its own limits, nesting
 *    depth 256 among them, which is what stops a 10,000-deep document.
 *  - libxml2 must not write to stderr: mount tests treat "error" lines there
 *    as failures, and a peer should not be able to fill our logs.
 *    XML_PARSE_NOERROR and NOWARNING mute the default handlers; a per-context
 *    no-op structured handler also wins over any process-wide one, which we
 *    could not set without racing other threads.
 *
 * Element lookups match the local name only, so the S3 and STS namespaces
 * (and their absence, as radosgw sends) read alike.
 */
#include "http/xml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/xmlerror.h>

#include "core/err.h"
#include "core/strutil.h"

#define XML_PARSE_FLAGS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)

void xml_global_init(void)
{
	xmlInitParser();
}

static void xml_quiet(void *ctx, xmlErrorPtr err)
{
	(void)ctx;
	(void)err;
}

/* Any DOCTYPE: mark the document broken and stop before its subset is read. */
static void xml_refuse_doctype(void *ctx, const xmlChar *name, const xmlChar *external_id,
			       const xmlChar *system_id)
{
	xmlParserCtxtPtr ctxt = ctx;

	(void)name;
	(void)external_id;
	(void)system_id;
	ctxt->wellFormed = 0;
	xmlStopParser(ctxt);
}

xmlDocPtr xml_parse(const char *body, size_t len)
{
	xmlParserCtxtPtr ctxt;
	xmlDocPtr doc;

	if (!body || len == 0 || len > XML_MAX_BODY)
		return NULL;
	ctxt = xmlNewParserCtxt();
	if (!ctxt)
		return NULL;
	/* The context owns its own SAX handler, so these stay per call. */
	ctxt->sax->internalSubset = xml_refuse_doctype;
	ctxt->sax->serror = xml_quiet;
	doc = xmlCtxtReadMemory(ctxt, body, (int)len, NULL, NULL, XML_PARSE_FLAGS);
	if (doc && (!ctxt->wellFormed || doc->intSubset || doc->extSubset ||
		    !xmlDocGetRootElement(doc))) {
		xmlFreeDoc(doc);
		doc = NULL;
	}
	xmlFreeParserCtxt(ctxt);
	return doc;
}

static int xml_is(xmlNodePtr node, const char *name)
{
	return node && node->type == XML_ELEMENT_NODE &&
	       xmlStrEqual(node->name, (const xmlChar *)name);
}

xmlNodePtr xml_root(xmlDocPtr doc, const char *name)
{
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;

	return xml_is(root, name) ? root : NULL;
}

xmlNodePtr xml_child(xmlNodePtr parent, const char *name)
{
	xmlNodePtr c;

	if (!parent)
		return NULL;
	for (c = parent->children; c; c = c->next)
		if (xml_is(c, name))
			return c;
	return NULL;
}

static int is_text(xmlNodePtr c)
{
	return (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content;
}

/*
 * An element's text is its direct text and CDATA children. S3 and STS never
 * put markup inside a value; reading only direct children keeps a hostile
 * document from making us walk (or copy) a whole subtree per lookup.
 */
static size_t text_len(xmlNodePtr node)
{
	size_t n = 0;
	xmlNodePtr c;

	for (c = node->children; c; c = c->next)
		if (is_text(c))
			n += strlen((const char *)c->content);
	return n;
}

/* Copy at most outlen - 1 bytes of node's text into out; outlen > 0. */
static size_t text_copy(xmlNodePtr node, char *out, size_t outlen)
{
	size_t w = 0, n;
	xmlNodePtr c;

	for (c = node->children; c && w < outlen - 1; c = c->next) {
		if (!is_text(c))
			continue;
		n = strlen((const char *)c->content);
		if (n > outlen - 1 - w)
			n = outlen - 1 - w;
		memcpy(out + w, c->content, n);
		w += n;
	}
	out[w] = '\0';
	return w;
}

char *xml_node_text(xmlNodePtr node)
{
	size_t n;
	char *s;

	if (!node)
		return NULL;
	n = text_len(node);
	s = malloc(n + 1);
	if (s)
		text_copy(node, s, n + 1);
	return s;
}

char *xml_child_text(xmlNodePtr parent, const char *name)
{
	return xml_node_text(xml_child(parent, name));
}

/* Length of s[0..k) without a UTF-8 sequence cut short at its end. */
static size_t utf8_cut(const char *s, size_t k)
{
	size_t i = k, need;
	unsigned char lead;

	while (i > 0 && k - i < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
		i--;
	if (i == 0)
		return k;
	lead = (unsigned char)s[i - 1];
	if (lead < 0xc0)
		return k;
	need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
	return i - 1 + need > k ? i - 1 : k;
}

int xml_child_copy(xmlNodePtr parent, const char *name, char *out, size_t outlen)
{
	xmlNodePtr child = xml_child(parent, name);
	size_t n;

	if (outlen == 0)
		return child ? 0 : -ENOENT;
	if (!child) {
		out[0] = '\0';
		return -ENOENT;
	}
	n = text_copy(child, out, outlen);
	/* A message cut mid-character would put broken UTF-8 into our logs. */
	if (n < text_len(child))
		out[utf8_cut(out, n)] = '\0';
	return 0;
}

/*
 * Error fields end up in log lines: flatten control characters (a peer could
 * otherwise forge log lines with a newline) and trim the indentation some
 * servers wrap around <Message>. Returns 0 when the field is present and
 * non-empty.
 */
static int copy_field(xmlNodePtr parent, const char *name, char *out, size_t outlen)
{
	char *p;

	if (xml_child_copy(parent, name, out, outlen))
		return -ENOENT;
	for (p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	str_trim(out);
	return out[0] ? 0 : -ENOENT;
}

/*
 * A region may end up in a host name, so only take one that looks like a
 * region (letters, digits, '-' and '_') and fits whole; a cut one would send
 * us to the wrong place.
 */
static int region_ok(const char *s, size_t max)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_");

	return n > 0 && s[n] == '\0' && n < max;
}

/*
 * <Code>, <Message>, <StorageClass> and <AccessTier> always describe this
 * body and are overwritten (empty when absent). The request ids and region
 * are only overwritten when the body has them: the HTTP layer may already have taken them from the
 * x-amz-request-id, x-amz-id-2 and x-amz-bucket-region headers, and an <Error> without
 * them should not erase that. <Endpoint> (PermanentRedirect) is not mapped to
 * a region: its host name format varies (s3-fips, dualstack, radosgw) and the
 * header is the reliable source.
 */
int xml_parse_error(const char *body, size_t len, struct s3_error *e)
{
	char rid[sizeof(e->request_id)], region[sizeof(e->region) + 1], hid[sizeof(e->host_id)];
	xmlNodePtr root, err = NULL;
	xmlDocPtr doc;

	doc = xml_parse(body, len);
	if (!doc)
		return -EPROTO;
	root = xmlDocGetRootElement(doc);
	if (xml_is(root, "Error"))
		err = root;
	else if (xml_is(root, "ErrorResponse"))
		err = xml_child(root, "Error");
	if (!err) {
		xmlFreeDoc(doc);
		return -EPROTO;
	}
	copy_field(err, "Code", e->code, sizeof(e->code));
	copy_field(err, "Message", e->message, sizeof(e->message));
	/* STS puts RequestId beside <Error>, S3 inside it. */
	if (!copy_field(err, "RequestId", rid, sizeof(rid)) ||
	    (err != root && !copy_field(root, "RequestId", rid, sizeof(rid))))
		memcpy(e->request_id, rid, sizeof(rid));
	if (!copy_field(err, "Region", region, sizeof(region)) &&
	    region_ok(region, sizeof(e->region)))
		memcpy(e->region, region, sizeof(e->region));
	/* x-amz-id-2 again, and what InvalidObjectState says about the object. */
	if (copy_field(err, "HostId", hid, sizeof(hid)) == 0)
		memcpy(e->host_id, hid, sizeof(hid));
	copy_field(err, "StorageClass", e->storage_class, sizeof(e->storage_class));
	copy_field(err, "AccessTier", e->access_tier, sizeof(e->access_tier));
	xmlFreeDoc(doc);
	return 0;
}
