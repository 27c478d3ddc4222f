/* Unit tests for fs/inode.c: nodes, denials, negative entries, listing bounds. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/inode.h"
#include "fs/listing.h"
#include "harness.h"

#define HOUR_MS (3600LL * 1000)

static struct inode_table *table(long long ttl, long long neg_ttl, size_t max_bytes,
				 size_t max_neg)
{
	struct inode_table *t = inode_table_new("pre/");
	struct inode_limits lim = {
		.ttl_ms = ttl,
		.negative_ttl_ms = neg_ttl,
		.max_listing_bytes = max_bytes,
		.max_negative = max_neg,
	};

	inode_table_set_limits(t, &lim);
	return t;
}

/* A finished listing of n files named f0..f(n-1). */
static struct listing *listing_of(size_t n)
{
	struct listing *l;
	struct s3_list_page p;
	size_t i;

	memset(&p, 0, sizeof(p));
	p.objects = calloc(n, sizeof(*p.objects));
	for (i = 0; i < n; i++) {
		if (asprintf(&p.objects[i].key, "d/f%zu", i) < 0)
			p.objects[i].key = NULL;
		p.objects[i].etag = strdup("\"e\"");
		strcpy(p.objects[i].storage_class, "STANDARD");
	}
	p.nobjects = n;
	l = listing_of_page("d/", &p);
	CHECK(l != NULL && l->n == n);
	s3_list_page_cleanup(&p);
	return l;
}

TEST(lookup_forget)
{
	struct inode_table *t = table(HOUR_MS, HOUR_MS, 0, 0);
	struct inode_info ii;
	struct store_attr a = { .size = 7 };
	uint64_t f, again;

	f = inode_lookup_ref(t, "pre/f", 0, &a);
	CHECK(f > 1);
	again = inode_lookup_ref(t, "pre/f", 0, NULL);
	CHECK_INT(again, f);
	CHECK(inode_lookup_ref(t, "pre/f/", 1, NULL) != f); /* a directory is another node */
	CHECK_INT(inode_get(t, f, &ii), 0);
	CHECK_STR(ii.key, "pre/f");
	CHECK_INT(ii.attr.size, 7);
	CHECK_INT(ii.denied, 0);
	inode_info_cleanup(&ii);
	CHECK_INT(inode_count(t), 3);
	inode_forget(t, f, 2);
	CHECK_INT(inode_get(t, f, &ii), -ENOENT);
	inode_info_cleanup(&ii);
	CHECK_INT(inode_count(t), 2);
	inode_forget(t, 1, 1); /* the root is pinned */
	CHECK_INT(inode_get(t, 1, &ii), 0);
	CHECK_STR(ii.key, "pre/");
	inode_info_cleanup(&ii);
	inode_table_free(t);
}

TEST(denial_shows_until_the_ttl)
{
	struct inode_table *t = table(HOUR_MS, HOUR_MS, 0, 0);
	struct inode_info ii;
	uint64_t f = inode_lookup_ref(t, "pre/f", 0, NULL);

	CHECK_INT(inode_is_denied(t, f), 0);
	inode_set_denied(t, f);
	CHECK_INT(inode_is_denied(t, f), 1);
	CHECK_INT(inode_get(t, f, &ii), 0);
	CHECK_INT(ii.denied, 1);
	inode_info_cleanup(&ii);
	CHECK_INT(inode_is_denied(t, 1), 0);
	CHECK_INT(inode_is_denied(t, 999), 0);
	/* A TTL of 0: a denial is never shown. */
	inode_table_set_limits(t, &(struct inode_limits){ .ttl_ms = 0 });
	CHECK_INT(inode_is_denied(t, f), 0);
	inode_table_free(t);
}

TEST(negative_entries)
{
	struct inode_table *t = table(HOUR_MS, HOUR_MS, 0, 3);

	CHECK_INT(inode_neg_get(t, "pre/a"), 0);
	inode_neg_put(t, "pre/a", -ENOENT);
	inode_neg_put(t, "pre/b", -EACCES);
	inode_neg_put(t, "pre/c", -EIO); /* not remembered */
	CHECK_INT(inode_neg_get(t, "pre/a"), -ENOENT);
	CHECK_INT(inode_neg_get(t, "pre/b"), -EACCES);
	CHECK_INT(inode_neg_get(t, "pre/c"), 0);
	CHECK_INT(inode_neg_count(t), 2);
	/* A new answer for the same key replaces the old one. */
	inode_neg_put(t, "pre/a", -EACCES);
	CHECK_INT(inode_neg_get(t, "pre/a"), -EACCES);
	CHECK_INT(inode_neg_count(t), 2);
	/* Bounded: the oldest goes first. */
	inode_neg_put(t, "pre/d", -ENOENT);
	inode_neg_put(t, "pre/e", -ENOENT);
	CHECK_INT(inode_neg_count(t), 3);
	CHECK_INT(inode_neg_get(t, "pre/b"), 0);
	CHECK_INT(inode_neg_get(t, "pre/a"), -EACCES);
	CHECK_INT(inode_neg_get(t, "pre/e"), -ENOENT);
	/* Each kind has its own TTL. */
	inode_table_set_limits(t, &(struct inode_limits){ .ttl_ms = HOUR_MS, .negative_ttl_ms = 0 });
	CHECK_INT(inode_neg_get(t, "pre/e"), 0);
	CHECK_INT(inode_neg_get(t, "pre/a"), -EACCES);
	inode_table_set_limits(t, &(struct inode_limits){ .ttl_ms = 0, .negative_ttl_ms = 0 });
	CHECK_INT(inode_neg_get(t, "pre/a"), 0);
	CHECK_INT(inode_neg_count(t), 1); /* expired ones are dropped when seen */
	inode_neg_clear(t);
	CHECK_INT(inode_neg_count(t), 0);
	inode_table_free(t);
}

TEST(many_negative_entries_stay_bounded)
{
	struct inode_table *t = table(HOUR_MS, HOUR_MS, 0, 100);
	char key[32];
	int i;

	for (i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "pre/n%d", i);
		inode_neg_put(t, key, -ENOENT);
	}
	CHECK_INT(inode_neg_count(t), 100);
	CHECK_INT(inode_neg_get(t, "pre/n4999"), -ENOENT);
	CHECK_INT(inode_neg_get(t, "pre/n4900"), -ENOENT);
	CHECK_INT(inode_neg_get(t, "pre/n4899"), 0);
	inode_table_free(t);
}

TEST(listings_are_bounded_oldest_first)
{
	struct listing *l1 = listing_of(100), *l2 = listing_of(100), *l3 = listing_of(100), *got;
	size_t one;
	struct inode_table *t;
	uint64_t d1, d2, d3;

	/* Measure one listing's cost, then allow two and a half of them. */
	t = table(HOUR_MS, HOUR_MS, 1 << 30, 0);
	d1 = inode_lookup_ref(t, "pre/d1/", 1, NULL);
	inode_set_listing(t, d1, l1);
	one = inode_listing_bytes(t);
	CHECK(one > 100 * sizeof(struct listing_entry));
	inode_table_free(t);

	t = table(HOUR_MS, HOUR_MS, one * 5 / 2, 0);
	d1 = inode_lookup_ref(t, "pre/d1/", 1, NULL);
	d2 = inode_lookup_ref(t, "pre/d2/", 1, NULL);
	d3 = inode_lookup_ref(t, "pre/d3/", 1, NULL);
	l2->fetched_ms = l1->fetched_ms + 1;
	l3->fetched_ms = l1->fetched_ms + 2;
	inode_set_listing(t, d1, l1);
	inode_set_listing(t, d2, l2);
	CHECK_INT(inode_listing_bytes(t), 2 * one);
	inode_set_listing(t, d3, l3);
	CHECK_INT(inode_listing_bytes(t), 2 * one);
	got = inode_get_listing(t, d1, HOUR_MS);
	CHECK(got == NULL); /* the oldest was dropped */
	got = inode_get_listing(t, d3, HOUR_MS);
	CHECK(got == l3);
	listing_release(got);
	got = inode_get_listing(t, d2, HOUR_MS);
	CHECK(got == l2);
	listing_release(got);
	/* Replacing a listing does not count it twice. */
	inode_set_listing(t, d2, l2);
	CHECK_INT(inode_listing_bytes(t), 2 * one);
	/* Forgetting a node gives its bytes back. */
	inode_forget(t, d3, 1);
	CHECK_INT(inode_listing_bytes(t), one);
	inode_table_free(t);

	/* A listing larger than the whole cache is not kept. */
	t = table(HOUR_MS, HOUR_MS, one / 2, 0);
	d1 = inode_lookup_ref(t, "pre/d1/", 1, NULL);
	inode_set_listing(t, d1, l1);
	CHECK_INT(inode_listing_bytes(t), 0);
	CHECK(inode_get_listing(t, d1, HOUR_MS) == NULL);
	inode_table_free(t);
	listing_release(l1);
	listing_release(l2);
	listing_release(l3);
}

/*
 * Listings being fetched reserve their bytes from the same cache: cached
 * listings make room for them, and the reservations together never exceed
 * the cache. A finished listing is kept only beside what is still reserved.
 */
TEST(reservations_share_the_cache)
{
	struct listing *l1 = listing_of(100), *l2 = listing_of(100), *got;
	size_t one = l1->bytes;
	struct inode_table *t = table(HOUR_MS, HOUR_MS, one * 3, 0);
	uint64_t d1 = inode_lookup_ref(t, "pre/d1/", 1, NULL);
	uint64_t d2 = inode_lookup_ref(t, "pre/d2/", 1, NULL);

	CHECK(one > 100 * sizeof(struct listing_entry));
	l2->fetched_ms = l1->fetched_ms + 1;
	inode_set_listing(t, d1, l1);
	inode_set_listing(t, d2, l2);
	CHECK_INT(inode_listing_bytes(t), 2 * one);
	/* A fetch of a third of the cache fits; the next third evicts the oldest. */
	CHECK_INT(inode_listing_reserve(t, one), 0);
	CHECK_INT(inode_listing_bytes(t), 2 * one);
	CHECK_INT(inode_listing_reserve(t, one), 0);
	CHECK_INT(inode_listing_bytes(t), one);
	got = inode_get_listing(t, d1, HOUR_MS);
	CHECK(got == NULL);
	/* More than what is left is refused, and changes nothing. */
	CHECK_INT(inode_listing_reserve(t, one + 1), -ENOSPC);
	CHECK_INT(inode_listing_reserve(t, one), 0);
	CHECK_INT(inode_listing_bytes(t), 0);
	CHECK_INT(inode_listing_reserve(t, 1), -ENOSPC);
	/* With the whole cache reserved, a finished listing is served but not kept. */
	inode_set_listing(t, d1, l1);
	CHECK_INT(inode_listing_bytes(t), 0);
	inode_listing_unreserve(t, 2 * one);
	inode_set_listing(t, d1, l1);
	CHECK_INT(inode_listing_bytes(t), one);
	/* Returning more than is reserved cannot wrap the count. */
	inode_listing_unreserve(t, 5 * one);
	CHECK_INT(inode_listing_reserve(t, 3 * one), 0);
	CHECK_INT(inode_listing_bytes(t), 0);
	CHECK_INT(inode_listing_reserve(t, 1), -ENOSPC);
	inode_table_free(t);
	listing_release(l1);
	listing_release(l2);
}

TEST(stale_listing_is_freed_when_seen)
{
	struct inode_table *t = table(0, 0, 1 << 20, 0);
	struct listing *l = listing_of(10);
	uint64_t d = inode_lookup_ref(t, "pre/d/", 1, NULL);

	inode_set_listing(t, d, l);
	CHECK(inode_listing_bytes(t) > 0);
	CHECK(inode_get_listing(t, d, 0) == NULL);
	CHECK_INT(inode_listing_bytes(t), 0);
	listing_release(l);
	inode_table_free(t);
}

TEST(last_denial)
{
	struct inode_table *t = table(HOUR_MS, HOUR_MS, 0, 0);
	char out[64];

	inode_last_denial(t, out, sizeof(out));
	CHECK_STR(out, "");
	inode_set_last_denial(t, "s3:GetObject on arn:aws:s3:::b/k: 403 AccessDenied");
	inode_last_denial(t, out, sizeof(out));
	CHECK_STR(out, "s3:GetObject on arn:aws:s3:::b/k: 403 AccessDenied");
	inode_table_free(t);
}

int main(void)
{
	RUN(lookup_forget);
	RUN(denial_shows_until_the_ttl);
	RUN(negative_entries);
	RUN(many_negative_entries_stay_bounded);
	RUN(listings_are_bounded_oldest_first);
	RUN(reservations_share_the_cache);
	RUN(stale_listing_is_freed_when_seen);
	RUN(last_denial);
	return harness_done();
}
