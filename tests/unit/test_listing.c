/*
 * Unit tests for cache/listing.c: how S3 keys become names, the order and the
 * chunked storage, and how a fetch is bounded against a lying server. The
 * server here is a store whose pages are ListObjectsV2 XML written per
 * request and run through the real parser. The order across pages is
 * cache/listorder.c's (test_listorder.c).
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/listing.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/strutil.h"
#include "harness.h"

/* What malloc has handed out and not had back: heap blocks and mapped ones. */
static inline size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}
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
	struct store_dir *l = listing_of_page(dir, &p);

	CHECK(l != NULL);
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

/*
 * Names sort as if each ended in '/', as S3 sends directories: "dir-1" ('-'
 * is below '/') before "dir", files too, and store_dir_find agrees.
 */
TEST(names_sort_as_directories_would)
{
	static const char *const prefixes[] = { "dir/", "dir-1/" };
	static const char *const keys[] = { "a0", "a", "a.txt", "a!b" };
	struct store_dir *l = build("", keys, 4, prefixes, 2);
	static const char *const want[] = { "a!b", "a.txt", "a", "a0", "dir-1", "dir" };
	size_t i;

	CHECK_INT(l->n, 6);
	for (i = 0; i < 6 && i < l->n; i++) {
		CHECK_STR(store_dir_at(l, i)->name, want[i]);
		CHECK(store_dir_find(l, want[i]) == store_dir_at(l, i));
	}
	CHECK(store_dir_at(l, 5)->is_dir && !store_dir_at(l, 2)->is_dir);
	CHECK(store_name_cmp("a", "a.txt") > 0 && store_name_cmp("a", "a0") < 0);
	CHECK(store_name_cmp("a", "a") == 0 && store_name_cmp("", "a") < 0);
	CHECK(store_dir_find(l, "a/") == NULL && store_dir_find(l, "b") == NULL);
	store_dir_release(l);
}

/* Appending fills chunks of STORE_DIR_CHUNK; letting go frees whole chunks only. */
TEST(chunks_append_and_let_go)
{
	struct store_dir *l = store_dir_new();
	struct listing_batch b = { 0 };
	size_t i, bytes, freed;
	char name[16];

	for (i = 0; i < 3 * STORE_DIR_CHUNK + 10; i++) {
		snprintf(name, sizeof(name), "f%07zu", i);
		CHECK_INT(listing_batch_add(&b, name, strlen(name), 0, NULL), 0);
		if (b.n == 300 || i == 3 * STORE_DIR_CHUNK + 9) {
			CHECK_INT(listing_append(l, &b), 0);
			CHECK(b.n == 0 && b.bytes == 0);
		}
	}
	CHECK_INT(l->n, 3 * STORE_DIR_CHUNK + 10);
	CHECK_STR(store_dir_at(l, STORE_DIR_CHUNK + 7)->name, "f0001031");
	CHECK(store_dir_find(l, "f0002000") == store_dir_at(l, 2000));
	bytes = l->bytes;
	/* below 1,500: only chunk 0 is wholly below */
	freed = store_dir_let_go(l, 1500);
	CHECK_INT(l->first, STORE_DIR_CHUNK);
	CHECK(freed > STORE_DIR_CHUNK * sizeof(struct store_dirent));
	CHECK_INT(l->bytes, bytes - freed);
	CHECK_STR(store_dir_at(l, STORE_DIR_CHUNK)->name, "f0001024");
	/* past the end: every whole chunk, never the one still filling */
	store_dir_let_go(l, l->n + 5);
	CHECK_INT(l->first, 3 * STORE_DIR_CHUNK);
	CHECK_STR(store_dir_at(l, l->n - 1)->name, "f0003081");
	listing_batch_cleanup(&b);
	store_dir_release(l);
}

/*
 * The books (l->bytes, which --metadata-cache-size is held to) are what the
 * heap gave: 100,000 names of 8 bytes with an ETag and a storage class.
 * Counting the strings alone said 2/3 of it. Plain glibc builds only: a
 * sanitizer's allocator is not glibc's, and mallinfo2 does not see it.
 */
TEST(books_are_what_the_heap_gave)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	harness_skip("a sanitizer's allocator: the heap's figures are not glibc's");
#else
	struct store_attr a = { .size = 1 };
	struct store_attr_packed pa;
	struct listing_batch b = { 0 };
	struct store_dir *l;
	size_t before, i;
	char name[16];
	double ratio;

	snprintf(a.etag, sizeof(a.etag), "\"%032x\"", 7);
	strcpy(a.storage_class, "STANDARD");
	CHECK_INT(store_attr_pack(&pa, &a), 0);
	malloc_trim(0);
	before = heap_in_use();
	l = store_dir_new();
	for (i = 0; i < 100000; i++) {
		snprintf(name, sizeof(name), "k%07zu", i);
		CHECK_INT(listing_batch_add(&b, name, strlen(name), 0, &pa), 0);
		if (b.n == 1000)
			CHECK_INT(listing_append(l, &b), 0);
	}
	listing_batch_cleanup(&b);
	ratio = (double)l->bytes / (double)(heap_in_use() - before);
	printf("  books %zu, heap %zu: %.3f\n", l->bytes, heap_in_use() - before, ratio);
	CHECK(ratio > 0.95 && ratio < 1.05);
	store_dir_release(l);
	store_attr_packed_clear(&pa);
#endif
}

TEST(directory_shadows_file)
{
	static const char *const keys[] = { "blue", "hello.txt" };
	static const char *const prefixes[] = { "blue/" };
	struct store_dir *l = build("", keys, 2, prefixes, 1);

	CHECK_INT(l->n, 2);
	CHECK_STR(store_dir_at(l, 0)->name, "blue");
	CHECK(store_dir_at(l, 0)->is_dir);
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
	CHECK_STR(store_dir_at(l, 0)->name, "ok.txt");
	CHECK_INT(store_dir_at(l, 0)->attr.size, 2);
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
	CHECK_STR(store_dir_at(l, 0)->name, "short");
	store_dir_release(l);
}

TEST(foreign_keys_ignored)
{
	static const char *const keys[] = { "other/x", "d/y" };
	struct store_dir *l = build("d/", keys, 2, NULL, 0);

	CHECK_INT(l->n, 1);
	CHECK_STR(store_dir_at(l, 0)->name, "y");
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
		buf_printf(&b, "<Contents><Key>%sp%05d-k%05d</Key><Size>%d</Size>"
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
	int polls, cancel_after;	/* cancelled() says yes from this poll on; 0: never */
};

static int count_cancelled(void *ctx)
{
	struct counts *c = ctx;

	return c->cancel_after && ++c->polls >= c->cancel_after;
}

/* The whole listing, page after page (what cache/dirfetch.c does, without a stream). */
static int fetch(struct liar *s, struct listing_bounds *b, struct store_dir **out)
{
	struct listing_batch batch = { 0 };
	struct listing_fetch f;
	struct store_dir *l = store_dir_new();
	struct store_error e;
	int rc;

	*out = NULL;
	rc = listing_fetch_init(&f, &s->base, "d/", 1000, b);
	if (rc) {
		store_dir_release(l);
		return rc;
	}
	do {
		rc = listing_fetch_page(&f, &batch, &e);
		if (rc >= 0 && listing_append(l, &batch) != 0)
			rc = -ENOMEM;
		/* What the fetch holds of its own stays small: tokens and held-back files. */
		CHECK(listing_fetch_bytes(&f) < 64 * 1024);
	} while (rc == 1);
	listing_batch_cleanup(&batch);
	listing_fetch_cleanup(&f);
	if (rc) {
		store_dir_release(l);
		return rc;
	}
	*out = l;
	return 0;
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

/* An honest listing of many pages comes back whole, in order. */
TEST(fetch_honest_pages)
{
	struct liar s = liar(HONEST, 30, 100);
	struct store_dir *l;
	size_t i;

	CHECK_INT(fetch(&s, NULL, &l), 0);
	CHECK_INT(s.calls, 30);
	CHECK_STR(s.last_token, "token-28");
	CHECK(l && l->n == 3000);
	CHECK(l && store_dir_find(l, "p00029-k00099") != NULL);
	for (i = 1; l && i < l->n; i++)
		CHECK(store_name_cmp(store_dir_at(l, i - 1)->name, store_dir_at(l, i)->name) < 0);
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

/*
 * Always a new token: the page cap, the time bound, a cancel. (Memory is the
 * stream's to bound: a listing past the cache is streamed in a window,
 * test_dirfetch.c.)
 */
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
	/* full pages count their entries in the line (the last file is held back: cache/listorder.h) */
	s = liar(NEW_TOKEN, 0, 10);
	check_fails_saying(&s, &b, "listing of 'd/' stopped after 50 pages (499 entries)");

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
		CHECK(l && l->n == 1 && !strcmp(store_dir_at(l, 0)->name, "ok.txt"));
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
	RUN(names_sort_as_directories_would);
	RUN(chunks_append_and_let_go);
	RUN(books_are_what_the_heap_gave);
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
