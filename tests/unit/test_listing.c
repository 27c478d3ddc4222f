/*
 * Unit tests for fs/listing.c: how S3 keys become names, and how a fetch is
 * bounded against a lying server. The server here is a store whose pages are
 * ListObjectsV2 XML written per request and run through the real parser.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/strutil.h"
#include "cache/listing.h"
#include "harness.h"
#include "http/xml.h"
#include "s3/s3_xml.h"

static struct store_page page_of(const char *const *keys, size_t nkeys,
				   const char *const *prefixes, size_t nprefixes)
{
	struct store_page p;
	size_t i;

	memset(&p, 0, sizeof(p));
	p.objects = calloc(nkeys ? nkeys : 1, sizeof(*p.objects));
	p.prefixes = calloc(nprefixes ? nprefixes : 1, sizeof(*p.prefixes));
	for (i = 0; i < nkeys; i++) {
		p.objects[i].key = strdup(keys[i]);
		p.objects[i].size = (long long)i + 1;
		p.objects[i].etag = strdup("\"e\"");
		strcpy(p.objects[i].storage_class, "STANDARD");
	}
	for (i = 0; i < nprefixes; i++)
		p.prefixes[i] = strdup(prefixes[i]);
	p.nobjects = nkeys;
	p.nprefixes = nprefixes;
	return p;
}

static struct store_dir *build(const char *dir, const char *const *keys, size_t nkeys,
			     const char *const *prefixes, size_t nprefixes)
{
	struct store_page p = page_of(keys, nkeys, prefixes, nprefixes);
	struct store_dir *l = store_dir_new();

	CHECK_INT(listing_add_page(l, dir, &p), 0);
	listing_finish(l, dir);
	store_page_cleanup(&p);
	return l;
}

TEST(names)
{
	CHECK(store_name_ok("a", 1));
	CHECK(!store_name_ok("", 0));
	CHECK(!store_name_ok(".", 1));
	CHECK(!store_name_ok("..", 2));
	CHECK(store_name_ok("...", 3));
	CHECK(!store_name_ok("a/b", 3));
	{
		char n[257];

		memset(n, 'x', 256);
		n[256] = 0;
		CHECK(store_name_ok(n, 255));
		CHECK(!store_name_ok(n, 256));
	}
}

TEST(dir_and_dash_sort_order)
{
	static const char *const prefixes[] = { "dir-1/", "dir/" };
	struct store_dir *l = build("", NULL, 0, prefixes, 2);

	CHECK_INT(l->n, 2);
	CHECK_STR(l->e[0].name, "dir");
	CHECK_STR(l->e[1].name, "dir-1");
	CHECK(l->e[0].is_dir && l->e[1].is_dir);
	store_dir_release(l);
}

TEST(directory_shadows_file)
{
	static const char *const keys[] = { "blue", "hello.txt" };
	static const char *const prefixes[] = { "blue/" };
	struct store_dir *l = build("", keys, 2, prefixes, 1);

	CHECK_INT(l->n, 2);
	CHECK_STR(l->e[0].name, "blue");
	CHECK(l->e[0].is_dir);
	CHECK(store_dir_find(l, "hello.txt") != NULL);
	CHECK(store_dir_find(l, "nope") == NULL);
	store_dir_release(l);
}

TEST(marker_and_hidden_names)
{
	static const char *const keys[] = { "hidden/", "hidden/ok.txt" };
	static const char *const prefixes[] = { "hidden//", "hidden/./", "hidden/../" };
	struct store_dir *l = build("hidden/", keys, 2, prefixes, 3);

	CHECK_INT(l->n, 1);
	CHECK_STR(l->e[0].name, "ok.txt");
	CHECK_INT(l->e[0].attr.size, 2);
	store_dir_release(l);
}

TEST(entries_keep_etag_and_storage_class)
{
	static const char *const keys[] = { "a", "b" };
	static const char *const prefixes[] = { "d/" };
	struct store_dir *l = build("", keys, 2, prefixes, 1);
	struct store_attr a;

	CHECK_INT(l->n, 3);
	store_dirent_attr(store_dir_find(l, "b"), &a);
	CHECK_INT(a.size, 2);
	CHECK_STR(a.etag, "\"e\"");
	CHECK_STR(a.storage_class, "STANDARD");
	CHECK_STR(a.content_type, "");
	/* A directory carries no attributes at all. */
	CHECK(store_dir_find(l, "d")->attr.strings == NULL);
	store_dirent_attr(store_dir_find(l, "d"), &a);
	CHECK_STR(a.etag, "");
	store_dir_release(l);
}

TEST(packed_attributes_round_trip)
{
	struct store_attr a, b;
	struct store_attr_packed p;

	memset(&a, 0, sizeof(a));
	a.size = 1LL << 40;
	a.mtime.tv_sec = 1700000000;
	a.mtime.tv_nsec = 123456789;
	memset(a.etag, 'e', sizeof(a.etag) - 1);	/* the longest ETag a store_attr holds */
	strcpy(a.storage_class, "GLACIER");
	strcpy(a.version_id, "v1");
	CHECK_INT(store_attr_pack(&p, &a), 0);
	CHECK_INT(store_attr_packed_bytes(&p), 127 + 1 + 7 + 1 + 0 + 1 + 2 + 1);
	store_attr_unpack(&p, &b);
	CHECK(memcmp(&a, &b, sizeof(a)) == 0);
	store_attr_packed_clear(&p);
	CHECK(p.strings == NULL);

	/* Nothing but numbers: nothing allocated. */
	memset(&a, 0, sizeof(a));
	a.size = 5;
	CHECK_INT(store_attr_pack(&p, &a), 0);
	CHECK(p.strings == NULL);
	CHECK_INT(store_attr_packed_bytes(&p), 0);
	store_attr_unpack(&p, &b);
	CHECK(memcmp(&a, &b, sizeof(a)) == 0);
}

TEST(long_name_hidden)
{
	char key[300];
	const char *keys[2];
	struct store_dir *l;

	strcpy(key, "d/");
	memset(key + 2, 'x', 256);
	key[258] = 0;
	keys[0] = key;
	keys[1] = "d/short";
	l = build("d/", keys, 2, NULL, 0);
	CHECK_INT(l->n, 1);
	CHECK_STR(l->e[0].name, "short");
	store_dir_release(l);
}

TEST(foreign_keys_ignored)
{
	static const char *const keys[] = { "other/x", "d/y" };
	struct store_dir *l = build("d/", keys, 2, NULL, 0);

	CHECK_INT(l->n, 1);
	CHECK_STR(l->e[0].name, "y");
	store_dir_release(l);
}

/* Regression: an empty directory once passed a NULL base to qsort (UBSan). */
TEST(empty_listing)
{
	struct store_dir *l = build("empty/", NULL, 0, NULL, 0);

	CHECK_INT(l->n, 0);
	CHECK(store_dir_find(l, "x") == NULL);
	store_dir_release(l);
}

/* ---- fetching from a lying server ---------------------------------------------------------- */

enum lie {
	HONEST,			/* `pages` pages of `keys` keys, then the end */
	SAME_TOKEN,		/* every page: IsTruncated, token "t" */
	CYCLE,			/* tokens a, b, c, a, ... */
	NEW_TOKEN,		/* a new token with every page, for ever */
	NO_TOKEN,		/* truncated, without a token */
	LONG_TOKEN,		/* a token of LISTING_MAX_TOKEN + 1 bytes */
	BAD_ENTRIES,		/* one page: a %00 key, a 2^63-1 size, a good key */
};

struct liar {
	struct store base;	/* first: the store is cast back */
	enum lie lie;
	int pages, keys;	/* HONEST: pages; every page: keys per page */
	int calls;
	int sleep_ms;
	char last_token[64];	/* what the last request sent */
};

static int liar_list(struct store *st, const char *prefix, const char *token, int max_keys,
		     struct store_page *page, struct store_error *e)
{
	struct liar *s = (struct liar *)st;
	int n = s->calls++, k, rc, more;
	struct buf b;

	(void)max_keys;
	store_error_clear(e);
	snprintf(s->last_token, sizeof(s->last_token), "%s", token ? token : "");
	if (s->sleep_ms)
		usleep((useconds_t)s->sleep_ms * 1000);
	buf_init(&b, XML_MAX_BODY);
	buf_puts(&b, "<ListBucketResult><EncodingType>url</EncodingType>");
	if (s->lie == BAD_ENTRIES) {
		buf_printf(&b, "<Contents><Key>%snul%%00.txt</Key><Size>1</Size></Contents>"
			   "<Contents><Key>%shuge.bin</Key><Size>9223372036854775807</Size>"
			   "</Contents><Contents><Key>%sok.txt</Key><Size>2</Size></Contents>",
			   prefix, prefix, prefix);
	}
	for (k = 0; k < s->keys; k++)
		buf_printf(&b, "<Contents><Key>%sp%d-k%d</Key><Size>%d</Size>"
			   "<ETag>&quot;0123456789abcdef0123456789abcdef&quot;</ETag></Contents>",
			   prefix, n, k, k);
	more = s->lie == HONEST ? n + 1 < s->pages : s->lie != BAD_ENTRIES;
	buf_printf(&b, "<IsTruncated>%s</IsTruncated>", more ? "true" : "false");
	if (more) {
		buf_puts(&b, "<NextContinuationToken>");
		switch (s->lie) {
		case SAME_TOKEN:
			buf_puts(&b, "t");
			break;
		case CYCLE:
			buf_printf(&b, "%c", 'a' + n % 3);
			break;
		case NO_TOKEN:
			break;
		case LONG_TOKEN:
			for (k = 0; k <= LISTING_MAX_TOKEN; k++)
				buf_puts(&b, "x");
			break;
		default:
			buf_printf(&b, "token-%d", n);
		}
		buf_puts(&b, "</NextContinuationToken>");
	}
	buf_puts(&b, "</ListBucketResult>");
	rc = s3_xml_parse_list(b.data, b.len, page);
	buf_cleanup(&b);
	return rc ? -EIO : 0;
}

static const struct store_ops liar_ops = { .list_page = liar_list };

static struct liar liar(enum lie lie, int pages, int keys)
{
	struct liar s = { .base = { &liar_ops }, .lie = lie, .pages = pages, .keys = keys };

	return s;
}

struct counts {
	size_t charged;
	size_t refuse_over;	/* charge fails once charged would pass this; 0: never */
	int polls, cancel_after;	/* cancelled() says yes from this poll on; 0: never */
};

static int count_charge(void *ctx, size_t bytes)
{
	struct counts *c = ctx;

	if (c->refuse_over && c->charged + bytes > c->refuse_over)
		return -ENOSPC;
	c->charged += bytes;
	return 0;
}

static int count_cancelled(void *ctx)
{
	struct counts *c = ctx;

	return c->cancel_after && ++c->polls >= c->cancel_after;
}

static int fetch(struct liar *s, struct listing_bounds *b, struct store_dir **out)
{
	struct store_error e;

	*out = NULL;
	return listing_fetch(&s->base, "d/", 1000, b, out, &e);
}

/* Read everything written to stderr while fn runs. */
static char *stderr_of(void (*fn)(void *), void *arg)
{
	FILE *tmp = tmpfile();
	int saved = dup(2);
	char *out = calloc(1, 65536);
	size_t n;

	fflush(stderr);
	if (!tmp || saved < 0 || !out || dup2(fileno(tmp), 2) != 2) {
		free(out);
		return NULL;
	}
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	n = fread(out, 1, 65535, tmp);
	out[n] = '\0';
	fclose(tmp);
	return out;
}

struct logged_fetch {
	struct liar *s;
	struct listing_bounds *b;
	int rc;
};

static void run_logged_fetch(void *arg)
{
	struct logged_fetch *f = arg;
	struct store_dir *l;

	f->rc = fetch(f->s, f->b, &l);
	store_dir_release(l);
}

/* A fetch that must fail with EIO and say so in one error line holding `says`. */
static void check_fails_saying(struct liar *s, struct listing_bounds *b, const char *says)
{
	struct logged_fetch f = { s, b, 0 };
	int level = log_get_level();
	char *log;

	log_set_level(LOG_ERR);
	log = stderr_of(run_logged_fetch, &f);
	log_set_level(level);
	CHECK_INT(f.rc, -EIO);
	CHECK(log && strstr(log, "error: ") && strstr(log, says));
	CHECK(log && strchr(log, '\n') == log + strlen(log) - 1);
	if (log && !strstr(log, says))
		fprintf(stderr, "  wanted \"%s\" in: %s\n", says, log);
	free(log);
}

/* An honest listing of many pages comes back whole, and its bytes were charged as they came. */
TEST(fetch_honest_pages)
{
	struct liar s = liar(HONEST, 30, 100);
	struct counts c = { 0 };
	struct listing_bounds b = { .charge = count_charge, .ctx = &c, .max_bytes = 64 << 20 };
	struct store_dir *l;

	CHECK_INT(fetch(&s, &b, &l), 0);
	CHECK_INT(s.calls, 30);
	CHECK_STR(s.last_token, "token-28");
	CHECK(l && l->n == 3000);
	CHECK(l && store_dir_find(l, "p29-k99") != NULL);
	/* the charge covers the listing and the 29 tokens kept */
	CHECK(l && c.charged >= l->bytes + 29 * LISTING_TOKEN_BYTES);
	store_dir_release(l);

	/* 1,001 pages (a million keys' worth at 1,000 a page) are within the page cap */
	s = liar(HONEST, 1001, 0);
	CHECK_INT(fetch(&s, NULL, &l), 0);
	CHECK_INT(s.calls, 1001);
	store_dir_release(l);
	CHECK_INT(listing_max_pages(1000), 10000);
	CHECK_INT(listing_max_pages(1), 10000000);
	CHECK_INT(listing_max_pages(100000000), 1000);
}

/* The same token again, or any token seen before, is a loop: EIO at once. */
TEST(fetch_repeated_token)
{
	struct liar s = liar(SAME_TOKEN, 0, 10);
	struct store_dir *l;

	CHECK_INT(fetch(&s, NULL, &l), -EIO);
	CHECK_INT(s.calls, 2);
	CHECK(l == NULL);
	s = liar(SAME_TOKEN, 0, 10);
	check_fails_saying(&s, NULL, "ListObjectsV2 under 'd/': page 2 repeats a continuation "
			   "token this listing was already given");
	s = liar(CYCLE, 0, 10);
	check_fails_saying(&s, NULL, "page 4 repeats a continuation token");
	CHECK_INT(s.calls, 4); /* a, b, c, then a again */
	s = liar(NO_TOKEN, 0, 1);
	check_fails_saying(&s, NULL, "page 1 is truncated but has no continuation token");
	CHECK_INT(s.calls, 1);
	s = liar(LONG_TOKEN, 0, 1);
	check_fails_saying(&s, NULL, "a continuation token of 4097 bytes, more than 4096");
	CHECK_INT(s.calls, 1);
}

/* Always a new token: the page cap, the memory bounds, the time bound, a cancel. */
TEST(fetch_endless_new_tokens)
{
	struct liar s = liar(NEW_TOKEN, 0, 0);
	struct counts c = { 0 };
	struct listing_bounds b = { .max_pages = 50 };
	struct store_dir *l;
	long long t0;

	/* empty pages: the page cap */
	check_fails_saying(&s, &b, "listing of 'd/' stopped after 50 pages (0 entries)");
	CHECK_INT(s.calls, 50);

	/* full pages: this listing's own bound (1 MiB), long before any page cap */
	s = liar(NEW_TOKEN, 0, 1000);
	b = (struct listing_bounds){ .max_bytes = 1 << 20 };
	check_fails_saying(&s, &b, "needs more than --metadata-cache-size (1 MiB)");
	CHECK(s.calls > 1 && s.calls < 20);

	/* ... or the shared reservation refusing more */
	s = liar(NEW_TOKEN, 0, 1000);
	c = (struct counts){ .refuse_over = 1 << 20 };
	b = (struct listing_bounds){ .charge = count_charge, .ctx = &c };
	check_fails_saying(&s, &b, "the listings being built at once hold all of "
			   "--metadata-cache-size");
	CHECK(s.calls > 1 && s.calls < 20);
	CHECK(c.charged <= 1 << 20 && c.charged > 0);

	/* the time bound, checked before each page (a deadline already past: no request) */
	s = liar(NEW_TOKEN, 0, 1);
	b = (struct listing_bounds){ .deadline_ms = clock_mono_ms() };
	check_fails_saying(&s, &b, "listing of 'd/' is not done within --list-timeout");
	CHECK_INT(s.calls, 0);
	s = liar(NEW_TOKEN, 0, 1);
	s.sleep_ms = 20;
	t0 = clock_mono_ms();
	b = (struct listing_bounds){ .deadline_ms = t0 + 200 };
	CHECK_INT(fetch(&s, &b, &l), -EIO);
	CHECK(s.calls >= 1 && s.calls <= 11);
	CHECK(clock_mono_ms() >= t0 + 200);

	/* nobody waits any more: abandoned before the next page, no log line needed */
	s = liar(NEW_TOKEN, 0, 10);
	c = (struct counts){ .cancel_after = 4 };
	b = (struct listing_bounds){ .cancelled = count_cancelled, .ctx = &c };
	CHECK_INT(fetch(&s, &b, &l), -EINTR);
	CHECK_INT(s.calls, 3);
}

static void fetch_bad_twice(void *arg)
{
	struct liar *s = arg;
	struct store_dir *l;
	int i;

	for (i = 0; i < 2; i++) {
		CHECK_INT(fetch(s, NULL, &l), 0);
		CHECK(l && l->n == 1 && !strcmp(l->e[0].name, "ok.txt"));
		store_dir_release(l);
	}
}

static size_t count_of(const char *hay, const char *needle)
{
	size_t n = 0;

	for (; hay && (hay = strstr(hay, needle)); hay++)
		n++;
	return n;
}

/* Entries the parser drops are named in the log, once each, and the rest is listed. */
TEST(fetch_logs_dropped_entries_once)
{
	struct liar s = liar(BAD_ENTRIES, 1, 0);
	int level = log_get_level();
	char *log;

	log_set_level(LOG_NOTICE);
	log = stderr_of(fetch_bad_twice, &s);
	log_set_level(level);
	CHECK(log != NULL);
	CHECK_INT(count_of(log, "hiding s3 key 'd/nul%00.txt'"), 1);
	CHECK_INT(count_of(log, "%00, a NUL byte"), 1);
	CHECK_INT(count_of(log, "hiding s3 key 'd/huge.bin'"), 1);
	CHECK_INT(count_of(log, "'9223372036854775807' is not a size"), 1);
	CHECK_INT(count_of(log, "\n"), 2);
	free(log);
}

int main(void)
{
	log_set_level(LOG_ERR);
	xml_global_init();
	RUN(names);
	RUN(dir_and_dash_sort_order);
	RUN(directory_shadows_file);
	RUN(marker_and_hidden_names);
	RUN(entries_keep_etag_and_storage_class);
	RUN(packed_attributes_round_trip);
	RUN(long_name_hidden);
	RUN(foreign_keys_ignored);
	RUN(empty_listing);
	/* The bounds log at error level: keep the output to the checks. */
	log_set_level(LOG_CRIT);
	RUN(fetch_honest_pages);
	RUN(fetch_repeated_token);
	RUN(fetch_endless_new_tokens);
	RUN(fetch_logs_dropped_entries_once);
	return harness_done();
}
