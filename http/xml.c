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
 *
 * xml_stream_parse() keeps every rule above but builds no tree: libxml2's
 * push parser is fed the body in 64 KiB chunks and calls our SAX handlers,
 * which keep one element's text at most (XML_TEXT_MAX). The depth limit is
 * ours there (XML_MAX_DEPTH): libxml2 counts depth only while building a
 * tree, and without one a deep document would still grow its name stack.
 */
#include "http/xml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/xmlerror.h>

#include "core/buf.h"
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

/* ---- streaming ---------------------------------------------------------------------------- */

#define XML_STREAM_CHUNK (64 * 1024)

struct stream {
	const struct xml_stream *h;
	xmlParserCtxtPtr ctxt;
	int depth;
	int collect_depth;		/* depth of the element whose text is kept; 0: none */
	struct buf text;		/* its text so far, at most XML_TEXT_MAX */
	size_t text_len;		/* its full length */
	int rc;				/* first failure */
};

static void stream_fail(struct stream *st, int rc)
{
	if (!st->rc)
		st->rc = rc;
	xmlStopParser(st->ctxt);
}

static void stream_start(void *ctx, const xmlChar *localname, const xmlChar *prefix,
			 const xmlChar *uri, int nb_namespaces, const xmlChar **namespaces,
			 int nb_attributes, int nb_defaulted, const xmlChar **attributes)
{
	struct stream *st = ctx;
	int rc;

	(void)prefix;
	(void)uri;
	(void)nb_namespaces;
	(void)namespaces;
	(void)nb_attributes;
	(void)nb_defaulted;
	(void)attributes;
	if (st->rc)
		return;
	if (++st->depth > XML_MAX_DEPTH) {
		stream_fail(st, -EPROTO);
		return;
	}
	rc = st->h->open(st->h->ctx, (const char *)localname, st->depth);
	if (rc < 0) {
		stream_fail(st, rc);
	} else if (rc == 1 && !st->collect_depth) {
		st->collect_depth = st->depth;
		buf_reset(&st->text);
		st->text_len = 0;
	}
}

static void stream_end(void *ctx, const xmlChar *localname, const xmlChar *prefix,
		       const xmlChar *uri)
{
	struct stream *st = ctx;
	const char *text = NULL;
	size_t len = 0;
	int rc;

	(void)prefix;
	(void)uri;
	if (st->rc)
		return;
	if (st->collect_depth == st->depth) {
		len = st->text_len;
		text = len <= XML_TEXT_MAX ? (st->text.data ? st->text.data : "") : NULL;
		st->collect_depth = 0;
	}
	rc = st->h->close(st->h->ctx, (const char *)localname, st->depth, text, len);
	st->depth--;
	if (rc < 0)
		stream_fail(st, rc);
}

/* Text and CDATA: kept only when they are direct children of the collected element. */
static void stream_text(void *ctx, const xmlChar *ch, int len)
{
	struct stream *st = ctx;

	if (st->rc || !st->collect_depth || st->depth != st->collect_depth || len <= 0)
		return;
	st->text_len += (size_t)len;
	if (st->text_len <= XML_TEXT_MAX && buf_append(&st->text, ch, (size_t)len) == -ENOMEM)
		stream_fail(st, -ENOMEM);
}

/* Any DOCTYPE: stop before its internal subset is read (see xml_refuse_doctype). */
static void stream_doctype(void *ctx, const xmlChar *name, const xmlChar *external_id,
			   const xmlChar *system_id)
{
	(void)name;
	(void)external_id;
	(void)system_id;
	stream_fail(ctx, -EPROTO);
}

int xml_stream_parse(const char *body, size_t len, const struct xml_stream *h)
{
	struct stream st;
	xmlSAXHandler sax;
	size_t off, n;
	int rc;

	if (!body || len == 0 || len > XML_MAX_BODY)
		return -EPROTO;
	memset(&st, 0, sizeof(st));
	st.h = h;
	buf_init(&st.text, XML_TEXT_MAX);
	/* Only our handlers: nothing builds a tree, nothing resolves an entity. */
	memset(&sax, 0, sizeof(sax));
	sax.initialized = XML_SAX2_MAGIC;
	sax.startElementNs = stream_start;
	sax.endElementNs = stream_end;
	sax.characters = stream_text;
	sax.cdataBlock = stream_text;
	sax.internalSubset = stream_doctype;
	sax.serror = xml_quiet;
	st.ctxt = xmlCreatePushParserCtxt(&sax, &st, NULL, 0, NULL);
	if (!st.ctxt) {
		buf_cleanup(&st.text);
		return -ENOMEM;
	}
	xmlCtxtUseOptions(st.ctxt, XML_PARSE_FLAGS);
	for (off = 0; off < len && !st.rc && st.ctxt->wellFormed; off += n) {
		n = len - off < XML_STREAM_CHUNK ? len - off : XML_STREAM_CHUNK;
		xmlParseChunk(st.ctxt, body + off, (int)n, 0);
	}
	if (!st.rc && st.ctxt->wellFormed)
		xmlParseChunk(st.ctxt, NULL, 0, 1);
	rc = st.rc;
	if (!rc && (!st.ctxt->wellFormed || st.depth != 0))
		rc = -EPROTO;
	xmlFreeParserCtxt(st.ctxt);
	buf_cleanup(&st.text);
	return rc;
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

void xml_text_copy(const char *text, size_t len, char *out, size_t outlen)
{
	size_t n = len < outlen - 1 ? len : outlen - 1;

	memcpy(out, text, n);
	out[n] = '\0';
	if (n < len)
		out[utf8_cut(out, n)] = '\0';
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
