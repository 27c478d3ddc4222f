/*
 * s3_xml: one ListObjectsV2 (or V1) page into a struct store_page.
 *
 * The page is parsed as a stream (http/xml.c's xml_stream_parse): no
 * document tree, so parsing costs the body, the page's own arrays and one
 * element's text. A DOM of an 8 MiB page cost about 14 times the page. The
 * entry arrays grow as entries arrive, up to S3_LIST_MAX_ENTRIES.
 *
 * What is read, and the shape it must have: the root is ListBucketResult;
 * directly under it IsTruncated, EncodingType, NextContinuationToken,
 * Contents and CommonPrefixes; under Contents Key, Size, LastModified, ETag
 * and StorageClass; under CommonPrefixes Prefix. The first of each wins, as
 * in a tree lookup; anything else is ignored. EncodingType may come after the
 * entries (AWS sends it late), so keys are decoded once the page has ended.
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
 *
 * The page's own <Prefix>, the echo of the request's prefix, is never read.
 * radosgw (Debian 12's) writes it unencoded even with encoding-type=url, so
 * a prefix holding a control character comes back as "&#x1;", which XML 1.0
 * forbids: the page would not parse, and a directory or file with such a
 * name would be EIO. A page whose echo holds a character reference is
 * parsed from a copy with the echo's text blanked (echo_blanked).
 *
 * A key that fails to decode, decodes to hold a NUL, is longer than
 * XML_TEXT_MAX, or an entry without a usable Key or Size, is dropped: counted
 * in page->dropped and, for the first STORE_PAGE_MAX_DROPS, described in
 * page->drops so that the caller can log it.
 */
#include "s3/s3_xml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/strutil.h"
#include "http/xml.h"

/* How much of a dropped key is kept for the log. */
#define DROP_KEY_MAX 256

/*
 * Count a dropped entry and describe it if there is room (a description that
 * cannot be allocated is left out: the count is what matters). Returns 0.
 */
static int drop(struct store_page *page, const char *key, const char *why)
{
	struct store_drop *d;
	size_t n;

	page->dropped++;
	if (page->ndrops == STORE_PAGE_MAX_DROPS)
		return 0;
	d = &page->drops[page->ndrops];
	n = key ? strlen(key) : 0;
	d->key = malloc((n > DROP_KEY_MAX ? DROP_KEY_MAX : n) + 1);
	if (!d->key)
		return 0;
	xml_text_copy(key ? key : "", n, d->key, DROP_KEY_MAX + 1);
	snprintf(d->why, sizeof(d->why), "%s", why);
	page->ndrops++;
	return 0;
}

/* A size as S3 writes it: digits only, 0..S3_LIST_MAX_SIZE. */
static int parse_size(const char *s, long long *out)
{
	char *end;
	long long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v > S3_LIST_MAX_SIZE)
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

/* A byte no encoder writes raw: the server sent this prefix unencoded. */
static int clearly_raw(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 1;
	return 0;
}

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Would uri_decode take s? (every '%' starts a %XX other than %00) */
static int decodes(const char *s)
{
	for (; (s = strchr(s, '%')); s += 3)
		if (!is_hex(s[1]) || !is_hex(s[2]) || (s[1] == '0' && s[2] == '0'))
			return 0;
	return 1;
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

/* ---- the stream's state ------------------------------------------------------------------- */

enum field {
	F_NONE,
	F_TRUNCATED, F_ENCODING, F_TOKEN,			/* under the root */
	F_KEY, F_SIZE, F_MTIME, F_ETAG, F_CLASS,		/* under Contents */
	F_PREFIX,						/* under CommonPrefixes */
	F_COUNT
};

static const char *const field_names[F_COUNT] = {
	[F_TRUNCATED] = "IsTruncated", [F_ENCODING] = "EncodingType",
	[F_TOKEN] = "NextContinuationToken", [F_KEY] = "Key", [F_SIZE] = "Size",
	[F_MTIME] = "LastModified", [F_ETAG] = "ETag", [F_CLASS] = "StorageClass",
	[F_PREFIX] = "Prefix",
};

enum { IN_ROOT, IN_CONTENTS, IN_PREFIXES };

/*
 * A field's text: NULL until its element is seen; the element's text then,
 * or "" with too_long set when it was longer than XML_TEXT_MAX.
 */
struct field_text {
	char *text;
	int too_long;
};

struct list_parse {
	struct store_page *page;
	size_t cap_objects, cap_prefixes;
	int in;				/* IN_ROOT, IN_CONTENTS, IN_PREFIXES */
	int root_seen;
	enum field collecting;		/* the field whose element is open */
	int collect_depth;		/* ... and its depth */
	/* Root fields are kept to the end; entry fields are cleared per entry. */
	struct field_text f[F_COUNT];
};

static void field_clear(struct list_parse *lp, enum field first, enum field last)
{
	int i;

	for (i = first; i <= (int)last; i++) {
		free(lp->f[i].text);
		lp->f[i].text = NULL;
		lp->f[i].too_long = 0;
	}
}

static enum field field_of(const char *name, int in)
{
	int first = in == IN_ROOT ? F_TRUNCATED : in == IN_CONTENTS ? F_KEY : F_PREFIX;
	int last = in == IN_ROOT ? F_TOKEN : in == IN_CONTENTS ? F_CLASS : F_PREFIX;
	int i;

	for (i = first; i <= last; i++)
		if (!strcmp(name, field_names[i]))
			return (enum field)i;
	return F_NONE;
}

static int list_open(void *ctx, const char *name, int depth)
{
	struct list_parse *lp = ctx;
	struct store_page *page = lp->page;
	enum field f;

	if (depth == 1) {
		if (strcmp(name, "ListBucketResult"))
			return -EPROTO;
		lp->root_seen = 1;
		return 0;
	}
	if (depth == 2) {
		if (!strcmp(name, "Contents") || !strcmp(name, "CommonPrefixes")) {
			if (page->nobjects + page->nprefixes + page->dropped >= S3_LIST_MAX_ENTRIES)
				return -E2BIG;
			lp->in = !strcmp(name, "Contents") ? IN_CONTENTS : IN_PREFIXES;
			return 0;
		}
		f = field_of(name, IN_ROOT);
	} else if (depth == 3 && lp->in != IN_ROOT) {
		f = field_of(name, lp->in);
	} else {
		return 0;
	}
	/* The first element of each name wins. */
	if (f == F_NONE || lp->f[f].text || lp->f[f].too_long)
		return 0;
	lp->collecting = f;
	lp->collect_depth = depth;
	return 1;
}

/* Grow an array of n elements to hold one more; 0 or -ENOMEM. */
static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
	size_t c;
	void *p;

	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : 16;
	p = realloc(*arr, c * size);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = c;
	return 0;
}

/* A Contents ended: keep it as an object, or drop it. 0 or -ENOMEM. */
static int end_object(struct list_parse *lp)
{
	struct store_page *page = lp->page;
	struct field_text *f = lp->f;
	struct store_object *obj;
	long long size;
	char *s;

	if (!f[F_KEY].text)
		return drop(page, NULL, "an entry has no <Key>");
	if (f[F_KEY].too_long)
		return drop(page, NULL, "a <Key> is longer than 16 KiB");
	if (!f[F_KEY].text[0])
		return drop(page, NULL, "a <Key> is empty");
	if (!f[F_SIZE].text || f[F_SIZE].too_long)
		return drop(page, f[F_KEY].text, "it has no <Size>");
	s = str_trim(f[F_SIZE].text);
	if (parse_size(s, &size)) {
		char why[96];

		snprintf(why, sizeof(why), "its <Size> '%.40s' is not a size from 0 to 2^53", s);
		return drop(page, f[F_KEY].text, why);
	}
	if (grow((void **)&page->objects, &lp->cap_objects, page->nobjects,
		 sizeof(*page->objects)))
		return -ENOMEM;
	obj = &page->objects[page->nobjects++];
	memset(obj, 0, sizeof(*obj));
	/* Keys are taken exactly: leading and trailing spaces are part of them. */
	obj->key = f[F_KEY].text;
	f[F_KEY].text = NULL;
	obj->size = size;
	/* A bad time is cosmetic: show the file with mtime 0 rather than hide it. */
	if (f[F_MTIME].text && !f[F_MTIME].too_long)
		time_parse_iso8601(str_trim(f[F_MTIME].text), &obj->mtime);
	if (f[F_ETAG].text && !f[F_ETAG].too_long && etag_ok(str_trim(f[F_ETAG].text)) &&
	    f[F_ETAG].text[0]) {
		obj->etag = f[F_ETAG].text;
		f[F_ETAG].text = NULL;
	}
	if (f[F_CLASS].text)
		xml_text_copy(f[F_CLASS].text, strlen(f[F_CLASS].text), obj->storage_class,
			      sizeof(obj->storage_class));
	if (!str_trim(obj->storage_class)[0])
		strcpy(obj->storage_class, "STANDARD");
	return 0;
}

/* A CommonPrefixes ended. 0 or -ENOMEM. */
static int end_prefix(struct list_parse *lp)
{
	struct store_page *page = lp->page;
	struct field_text *f = &lp->f[F_PREFIX];

	if (!f->text)
		return drop(page, NULL, "a <CommonPrefixes> has no <Prefix>");
	if (f->too_long)
		return drop(page, NULL, "a <Prefix> is longer than 16 KiB");
	if (!f->text[0])
		return drop(page, NULL, "a <Prefix> is empty");
	if (grow((void **)&page->prefixes, &lp->cap_prefixes, page->nprefixes,
		 sizeof(*page->prefixes)))
		return -ENOMEM;
	page->prefixes[page->nprefixes++] = f->text;
	f->text = NULL;
	return 0;
}

static int list_close(void *ctx, const char *name, int depth, const char *text, size_t len)
{
	struct list_parse *lp = ctx;
	enum field f = lp->collecting;
	int rc = 0;

	if (f != F_NONE && depth == lp->collect_depth) {
		/* The element being collected ended (only one is open at a time). */
		lp->collecting = F_NONE;
		if (!text) {
			lp->f[f].too_long = 1;
			lp->f[f].text = strdup("");
		} else {
			lp->f[f].text = malloc(len + 1);
			if (lp->f[f].text)
				memcpy(lp->f[f].text, text, len + 1);
		}
		return lp->f[f].text ? 0 : -ENOMEM;
	}
	(void)name;
	if (depth == 2 && lp->in != IN_ROOT) {
		rc = lp->in == IN_CONTENTS ? end_object(lp) : end_prefix(lp);
		field_clear(lp, F_KEY, F_PREFIX);
		lp->in = IN_ROOT;
	}
	return rc;
}

/* IsTruncated, EncodingType, NextContinuationToken; *encoded set. 0 or -EPROTO. */
static int finish_header(struct list_parse *lp, int *encoded)
{
	struct store_page *page = lp->page;
	char word[16];

	*encoded = 0;
	if (lp->f[F_ENCODING].text) {
		xml_text_copy(lp->f[F_ENCODING].text, strlen(lp->f[F_ENCODING].text), word,
			      sizeof(word));
		if (str_trim(word)[0]) {
			/* Keys in an encoding we do not know cannot be read right. */
			if (strcasecmp(word, "url"))
				return -EPROTO;
			*encoded = 1;
		}
	}
	if (lp->f[F_TRUNCATED].text) {
		xml_text_copy(lp->f[F_TRUNCATED].text, strlen(lp->f[F_TRUNCATED].text), word,
			      sizeof(word));
		str_trim(word);
		if (!strcasecmp(word, "true"))
			page->truncated = 1;
		else if (strcasecmp(word, "false"))
			return -EPROTO;
	}
	if (lp->f[F_TOKEN].text) {
		/* A token we could not send back whole is a broken page. */
		if (lp->f[F_TOKEN].too_long)
			return -EPROTO;
		page->next_token = lp->f[F_TOKEN].text;
		lp->f[F_TOKEN].text = NULL;
	}
	return 0;
}

/*
 * Decode the keys and prefixes of an encoded page, dropping keys that do not
 * decode. A key is checked before it is decoded in place, so the dropped one
 * is logged as sent. 0 or -ENOMEM.
 */
static int decode_page(struct store_page *page)
{
	size_t r, w = 0, i;
	int rc;

	for (r = 0; r < page->nobjects; r++) {
		struct store_object *o = &page->objects[r];

		if (!decodes(o->key)) {
			drop(page, o->key, strstr(o->key, "%00") ?
			     "its key holds %00, a NUL byte no file name can hold" :
			     "its key is not a valid URL encoding");
			free(o->key);
			free(o->etag);
			continue;
		}
		uri_decode(o->key, 1);
		page->objects[w++] = *o;
	}
	page->nobjects = w;
	for (i = 0; i < page->nprefixes; i++) {
		rc = decode_prefix(&page->prefixes[i]);
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * The echo is the first "<Prefix>" before any entry ("<Contents",
 * "<CommonPrefixes", whose own Prefix is the entry's). When its text holds
 * "&#", a malloc'd copy of body with that text turned to spaces; else NULL
 * (parse body itself; also when the copy cannot be made).
 */
static char *echo_blanked(const char *body, size_t len)
{
	static const char open[] = "<Prefix>", close[] = "</Prefix>";
	const char *p, *e;
	size_t before;
	char *copy;

	p = memmem(body, len, open, sizeof(open) - 1);
	if (!p)
		return NULL;
	before = (size_t)(p - body);
	p += sizeof(open) - 1;
	e = memmem(p, len - (size_t)(p - body), close, sizeof(close) - 1);
	if (!e || !memmem(p, (size_t)(e - p), "&#", 2) ||
	    memmem(body, before, "<Contents", 9) || memmem(body, before, "<CommonPrefixes", 15))
		return NULL;
	copy = malloc(len);
	if (!copy)
		return NULL;
	memcpy(copy, body, len);
	memset(copy + (p - body), ' ', (size_t)(e - p));
	return copy;
}

int s3_xml_parse_list(const char *body, size_t len, struct store_page *page)
{
	struct list_parse lp;
	struct xml_stream h = { .open = list_open, .close = list_close, .ctx = &lp };
	char *blanked = echo_blanked(body, len);
	int encoded, rc;

	memset(page, 0, sizeof(*page));
	memset(&lp, 0, sizeof(lp));
	lp.page = page;
	rc = xml_stream_parse(blanked ? blanked : body, len, &h);
	free(blanked);
	if (!rc && !lp.root_seen)
		rc = -EPROTO;
	if (!rc)
		rc = finish_header(&lp, &encoded);
	if (!rc && encoded)
		rc = decode_page(page);
	field_clear(&lp, F_NONE + 1, F_COUNT - 1);
	if (rc)
		store_page_cleanup(page);
	return rc;
}
