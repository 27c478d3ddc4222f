/*
 * xml: the one safe way irsafs parses XML from the network.
 *
 * Wraps libxml2 with the rules every caller needs: a size cap checked before
 * parsing, no network access, no entity expansion, no DTD loading, and
 * element matching by local name so that documents with and without the S3 or
 * STS namespace parse alike. Also parses the error documents S3 and STS send
 * (<Error> at the root, or <ErrorResponse><Error> from STS) into struct
 * s3_error. Thread-safe once xml_global_init() has run (main calls it before
 * starting threads).
 */
#ifndef IRSAFS_HTTP_XML_H
#define IRSAFS_HTTP_XML_H

#include <stddef.h>

#include <libxml/tree.h>

struct s3_error;

/* Hard cap on any XML body irsafs parses (list pages are the largest). */
#define XML_MAX_BODY (8u * 1024 * 1024)
/* Nesting deeper than this is refused (libxml2's own default for documents). */
#define XML_MAX_DEPTH 256
/* Text of one element that xml_stream_parse keeps; longer text is reported as too long. */
#define XML_TEXT_MAX (16u * 1024)

void xml_global_init(void);

/*
 * Parse body[0..len) into a document. Returns NULL when len exceeds
 * XML_MAX_BODY, when the text is not well-formed, or when it declares a DTD
 * or entities. The caller frees it with xmlFreeDoc.
 */
xmlDocPtr xml_parse(const char *body, size_t len);

/* The root element of doc if its local name is `name`, else NULL. */
xmlNodePtr xml_root(xmlDocPtr doc, const char *name);

/* First child element of parent whose local name is `name`, or NULL. */
xmlNodePtr xml_child(xmlNodePtr parent, const char *name);

/*
 * Text of element node (its direct text and CDATA children), malloc'd. NULL
 * only when node is NULL or memory ran out.
 */
char *xml_node_text(xmlNodePtr node);

/* Text of the first child element `name` of parent, malloc'd; NULL if none. */
char *xml_child_text(xmlNodePtr parent, const char *name);

/* Like xml_child_text, copied into out (truncated, NUL-terminated); 0 if found. */
int xml_child_copy(xmlNodePtr parent, const char *name, char *out, size_t outlen);

/*
 * A streaming parse, for the documents that can be large (list pages): the
 * same rules as xml_parse (size cap, no DTD, no entities, no network, no
 * output), but no tree is built. libxml2's tree of a list page costs about 14
 * times the page; this costs the parser's small state plus one element's
 * text, whatever the document's shape.
 *
 * open() is called when an element starts, with its local name and depth
 * (the root is 1). It returns 1 to have the element's text collected, 0 not
 * to, or a negative errno to stop the parse with that value. Only one
 * element's text is collected at a time: inside an element being collected,
 * a request to collect a child is ignored.
 *
 * close() is called when an element ends. For an element whose text was
 * collected, text is its direct text and CDATA (NUL-terminated, len bytes),
 * or NULL with len the full length when that exceeded XML_TEXT_MAX; markup
 * nested inside it contributes nothing, as in xml_node_text. For any other
 * element text is NULL and len 0. It returns 0, or a negative errno to stop.
 */
struct xml_stream {
	int (*open)(void *ctx, const char *name, int depth);
	int (*close)(void *ctx, const char *name, int depth, const char *text, size_t len);
	void *ctx;
};

/*
 * Parse body[0..len) calling h's callbacks. Returns 0 for a well-formed
 * document, the first negative errno a callback returned, or -EPROTO (over
 * XML_MAX_BODY, not well-formed, a DOCTYPE, deeper than XML_MAX_DEPTH).
 * Callbacks may have run before an error is found: the caller discards what
 * they built when this fails.
 */
int xml_stream_parse(const char *body, size_t len, const struct xml_stream *h);

/*
 * Copy text (len bytes) into out, truncated to outlen - 1 bytes without
 * cutting a UTF-8 sequence, NUL-terminated. outlen > 0.
 */
void xml_text_copy(const char *text, size_t len, char *out, size_t outlen);

/*
 * Parse an S3 or STS error document into e->code, e->message, e->request_id
 * and e->region (from <Region>, or from <Endpoint> is not attempted). Leaves
 * e->http_status and e->curl_code alone. Returns 0 when an <Error> element was
 * found, -EPROTO otherwise (e unchanged). Code and message are always
 * overwritten (empty when absent); request id and region only when the body
 * has them, so values taken from response headers survive. Fields are
 * trimmed, control characters become spaces, and a region that is not made
 * of [A-Za-z0-9_-] or does not fit is ignored.
 */
int xml_parse_error(const char *body, size_t len, struct s3_error *e);

#endif
