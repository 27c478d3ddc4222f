/*
 * s3_xml: the ListObjectsV2 result.
 *
 * Parses <ListBucketResult> (with or without the S3 namespace) into a list
 * page (struct store_page, s3/store.h). When the response says
 * <EncodingType>url</EncodingType>, keys and common prefixes are
 * percent-decoded, '+' as a space (AWS writes a space as
 * '+' and a literal '+' as %2B); otherwise they are taken as they are.
 * (radosgw encodes Key but sends Prefix and CommonPrefixes/Prefix unencoded
 * even with encoding-type=url; a prefix that is not a valid encoding, or holds
 * a space, control or non-ASCII byte, is kept as sent, so its only loss is a
 * literal '+' or '%XX' in a prefix.) An entry that cannot be represented (a
 * key that does not decode or decodes to hold a NUL, no <Key> or <Size>, a
 * size outside 0..S3_LIST_MAX_SIZE) is dropped from the page: counted in
 * `dropped`, and the first STORE_PAGE_MAX_DROPS of them described in `drops`
 * for the caller's log. The page is parsed as a stream (no document tree), so
 * its memory follows what it holds: at most S3_LIST_MAX_ENTRIES entries.
 * Thread-safe.
 */
#ifndef IRSAFS_S3_S3_XML_H
#define IRSAFS_S3_S3_XML_H

#include <stddef.h>

#include "s3/store.h"

/*
 * Object sizes above 2^53 (8 PiB; S3's largest object is a few TB) are
 * refused: below it every offset and size sum fits a long long, and a double.
 */
#define S3_LIST_MAX_SIZE (1LL << 53)
/*
 * Entries (Contents and CommonPrefixes) one page may hold. S3 and every
 * compatible server send at most 1,000 (max-keys), but a server that ignores
 * max-keys is served as long as its page is within the body cap. This bounds
 * what the smallest entries (~50 bytes of XML, ~110 bytes parsed) can cost:
 * about 14 MiB for a page at the 8 MiB body cap, whatever its shape.
 */
#define S3_LIST_MAX_ENTRIES 100000

/*
 * Returns 0 and fills page; -EPROTO when the body is not a ListBucketResult
 * (not well-formed, a DTD, too deep, over XML_MAX_BODY, a bad IsTruncated or
 * EncodingType); -E2BIG over S3_LIST_MAX_ENTRIES; -ENOMEM. On error the page
 * is left empty.
 */
int s3_xml_parse_list(const char *body, size_t len, struct store_page *page);

#endif
