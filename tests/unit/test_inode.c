/* Unit tests for fs/inode.c: nodes, lookup counts, denials, the last denial. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/inode.h"
#include "harness.h"

#define HOUR_MS (3600LL * 1000)

static struct inode_table *table(long long ttl)
{
	struct inode_table *t = inode_table_new("pre/");

	inode_table_set_ttl(t, ttl);
	return t;
}

TEST(lookup_forget)
{
	struct inode_table *t = table(HOUR_MS);
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
	struct inode_table *t = table(HOUR_MS);
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
	inode_table_set_ttl(t, 0);
	CHECK_INT(inode_is_denied(t, f), 0);
	inode_table_free(t);
}

TEST(last_denial)
{
	struct inode_table *t = table(HOUR_MS);
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
	RUN(last_denial);
	return harness_done();
}
