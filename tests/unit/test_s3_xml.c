/*
 * test_s3_xml: the ListObjectsV2 parser (s3/s3_xml) on inline pages of our
 * own: radosgw's shapes (no namespace, <Type>Normal</Type>, keys as
 * continuation tokens), encoding-type=url pages, the fields of an object,
 * entries dropped and said why, the entry cap, pages fed in pieces, and a
 * page at the size cap. The shared fixtures and hostile documents for every
 * parser are test_xml.c's.
 */
#include "harness.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "http/xml.h"
#include "s3/s3_xml.h"
#include "xmlrun.h"

static const char rgw_list_page[] = RGW_LIST_PAGE;

TEST(list_radosgw)
{
	struct store_page p;

	CHECK_INT(list_n(rgw_list_page, sizeof(rgw_list_page) - 1, &p), 0);
	CHECK(p.nobjects == 2 && p.dropped == 0 && p.truncated == 1);
	CHECK_STR(p.next_token, "big.bin");
	/* not encoded: keys as sent, entities resolved */
	check_obj(&p, 0, "a b+c&d=\xc3\xa9.txt", 42, "\"0a1b2c3d4e5f60718293a4b5c6d7e8f9\"",
		  1795879020, "STANDARD");
	CHECK(p.nobjects && p.objects[0].mtime.tv_nsec == 123000000);
	check_obj(&p, 1, "big.bin", 67108864, "\"9b2cf535f27731c974343645a3985328-8\"", 1795879020,
		  "STANDARD_IA");
	CHECK(p.nprefixes == 2 && !strcmp(p.prefixes[0], "dir/") && !strcmp(p.prefixes[1], "odd/"));
	store_page_cleanup(&p);
	CHECK(!p.objects && !p.prefixes && !p.next_token && !p.nobjects);
	CHECK_INT(run_error(rgw_list_page, sizeof(rgw_list_page) - 1), -EPROTO);
	CHECK_INT(run_sts(rgw_list_page, sizeof(rgw_list_page) - 1), -EPROTO);
}

/*
 * radosgw echoes the request's prefix raw even with encoding-type=url: a
 * directory named "\x01dir" came back as "&#x01;", which XML 1.0 forbids
 * (the page is what the testbed's radosgw sent). The echo is never read, so
 * the page parses; the same reference in a key or in an entry's prefix is
 * still refused.
 */
#define RGW_CTL_HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult " \
	"xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><EncodingType>url</EncodingType>" \
	"<Name>ctlb</Name>"
#define RGW_CTL_TAIL "<Contents><Key>d%2F%01dir%2Ff</Key><LastModified>" \
	"2026-12-03T17:09:17.562Z</LastModified><ETag>&quot;f97c5d29941bfb1b2fdab0874906ab82" \
	"&quot;</ETag><Size>3</Size><StorageClass>STANDARD</StorageClass><Type>Normal</Type>" \
	"</Contents><KeyCount>1</KeyCount></ListBucketResult>"

TEST(list_echo_with_a_control_reference)
{
	static const char page[] = RGW_CTL_HEAD "<Prefix>d/&#x01;dir/</Prefix><MaxKeys>1000"
		"</MaxKeys><Delimiter>/</Delimiter><IsTruncated>false</IsTruncated>" RGW_CTL_TAIL;
	static const char in_key[] = RGW_CTL_HEAD "<Prefix>d/</Prefix><IsTruncated>false"
		"</IsTruncated><Contents><Key>d/&#x01;x</Key><Size>3</Size></Contents>"
		"</ListBucketResult>";
	static const char in_entry[] = RGW_CTL_HEAD "<IsTruncated>false</IsTruncated>"
		"<CommonPrefixes><Prefix>d/&#x01;dir/</Prefix></CommonPrefixes></ListBucketResult>";
	struct store_page p;

	CHECK_INT(list_n(page, sizeof(page) - 1, &p), 0);
	CHECK(p.nobjects == 1 && p.dropped == 0 && p.truncated == 0 && p.nprefixes == 0);
	check_obj(&p, 0, "d/\x01" "dir/f", 3, "\"f97c5d29941bfb1b2fdab0874906ab82\"", 1796317757,
		  "STANDARD");
	store_page_cleanup(&p);
	CHECK_INT(list_n(in_key, sizeof(in_key) - 1, NULL), -EPROTO);
	CHECK_INT(list_n(in_entry, sizeof(in_entry) - 1, NULL), -EPROTO);
}

static const char url_list_page[] = URL_LIST_PAGE;

TEST(list_url_encoded)
{
	/* a prefix that is not a valid encoding, or clearly raw, is kept as sent */
	static const char *const prefixes[] = {
		"dir/", "\xed\x95\x9c\xea\xb8\x80/", "run books/", "100%/", "p%00/",
		"caf\xc3\xa9 + tea/",
	};
	struct store_page p;
	size_t i;

	CHECK_INT(list_n(url_list_page, sizeof(url_list_page) - 1, &p), 0);
	CHECK(p.nobjects == 4 && p.dropped == 1);
	check_obj(&p, 0, "odd/a b+c&d=\xc3\xa9.txt", 11, "\"e\"", 1795879020, "STANDARD");
	check_obj(&p, 1, "dir/a.txt", 5, "", 0, "STANDARD");
	check_obj(&p, 2, "run books/x.txt", 1, "", 0, "STANDARD");
	check_obj(&p, 3, "100%.csv", 2, "", 0, "STANDARD");
	CHECK_INT(p.nprefixes, N(prefixes));
	for (i = 0; i < N(prefixes) && i < p.nprefixes; i++)
		CHECK_STR(p.prefixes[i], prefixes[i]);
	CHECK_STR(p.next_token, "odd/a b+c%41.txt"); /* goes back as sent: never decoded */
	store_page_cleanup(&p);
}

#define LIST(body) "<ListBucketResult>" body "</ListBucketResult>"
#define OBJ(body) "<Contents>" body "</Contents>"

static const struct list_case {
	const char *why, *doc;
	int rc;
	size_t nobjects, nprefixes, dropped;
} list_cases[] = {
	{ "empty page", LIST(""), 0, 0, 0, 0 },
	{ "a key encoding NUL is dropped", LIST("<EncodingType>url</EncodingType>"
	  OBJ("<Key>ok.txt</Key><Size>1</Size>") OBJ("<Key>nul%00byte.txt</Key><Size>1</Size>")
	  OBJ("<Key>%00</Key><Size>1</Size>")), 0, 1, 0, 2 },
	{ "no Size", LIST(OBJ("<Key>k</Key>")), 0, 0, 0, 1 },
	{ "negative Size", LIST(OBJ("<Key>k</Key><Size>-1</Size>")), 0, 0, 0, 1 },
	{ "Size overflows", LIST(OBJ("<Key>k</Key><Size>99999999999999999999</Size>")), 0, 0, 0,
	  1 },
	{ "no Key", LIST(OBJ("<Size>1</Size>")), 0, 0, 0, 1 },
	{ "empty Key", LIST(OBJ("<Key></Key><Size>1</Size>")), 0, 0, 0, 1 },
	{ "empty Contents", LIST("<Contents/><Contents></Contents>"), 0, 0, 0, 2 },
	{ "empty CommonPrefixes",
	  LIST("<CommonPrefixes/><CommonPrefixes><Prefix/></CommonPrefixes>"), 0, 0, 0, 2 },
	{ "V1 with Owner", LIST("<Marker></Marker>" OBJ("<Key>k</Key><Size>0</Size><Owner>"
	  "<ID>i</ID><DisplayName>d</DisplayName></Owner>")), 0, 1, 0, 0 },
	{ "prefixed namespace", "<s3:ListBucketResult xmlns:s3=\"urn:x\"><s3:Contents>"
	  "<s3:Key>k</s3:Key><s3:Size>1</s3:Size></s3:Contents><s3:CommonPrefixes>"
	  "<s3:Prefix>p/</s3:Prefix></s3:CommonPrefixes></s3:ListBucketResult>", 0, 1, 1, 0 },
	{ "unknown elements", LIST("<Foo><Contents/></Foo>" OBJ("<Key>k</Key><Size>1</Size><X/>")),
	  0, 1, 0, 0 },
	{ "IsTruncated garbage", LIST("<IsTruncated>maybe</IsTruncated>"), -EPROTO, 0, 0, 0 },
	{ "unknown EncodingType", LIST("<EncodingType>base64</EncodingType>"), -EPROTO, 0, 0, 0 },
	{ "wrong root", "<ListAllMyBucketsResult/>", -EPROTO, 0, 0, 0 },
	{ "ListBucketResult not at the root", "<r>" LIST("") "</r>", -EPROTO, 0, 0, 0 },
};

TEST(list_cases)
{
	struct store_page p;
	size_t i;
	int rc;

	for (i = 0; i < N(list_cases); i++) {
		const struct list_case *c = &list_cases[i];

		rc = list_n(c->doc, strlen(c->doc), &p);
		if (rc != c->rc || p.nobjects != c->nobjects || p.dropped != c->dropped)
			fprintf(stderr, "list case \"%s\": rc %d, %zu objects, %zu dropped\n",
				c->why, rc, p.nobjects, p.dropped);
		CHECK_INT(rc, c->rc);
		CHECK(p.nobjects == c->nobjects && p.nprefixes == c->nprefixes);
		CHECK_INT(p.dropped, c->dropped);
		store_page_cleanup(&p);
	}
}

TEST(list_object_fields)
{
	static const char doc[] = LIST(
		"<IsTruncated> TRUE </IsTruncated>"
		OBJ("<Key> spaced key </Key><Size> 7 </Size><LastModified>yesterday</LastModified>"
		    "<ETag>\"a&#13;&#10;X-Evil: 1\"</ETag><StorageClass>  </StorageClass>")
		OBJ("<Key>k</Key><Size>9007199254740992</Size><ETag> \"t\" </ETag>"
		    "<StorageClass>GLACIER</StorageClass>")
		OBJ("<Key>huge</Key><Size>9223372036854775807</Size>")
		OBJ("<Key>over</Key><Size>9007199254740993</Size>"));
	struct store_page p;

	CHECK_INT(list_n(doc, sizeof(doc) - 1, &p), 0);
	CHECK(p.truncated == 1 && p.next_token == NULL && p.nobjects == 2);
	/* keys are taken exactly; an ETag that would break If-Match is dropped */
	check_obj(&p, 0, " spaced key ", 7, "", 0, "STANDARD");
	/* 2^53 is the largest size taken: 2^63-1 overflowed offset arithmetic (UBSan) */
	check_obj(&p, 1, "k", 9007199254740992LL, "\"t\"", 0, "GLACIER");
	CHECK_INT(p.dropped, 2);
	CHECK_INT(p.ndrops, 2);
	if (p.ndrops == 2) {
		CHECK_STR(p.drops[0].key, "huge");
		CHECK(strstr(p.drops[0].why, "'9223372036854775807' is not a size") != NULL);
		CHECK_STR(p.drops[1].key, "over");
	}
	store_page_cleanup(&p);
}

/* Each dropped entry is described (for the log), the first STORE_PAGE_MAX_DROPS of them. */
TEST(list_drops_described)
{
	static const char doc[] = LIST(
		OBJ("<Key>nul%00byte.txt</Key><Size>1</Size>") OBJ("<Key>bad%zz</Key><Size>1</Size>")
		OBJ("<Key>nosize</Key>") OBJ("<Size>1</Size>") OBJ("<Key>neg</Key><Size>-1</Size>")
		OBJ("<Key>ok.txt</Key><Size>1</Size>") "<CommonPrefixes/>"
		/* AWS sends EncodingType after the entries: the keys above are still decoded */
		"<EncodingType>url</EncodingType>");
	static const struct {
		const char *key, *why;
	} want[] = {
		{ "nosize", "it has no <Size>" }, { "", "an entry has no <Key>" },
		{ "neg", "its <Size> '-1' is not a size from 0 to 2^53" },
		{ "", "a <CommonPrefixes> has no <Prefix>" },
		{ "nul%00byte.txt", "its key holds %00, a NUL byte no file name can hold" },
		{ "bad%zz", "its key is not a valid URL encoding" },
	};
	struct store_page p;
	struct buf many;
	size_t i;
	int k;

	CHECK_INT(list_n(doc, sizeof(doc) - 1, &p), 0);
	CHECK_INT(p.nobjects, 1);
	CHECK_INT(p.dropped, N(want));
	CHECK_INT(p.ndrops, N(want));
	for (i = 0; i < N(want) && i < p.ndrops; i++) {
		CHECK_STR(p.drops[i].key, want[i].key);
		CHECK_STR(p.drops[i].why, want[i].why);
	}
	store_page_cleanup(&p);

	/* 40 bad entries: all counted, 16 described, the logged key cut to 256 bytes */
	buf_init(&many, (size_t)-2);
	buf_puts(&many, "<ListBucketResult><EncodingType>url</EncodingType>");
	for (k = 0; k < 40; k++) {
		buf_puts(&many, "<Contents><Key>");
		for (i = 0; i < 100; i++)
			buf_puts(&many, "%00");
		buf_printf(&many, "%d</Key><Size>1</Size></Contents>", k);
	}
	buf_puts(&many, "</ListBucketResult>");
	CHECK_INT(list_n(many.data, many.len, &p), 0);
	CHECK_INT(p.nobjects, 0);
	CHECK_INT(p.dropped, 40);
	CHECK_INT(p.ndrops, STORE_PAGE_MAX_DROPS);
	CHECK_INT(strlen(p.drops[0].key), 256);
	store_page_cleanup(&p);
	buf_cleanup(&many);
}

/* A page of more than S3_LIST_MAX_ENTRIES entries is refused whole (-E2BIG). */
TEST(list_entry_cap)
{
	struct store_page p;
	struct buf b;
	int k;

	buf_init(&b, (size_t)-2);
	buf_puts(&b, "<ListBucketResult>");
	for (k = 0; k < S3_LIST_MAX_ENTRIES; k++)
		buf_printf(&b, k % 2 ? "<Contents><Key>%d</Key><Size>1</Size></Contents>"
			       : "<CommonPrefixes><Prefix>%d/</Prefix></CommonPrefixes>", k);
	buf_puts(&b, "</ListBucketResult>");
	CHECK_INT(list_n(b.data, b.len, &p), 0);
	CHECK_INT(p.nobjects + p.nprefixes, S3_LIST_MAX_ENTRIES);
	store_page_cleanup(&p);
	b.len -= strlen("</ListBucketResult>");
	buf_puts(&b, "<Contents/></ListBucketResult>");
	CHECK_INT(list_n(b.data, b.len, &p), -E2BIG);
	buf_cleanup(&b);
}

/*
 * The stream reads what a tree lookup read: the first element of a name
 * wins, a value's text is its direct text (markup inside adds nothing), and
 * a token too long to send back refuses the page.
 */
TEST(list_stream_shapes)
{
	static const char doc[] = LIST(
		"<IsTruncated>true</IsTruncated><IsTruncated>nonsense</IsTruncated>"
		"<NextContinuationToken>t1</NextContinuationToken>"
		"<NextContinuationToken>t2</NextContinuationToken>"
		OBJ("<Key>a<b>x</b>c</Key><Key>second</Key><Size>1</Size><Size>2</Size>"
		    "<Deep><Key>no</Key></Deep>")
		"<Wrapper>" OBJ("<Key>nested</Key><Size>1</Size>") "</Wrapper>"
		"<CommonPrefixes><Prefix>p<![CDATA[&]]>/</Prefix><Prefix>q/</Prefix>"
		"</CommonPrefixes>");
	struct store_page p;
	struct buf b;
	int k;

	CHECK_INT(list_n(doc, sizeof(doc) - 1, &p), 0);
	CHECK(p.truncated == 1);
	CHECK_STR(p.next_token, "t1");
	CHECK_INT(p.nobjects, 1);
	check_obj(&p, 0, "ac", 1, "", 0, "STANDARD");
	CHECK(p.nprefixes == 1 && !strcmp(p.prefixes[0], "p&/"));
	store_page_cleanup(&p);

	/* a token over XML_TEXT_MAX could not go back whole */
	buf_init(&b, (size_t)-2);
	buf_puts(&b, "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>");
	for (k = 0; k <= (int)XML_TEXT_MAX; k++)
		buf_puts(&b, "t");
	buf_puts(&b, "</NextContinuationToken></ListBucketResult>");
	CHECK_INT(list_n(b.data, b.len, &p), -EPROTO);
	buf_cleanup(&b);

	/* 200 deep inside a page is fine; the 10,000-deep refusal is in hostile_documents */
	buf_init(&b, (size_t)-2);
	buf_puts(&b, "<ListBucketResult>");
	for (k = 0; k < 2 * 200; k++)
		buf_puts(&b, k < 200 ? "<a>" : "</a>");
	buf_puts(&b, OBJ("<Key>k</Key><Size>1</Size>") "</ListBucketResult>");
	CHECK_INT(list_n(b.data, b.len, &p), 0);
	CHECK_INT(p.nobjects, 1);
	store_page_cleanup(&p);
	buf_cleanup(&b);
}

/*
 * A page near the 8 MiB cap, of 1,000 large entries: every key comes back, and
 * the parse builds no tree (checked by ASan/valgrind runs for leaks; the
 * mount test test_hostile_lists measures the RSS).
 */
TEST(list_big_page)
{
	struct store_page p;
	struct buf b;
	int k, j;

	buf_init(&b, (size_t)-2);
	buf_puts(&b, "<ListBucketResult><EncodingType>url</EncodingType>");
	for (k = 0; k < 1000; k++) {
		buf_printf(&b, "<Contents><Key>%04d-", k);
		for (j = 0; j < 2700; j++)
			buf_puts(&b, "%41");
		buf_puts(&b, "</Key><Size>1</Size></Contents>");
	}
	buf_puts(&b, "</ListBucketResult>");
	CHECK(b.len <= XML_MAX_BODY);
	CHECK_INT(list_n(b.data, b.len, &p), 0);
	CHECK_INT(p.nobjects, 1000);
	CHECK(p.nobjects == 1000 && !strncmp(p.objects[999].key, "0999-AAA", 8));
	store_page_cleanup(&p);
	buf_cleanup(&b);
}

int main(void)
{
	xml_global_init();
	RUN(list_radosgw);
	RUN(list_echo_with_a_control_reference);
	RUN(list_url_encoded);
	RUN(list_cases);
	RUN(list_object_fields);
	RUN(list_drops_described);
	RUN(list_entry_cap);
	RUN(list_stream_shapes);
	RUN(list_big_page);
	xmlCleanupParser();
	return harness_done();
}
