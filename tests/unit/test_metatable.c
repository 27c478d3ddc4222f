/* Unit tests for cache/metatable.c: negative entries, listing bounds and reservations. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/listing.h"
#include "cache/metatable.h"
#include "harness.h"

#define HOUR_MS (3600LL * 1000)

static struct metatable *table(long long ttl, long long neg_ttl, size_t max_bytes,
			       size_t max_neg)
{
	struct metatable *t = metatable_new();
	struct metatable_limits lim = {
		.ttl_ms = ttl,
		.negative_ttl_ms = neg_ttl,
		.max_listing_bytes = max_bytes,
		.max_negative = max_neg,
	};

	metatable_set_limits(t, &lim);
	return t;
}

/* A finished listing of n files named f0..f(n-1). */
static struct store_dir *listing_of(size_t n)
{
	struct store_dir *l;
	struct store_page p;
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
	CHECK(l != NULL);
	store_page_cleanup(&p);
	return l;
}

TEST(negative_entries)
{
	struct metatable *t = table(HOUR_MS, HOUR_MS, 0, 3);

	CHECK_INT(metatable_neg_get(t, "pre/a"), 0);
	metatable_neg_put(t, "pre/a", -ENOENT);
	metatable_neg_put(t, "pre/b", -EACCES);
	metatable_neg_put(t, "pre/c", -EIO); /* not remembered */
	CHECK_INT(metatable_neg_get(t, "pre/a"), -ENOENT);
	CHECK_INT(metatable_neg_get(t, "pre/b"), -EACCES);
	CHECK_INT(metatable_neg_get(t, "pre/c"), 0);
	CHECK_INT(metatable_neg_count(t), 2);
	/* A new answer for the same key replaces the old one. */
	metatable_neg_put(t, "pre/a", -EACCES);
	CHECK_INT(metatable_neg_get(t, "pre/a"), -EACCES);
	CHECK_INT(metatable_neg_count(t), 2);
	/* Bounded: the oldest goes first. */
	metatable_neg_put(t, "pre/d", -ENOENT);
	metatable_neg_put(t, "pre/e", -ENOENT);
	CHECK_INT(metatable_neg_count(t), 3);
	CHECK_INT(metatable_neg_get(t, "pre/b"), 0);
	CHECK_INT(metatable_neg_get(t, "pre/a"), -EACCES);
	CHECK_INT(metatable_neg_get(t, "pre/e"), -ENOENT);
	/* Each kind has its own TTL. */
	metatable_set_limits(t, &(struct metatable_limits){ .ttl_ms = HOUR_MS, .negative_ttl_ms = 0 });
	CHECK_INT(metatable_neg_get(t, "pre/e"), 0);
	CHECK_INT(metatable_neg_get(t, "pre/a"), -EACCES);
	metatable_set_limits(t, &(struct metatable_limits){ .ttl_ms = 0, .negative_ttl_ms = 0 });
	CHECK_INT(metatable_neg_get(t, "pre/a"), 0);
	CHECK_INT(metatable_neg_count(t), 1); /* expired ones are dropped when seen */
	metatable_neg_clear(t);
	CHECK_INT(metatable_neg_count(t), 0);
	metatable_free(t);
}

TEST(many_negative_entries_stay_bounded)
{
	struct metatable *t = table(HOUR_MS, HOUR_MS, 0, 100);
	char key[32];
	int i;

	for (i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "pre/n%d", i);
		metatable_neg_put(t, key, -ENOENT);
	}
	CHECK_INT(metatable_neg_count(t), 100);
	CHECK_INT(metatable_neg_get(t, "pre/n4999"), -ENOENT);
	CHECK_INT(metatable_neg_get(t, "pre/n4900"), -ENOENT);
	CHECK_INT(metatable_neg_get(t, "pre/n4899"), 0);
	metatable_free(t);
}

TEST(listings_are_bounded_oldest_first)
{
	struct store_dir *l1 = listing_of(100), *l2 = listing_of(100), *l3 = listing_of(100), *got;
	size_t one;
	struct metatable *t;

	/* Measure one listing's cost, then allow two and a half of them. */
	t = table(HOUR_MS, HOUR_MS, 1 << 30, 0);
	metatable_set_dir(t, "pre/d1/", l1);
	one = metatable_listing_bytes(t);
	CHECK(one > 100 * sizeof(struct store_dirent));
	metatable_free(t);

	t = table(HOUR_MS, HOUR_MS, one * 5 / 2, 0);
	l2->fetched_ms = l1->fetched_ms + 1;
	l3->fetched_ms = l1->fetched_ms + 2;
	metatable_set_dir(t, "pre/d1/", l1);
	metatable_set_dir(t, "pre/d2/", l2);
	CHECK_INT(metatable_listing_bytes(t), 2 * one);
	metatable_set_dir(t, "pre/d3/", l3);
	CHECK_INT(metatable_listing_bytes(t), 2 * one);
	got = metatable_get_dir(t, "pre/d1/", HOUR_MS);
	CHECK(got == NULL); /* the oldest was dropped */
	got = metatable_get_dir(t, "pre/d3/", HOUR_MS);
	CHECK(got == l3);
	store_dir_release(got);
	got = metatable_get_dir(t, "pre/d2/", HOUR_MS);
	CHECK(got == l2);
	store_dir_release(got);
	/* Replacing a listing does not count it twice. */
	metatable_set_dir(t, "pre/d2/", l2);
	CHECK_INT(metatable_listing_bytes(t), 2 * one);
	/* Its TTL over, a listing gives its bytes back when it is next looked for. */
	metatable_set_limits(t, &(struct metatable_limits){ .ttl_ms = 0 });
	usleep(5000); /* d3 was made 2 ms younger than it is */
	CHECK(metatable_get_dir(t, "pre/d3/", 0) == NULL);
	CHECK_INT(metatable_listing_bytes(t), one);
	metatable_free(t);

	/* A listing larger than the whole cache is not kept. */
	t = table(HOUR_MS, HOUR_MS, one / 2, 0);
	metatable_set_dir(t, "pre/d1/", l1);
	CHECK_INT(metatable_listing_bytes(t), 0);
	CHECK(metatable_get_dir(t, "pre/d1/", HOUR_MS) == NULL);
	metatable_free(t);
	store_dir_release(l1);
	store_dir_release(l2);
	store_dir_release(l3);
}

/*
 * Listings being fetched reserve their bytes from the same cache: cached
 * listings make room for them, and the reservations together never exceed
 * the cache. A finished listing is kept only beside what is still reserved.
 */
TEST(reservations_share_the_cache)
{
	struct store_dir *l1 = listing_of(100), *l2 = listing_of(100), *got;
	size_t one = l1->bytes;
	struct metatable *t = table(HOUR_MS, HOUR_MS, one * 3, 0);

	CHECK(one > 100 * sizeof(struct store_dirent));
	l2->fetched_ms = l1->fetched_ms + 1;
	metatable_set_dir(t, "pre/d1/", l1);
	metatable_set_dir(t, "pre/d2/", l2);
	CHECK_INT(metatable_listing_bytes(t), 2 * one);
	/* A fetch of a third of the cache fits; the next third evicts the oldest. */
	CHECK_INT(metatable_reserve(t, one), 0);
	CHECK_INT(metatable_listing_bytes(t), 2 * one);
	CHECK_INT(metatable_reserve(t, one), 0);
	CHECK_INT(metatable_listing_bytes(t), one);
	got = metatable_get_dir(t, "pre/d1/", HOUR_MS);
	CHECK(got == NULL);
	/* More than what is left is refused, and changes nothing. */
	CHECK_INT(metatable_reserve(t, one + 1), -ENOSPC);
	CHECK_INT(metatable_reserve(t, one), 0);
	CHECK_INT(metatable_listing_bytes(t), 0);
	CHECK_INT(metatable_reserve(t, 1), -ENOSPC);
	/* With the whole cache reserved, a finished listing is served but not kept. */
	metatable_set_dir(t, "pre/d1/", l1);
	CHECK_INT(metatable_listing_bytes(t), 0);
	metatable_unreserve(t, 2 * one);
	metatable_set_dir(t, "pre/d1/", l1);
	CHECK_INT(metatable_listing_bytes(t), one);
	/* Returning more than is reserved cannot wrap the count. */
	metatable_unreserve(t, 5 * one);
	CHECK_INT(metatable_reserve(t, 3 * one), 0);
	CHECK_INT(metatable_listing_bytes(t), 0);
	CHECK_INT(metatable_reserve(t, 1), -ENOSPC);
	metatable_free(t);
	store_dir_release(l1);
	store_dir_release(l2);
}

TEST(stale_listing_is_freed_when_seen)
{
	struct metatable *t = table(0, 0, 1 << 20, 0);
	struct store_dir *l = listing_of(10);

	metatable_set_dir(t, "pre/d/", l);
	CHECK(metatable_listing_bytes(t) > 0);
	CHECK(metatable_get_dir(t, "pre/d/", 0) == NULL);
	CHECK_INT(metatable_listing_bytes(t), 0);
	store_dir_release(l);
	metatable_free(t);
}

int main(void)
{
	RUN(negative_entries);
	RUN(many_negative_entries_stay_bounded);
	RUN(listings_are_bounded_oldest_first);
	RUN(reservations_share_the_cache);
	RUN(stale_listing_is_freed_when_seen);
	return harness_done();
}
