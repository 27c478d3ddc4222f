/*
 * s3_xml: one ListObjectsV2 (or V1) page into a struct s3_list_page.
 *
 * The page is bounded by XML_MAX_BODY: the entry arrays are sized from a
 * count of the elements actually present, so memory follows the body size.
 *
 * Decoding, when <EncodingType>url</EncodingType> is present:
 *  - Keys are percent-decoded with '+' as a space. AWS writes a space as '+'
 *    and a literal '+' as %2B; radosgw writes %20 and %2B. Either way a raw
 *    '+' in an encoded key can only be a space.
 *  - CommonPrefixes/Prefix is decoded the same way, but not every server
 *    encodes it: the radosgw of our testbed sends it raw. A prefix holding a
 *    byte no encoder leaves raw (space, control, non-ASCII) is taken as sent,
 *    and so is one that is not a valid encoding ("100%/"). What remains
 *    ambiguous is a raw prefix holding '+' or a valid %XX: it is decoded. The
 *    choice is per prefix, never per page, so a directory gets the same name
 *    on every page.
 *  - NextContinuationToken is never decoded: it goes back to the server as
 *    sent (radosgw's is the raw last key).
 * A key that fails to decode, decodes to hold a NUL, or an entry without a
 * usable Key or Size, is dropped and counted in page->dropped.
 */
#include "s3/s3_xml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/strutil.h"
#include "http/xml.h"

void s3_list_page_cleanup(struct s3_list_page *page)
{
	size_t i;

	if (!page)
		return;
	for (i = 0; i < page->nobjects; i++) {
		free(page->objects[i].key);
		free(page->objects[i].etag);
	}
	free(page->objects);
	for (i = 0; i < page->nprefixes; i++)
		free(page->prefixes[i]);
	free(page->prefixes);
	free(page->next_token);
	memset(page, 0, sizeof(*page));
}

static int parse_size(const char *s, long long *out)
{
	char *end;
	long long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* The ETag goes into If-Match: refuse one that could break the header. */
static int etag_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/*
 * Fill obj from one <Contents>. Returns 0, -EINVAL when the entry cannot be
 * represented (the caller drops it), or -ENOMEM.
 */
static int parse_object(xmlNodePtr contents, int encoded, struct s3_list_object *obj)
{
	char *size = NULL, *mtime = NULL;
	int rc = -ENOMEM;

	memset(obj, 0, sizeof(*obj));
	if (!xml_child(contents, "Key") || !xml_child(contents, "Size"))
		return -EINVAL;
	obj->key = xml_child_text(contents, "Key");
	size = xml_child_text(contents, "Size");
	if (!obj->key || !size)
		goto out;
	mtime = xml_child_text(contents, "LastModified");
	if (!mtime && xml_child(contents, "LastModified"))
		goto out;
	obj->etag = xml_child_text(contents, "ETag");
	if (!obj->etag && xml_child(contents, "ETag"))
		goto out;

	rc = -EINVAL;
	if (parse_size(str_trim(size), &obj->size))
		goto out;
	/* Keys are taken exactly: leading and trailing spaces are part of them. */
	if ((encoded && uri_decode(obj->key, 1) < 0) || !obj->key[0])
		goto out;
	/* A bad time is cosmetic: show the file with mtime 0 rather than hide it. */
	if (!mtime || time_parse_iso8601(str_trim(mtime), &obj->mtime))
		memset(&obj->mtime, 0, sizeof(obj->mtime));
	if (obj->etag && (!etag_ok(str_trim(obj->etag)) || !obj->etag[0])) {
		free(obj->etag);
		obj->etag = NULL;
	}
	if (xml_child_copy(contents, "StorageClass", obj->storage_class,
			   sizeof(obj->storage_class)) ||
	    !str_trim(obj->storage_class)[0])
		strcpy(obj->storage_class, "STANDARD");
	rc = 0;
out:
	if (rc) {
		free(obj->key);
		free(obj->etag);
		memset(obj, 0, sizeof(*obj));
	}
	free(size);
	free(mtime);
	return rc;
}

/* A byte no encoder writes raw: the server sent this prefix unencoded. */
static int clearly_raw(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 1;
	return 0;
}

/* Replace *prefix by its decoding when it is a valid encoding; 0 or -ENOMEM. */
static int decode_prefix(char **prefix)
{
	char *copy;

	if (clearly_raw(*prefix))
		return 0;
	copy = strdup(*prefix);
	if (!copy)
		return -ENOMEM;
	if (uri_decode(copy, 1) < 0 || !copy[0]) {
		free(copy);
		return 0;
	}
	free(*prefix);
	*prefix = copy;
	return 0;
}

/* One <CommonPrefixes>: 0 and *out set, -EINVAL (dropped) or -ENOMEM. */
static int parse_prefix(xmlNodePtr common, int encoded, char **out)
{
	xmlNodePtr node = xml_child(common, "Prefix");
	char *p;
	int rc;

	if (!node)
		return -EINVAL;
	p = xml_node_text(node);
	if (!p)
		return -ENOMEM;
	if (!p[0]) {
		free(p);
		return -EINVAL;
	}
	rc = encoded ? decode_prefix(&p) : 0;
	if (rc) {
		free(p);
		return rc;
	}
	*out = p;
	return 0;
}

/* IsTruncated, EncodingType and NextContinuationToken. */
static int parse_header(xmlNodePtr root, struct s3_list_page *page, int *encoded)
{
	char word[16];
	xmlNodePtr node;

	*encoded = 0;
	if (!xml_child_copy(root, "EncodingType", word, sizeof(word)) && str_trim(word)[0]) {
		/* Keys in an encoding we do not know cannot be read right. */
		if (strcasecmp(word, "url"))
			return -EPROTO;
		*encoded = 1;
	}
	if (!xml_child_copy(root, "IsTruncated", word, sizeof(word))) {
		str_trim(word);
		if (!strcasecmp(word, "true"))
			page->truncated = 1;
		else if (strcasecmp(word, "false"))
			return -EPROTO;
	}
	node = xml_child(root, "NextContinuationToken");
	if (node) {
		page->next_token = xml_node_text(node);
		if (!page->next_token)
			return -ENOMEM;
	}
	return 0;
}

int s3_xml_parse_list(const char *body, size_t len, struct s3_list_page *page)
{
	size_t nobj = 0, npre = 0;
	xmlNodePtr root, n;
	xmlDocPtr doc;
	int encoded, rc;

	memset(page, 0, sizeof(*page));
	doc = xml_parse(body, len);
	if (!doc)
		return -EPROTO;
	root = xml_root(doc, "ListBucketResult");
	if (!root) {
		rc = -EPROTO;
		goto out;
	}
	rc = parse_header(root, page, &encoded);
	if (rc)
		goto out;

	for (n = root->children; n; n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		if (xmlStrEqual(n->name, (const xmlChar *)"Contents"))
			nobj++;
		else if (xmlStrEqual(n->name, (const xmlChar *)"CommonPrefixes"))
			npre++;
	}
	if ((nobj && !(page->objects = calloc(nobj, sizeof(*page->objects)))) ||
	    (npre && !(page->prefixes = calloc(npre, sizeof(*page->prefixes))))) {
		rc = -ENOMEM;
		goto out;
	}

	for (n = root->children; n; n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		if (xmlStrEqual(n->name, (const xmlChar *)"Contents")) {
			rc = parse_object(n, encoded, &page->objects[page->nobjects]);
			if (!rc)
				page->nobjects++;
		} else if (xmlStrEqual(n->name, (const xmlChar *)"CommonPrefixes")) {
			rc = parse_prefix(n, encoded, &page->prefixes[page->nprefixes]);
			if (!rc)
				page->nprefixes++;
		}
		if (rc == -EINVAL) {
			page->dropped++;
			rc = 0;
		}
		if (rc)
			goto out;
	}
	rc = 0;
out:
	xmlFreeDoc(doc);
	if (rc)
		s3_list_page_cleanup(page);
	return rc;
}
