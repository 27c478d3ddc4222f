/*
 * s3_xml: the ListObjectsV2 result.
 *
 * Parses <ListBucketResult> (with or without the S3 namespace) into a list
 * page. When the response says <EncodingType>url</EncodingType>, keys and
 * common prefixes are percent-decoded, '+' as a space (AWS writes a space as
 * '+' and a literal '+' as %2B); otherwise they are taken as they are.
 * (radosgw encodes Key but sends Prefix and CommonPrefixes/Prefix unencoded
 * even with encoding-type=url; a prefix that is not a valid encoding, or holds
 * a space, control or non-ASCII byte, is kept as sent, so its only loss is a
 * literal '+' or '%XX' in a prefix.) A key that does not decode, or decodes
 * to hold a NUL, is dropped from the page (counted in `dropped`). Returns
 * -ENOMEM when memory runs out. Thread-safe.
 */
#ifndef IRSAFS_S3_S3_XML_H
#define IRSAFS_S3_S3_XML_H

#include <stddef.h>
#include <time.h>

struct s3_list_object {
	char *key;			/* full key, decoded */
	long long size;
	struct timespec mtime;		/* LastModified */
	char *etag;			/* with its quotes, as S3 sends it */
	char storage_class[32];		/* "STANDARD" when absent */
};

struct s3_list_page {
	struct s3_list_object *objects;
	size_t nobjects;
	char **prefixes;		/* CommonPrefixes, decoded, each ending in the delimiter */
	size_t nprefixes;
	int truncated;			/* IsTruncated */
	char *next_token;		/* NextContinuationToken, raw; NULL if none */
	size_t dropped;			/* entries that could not be represented */
};

/* Returns 0 and fills page, or -EPROTO (page left empty). */
int s3_xml_parse_list(const char *body, size_t len, struct s3_list_page *page);

void s3_list_page_cleanup(struct s3_list_page *page);

#endif
