/* Unit tests for fs/listing.c: how S3 keys become names. */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "fs/listing.h"
#include "harness.h"

static struct s3_list_page page_of(const char *const *keys, size_t nkeys,
				   const char *const *prefixes, size_t nprefixes)
{
	struct s3_list_page p;
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

static struct listing *build(const char *dir, const char *const *keys, size_t nkeys,
			     const char *const *prefixes, size_t nprefixes)
{
	struct s3_list_page p = page_of(keys, nkeys, prefixes, nprefixes);
	struct listing *l = listing_new();

	CHECK_INT(listing_add_page(l, dir, &p), 0);
	listing_finish(l, dir);
	s3_list_page_cleanup(&p);
	return l;
}

TEST(names)
{
	CHECK(listing_name_ok("a", 1));
	CHECK(!listing_name_ok("", 0));
	CHECK(!listing_name_ok(".", 1));
	CHECK(!listing_name_ok("..", 2));
	CHECK(listing_name_ok("...", 3));
	CHECK(!listing_name_ok("a/b", 3));
	{
		char n[257];

		memset(n, 'x', 256);
		n[256] = 0;
		CHECK(listing_name_ok(n, 255));
		CHECK(!listing_name_ok(n, 256));
	}
}

TEST(dir_and_dash_sort_order)
{
	static const char *const prefixes[] = { "dir-1/", "dir/" };
	struct listing *l = build("", NULL, 0, prefixes, 2);

	CHECK_INT(l->n, 2);
	CHECK_STR(l->e[0].name, "dir");
	CHECK_STR(l->e[1].name, "dir-1");
	CHECK(l->e[0].is_dir && l->e[1].is_dir);
	listing_release(l);
}

TEST(directory_shadows_file)
{
	static const char *const keys[] = { "blue", "hello.txt" };
	static const char *const prefixes[] = { "blue/" };
	struct listing *l = build("", keys, 2, prefixes, 1);

	CHECK_INT(l->n, 2);
	CHECK_STR(l->e[0].name, "blue");
	CHECK(l->e[0].is_dir);
	CHECK(listing_find(l, "hello.txt") != NULL);
	CHECK(listing_find(l, "nope") == NULL);
	listing_release(l);
}

TEST(marker_and_hidden_names)
{
	static const char *const keys[] = { "hidden/", "hidden/ok.txt" };
	static const char *const prefixes[] = { "hidden//", "hidden/./", "hidden/../" };
	struct listing *l = build("hidden/", keys, 2, prefixes, 3);

	CHECK_INT(l->n, 1);
	CHECK_STR(l->e[0].name, "ok.txt");
	CHECK_INT(l->e[0].attr.size, 2);
	listing_release(l);
}

TEST(entries_keep_etag_and_storage_class)
{
	static const char *const keys[] = { "a", "b" };
	static const char *const prefixes[] = { "d/" };
	struct listing *l = build("", keys, 2, prefixes, 1);
	struct store_attr a;

	CHECK_INT(l->n, 3);
	listing_entry_attr(listing_find(l, "b"), &a);
	CHECK_INT(a.size, 2);
	CHECK_STR(a.etag, "\"e\"");
	CHECK_STR(a.storage_class, "STANDARD");
	CHECK_STR(a.content_type, "");
	/* A directory carries no attributes at all. */
	CHECK(listing_find(l, "d")->attr.strings == NULL);
	listing_entry_attr(listing_find(l, "d"), &a);
	CHECK_STR(a.etag, "");
	listing_release(l);
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
	struct listing *l;

	strcpy(key, "d/");
	memset(key + 2, 'x', 256);
	key[258] = 0;
	keys[0] = key;
	keys[1] = "d/short";
	l = build("d/", keys, 2, NULL, 0);
	CHECK_INT(l->n, 1);
	CHECK_STR(l->e[0].name, "short");
	listing_release(l);
}

TEST(foreign_keys_ignored)
{
	static const char *const keys[] = { "other/x", "d/y" };
	struct listing *l = build("d/", keys, 2, NULL, 0);

	CHECK_INT(l->n, 1);
	CHECK_STR(l->e[0].name, "y");
	listing_release(l);
}

/* Regression: an empty directory once passed a NULL base to qsort (UBSan). */
TEST(empty_listing)
{
	struct listing *l = build("empty/", NULL, 0, NULL, 0);

	CHECK_INT(l->n, 0);
	CHECK(listing_find(l, "x") == NULL);
	listing_release(l);
}

int main(void)
{
	log_set_level(LOG_ERR);
	RUN(names);
	RUN(dir_and_dash_sort_order);
	RUN(directory_shadows_file);
	RUN(marker_and_hidden_names);
	RUN(entries_keep_etag_and_storage_class);
	RUN(packed_attributes_round_trip);
	RUN(long_name_hidden);
	RUN(foreign_keys_ignored);
	RUN(empty_listing);
	return harness_done();
}
