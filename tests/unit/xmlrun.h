/*
 * xmlrun: what the XML tests share (test_xml.c, test_s3_xml.c): each parser
 * run on an exact-size heap copy with no terminating NUL, so that ASan
 * catches a read past len, and a refused document checked to leave its
 * output empty; the listing pages both files parse. Header-only, like
 * harness.h (include it after harness.h).
 */
#ifndef IRSAFS_TESTS_XMLRUN_H
#define IRSAFS_TESTS_XMLRUN_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sts_xml.h"
#include "core/err.h"
#include "http/xml.h"
#include "s3/s3_xml.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define OPT(s) ((s) ? (s) : "")

static inline char *exact_copy(const char *s, size_t n)
{
	char *p = malloc(n ? n : 1);

	if (p && n)
		memcpy(p, s, n);
	return p;
}

static inline int run_doc(const char *s, size_t n)
{
	char *b = exact_copy(s, n);
	xmlDocPtr doc = xml_parse(b, n);
	int rc = doc ? 0 : -EPROTO;

	free(b);
	xmlFreeDoc(doc);
	return rc;
}

/* A refused error document must leave e exactly as it was. */
static inline int run_error(const char *s, size_t n)
{
	struct s3_error e, before;
	char *b = exact_copy(s, n);
	int rc;

	memset(&e, 0x5a, sizeof(e));
	before = e;
	rc = xml_parse_error(b, n, &e);
	free(b);
	if (rc)
		CHECK(memcmp(&e, &before, sizeof(e)) == 0);
	return rc;
}

/* A refused page or result must come back empty. With out NULL, a local is used. */
static inline int list_n(const char *s, size_t n, struct store_page *out)
{
	struct store_page local, *page = out ? out : &local;
	char *b = exact_copy(s, n);
	int rc = s3_xml_parse_list(b, n, page);

	free(b);
	if (rc)
		CHECK(!page->objects && !page->nobjects && !page->prefixes && !page->nprefixes &&
		      !page->next_token && !page->truncated && !page->dropped);
	if (!out)
		store_page_cleanup(page);
	return rc;
}

static inline int sts_n(const char *s, size_t n, struct sts_result *out)
{
	struct sts_result local, *r = out ? out : &local;
	char *b = exact_copy(s, n);
	int rc = sts_xml_parse_assume_role(b, n, r);

	free(b);
	if (rc)
		CHECK(!r->access_key_id && !r->secret_access_key && !r->session_token &&
		      !r->assumed_role_arn && !r->subject && !r->audience && !r->provider &&
		      !r->expiration.tv_sec);
	if (!out)
		sts_result_cleanup(r);
	return rc;
}

static inline int run_list(const char *s, size_t n)
{
	return list_n(s, n, NULL);
}

static inline int run_sts(const char *s, size_t n)
{
	return sts_n(s, n, NULL);
}

static inline void check_obj(const struct store_page *p, size_t i, const char *key, long long size,
			     const char *etag, long long mtime, const char *storage_class)
{
	CHECK(i < p->nobjects);
	if (i >= p->nobjects)
		return;
	CHECK_STR(p->objects[i].key, key);
	CHECK_INT(p->objects[i].size, size);
	CHECK_STR(OPT(p->objects[i].etag), etag);
	CHECK_INT(p->objects[i].mtime.tv_sec, mtime);
	CHECK_STR(p->objects[i].storage_class, storage_class);
}

/* radosgw, list-type=2&delimiter=/&max-keys=2: no namespace, <Type>, no Owner. */
#define RGW_LIST_PAGE \
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" \
	"<ListBucketResult><Name>demo-bucket</Name><Prefix></Prefix><KeyCount>4</KeyCount>" \
	"<MaxKeys>2</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>" \
	"<Contents><Key>a b+c&amp;d=\xc3\xa9.txt</Key>" \
	"<LastModified>2026-11-28T15:17:00.123Z</LastModified>" \
	"<ETag>&quot;0a1b2c3d4e5f60718293a4b5c6d7e8f9&quot;</ETag><Size>42</Size>" \
	"<StorageClass>STANDARD</StorageClass><Type>Normal</Type></Contents>" \
	"<Contents><Key>big.bin</Key><LastModified>2026-11-28T15:17:00.000Z</LastModified>" \
	"<ETag>&quot;9b2cf535f27731c974343645a3985328-8&quot;</ETag><Size>67108864</Size>" \
	"<StorageClass>STANDARD_IA</StorageClass><Type>Normal</Type></Contents>" \
	"<CommonPrefixes><Prefix>dir/</Prefix></CommonPrefixes>" \
	"<CommonPrefixes><Prefix>odd/</Prefix></CommonPrefixes>" \
	"<NextContinuationToken>big.bin</NextContinuationToken></ListBucketResult>\n"

/*
 * encoding-type=url. Keys as radosgw encodes them (%20, %2B, %2F) and as AWS
 * does ('+' for a space); prefixes encoded (AWS) and raw (radosgw).
 */
#define URL_LIST_PAGE \
	"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">" \
	"<Name>demo-bucket</Name><Prefix></Prefix><KeyCount>9</KeyCount><MaxKeys>9</MaxKeys>" \
	"<Delimiter>/</Delimiter><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>" \
	"<Contents><Key>odd%2Fa%20b%2Bc%26d%3D%C3%A9.txt</Key><Size>11</Size>" \
	"<LastModified>2026-11-28T15:17:00Z</LastModified><ETag>\"e\"</ETag></Contents>" \
	"<Contents><Key>dir%2Fa.txt</Key><Size>5</Size></Contents>" \
	"<Contents><Key>run+books/x.txt</Key><Size>1</Size></Contents>" \
	"<Contents><Key>100%25.csv</Key><Size>2</Size></Contents>" \
	"<Contents><Key>bad%zz.txt</Key><Size>3</Size></Contents>" \
	"<CommonPrefixes><Prefix>dir/</Prefix></CommonPrefixes>" \
	"<CommonPrefixes><Prefix>%ED%95%9C%EA%B8%80/</Prefix></CommonPrefixes>" \
	"<CommonPrefixes><Prefix>run+books/</Prefix></CommonPrefixes>" \
	"<CommonPrefixes><Prefix>100%/</Prefix></CommonPrefixes>" \
	"<CommonPrefixes><Prefix>p%00/</Prefix></CommonPrefixes>" \
	"<CommonPrefixes><Prefix>caf\xc3\xa9 + tea/</Prefix></CommonPrefixes>" \
	"<NextContinuationToken>odd/a b+c%41.txt</NextContinuationToken></ListBucketResult>"

#endif
