/* Unit tests for fs/inode.c: nodes, lookup counts, denials, the last denial. */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/inode.h"
#include "harness.h"

/* What malloc has handed out and not had back: heap blocks and mapped ones. */
static inline size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

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

/* Pick n names into got; returns how many, checks each against want ("ino:parent:name"). */
static void check_picked(struct inode_table *t, size_t max, const char *const *want, size_t nwant)
{
	struct inode_name got[8];
	size_t n = inode_pick_unused(t, got, max, SIZE_MAX, 1), i;
	char s[64];

	CHECK_INT(n, nwant);
	for (i = 0; i < n; i++) {
		if (i < nwant) {
			snprintf(s, sizeof(s), "%llu:%llu:%s", (unsigned long long)got[i].ino,
				 (unsigned long long)got[i].parent, got[i].name);
			CHECK_STR(s, want[i]);
		}
		free(got[i].name);
	}
}

TEST(unused_files_go_oldest_first_and_come_back)
{
	struct inode_table *t = table(HOUR_MS);
	struct inode_info ii;
	uint64_t f1, f2, d, g;

	f1 = inode_lookup_ref(t, "pre/f1", 0, NULL);
	f2 = inode_lookup_ref(t, "pre/f2", 0, NULL);
	d = inode_lookup_ref(t, "pre/d/", 1, NULL);
	g = inode_lookup_ref(t, "pre/d/g", 0, NULL);
	CHECK_INT(f1, 2);
	CHECK_INT(f2, 3);
	CHECK_INT(d, 4);
	CHECK_INT(g, 5);
	/* used: f1 is now the most recent */
	CHECK_INT(inode_get(t, f1, &ii), 0);
	inode_info_cleanup(&ii);
	{
		const char *const want[] = { "3:1:f2", "5:4:g" };

		check_picked(t, 2, want, 2);
	}
	{
		/* never the root or a directory with a name in it (d has g), never a name let go */
		const char *const want[] = { "2:1:f1" };

		check_picked(t, 8, want, 1);
	}
	check_picked(t, 8, NULL, 0);
	/* looked up again, f2 is the kernel's again: it can go again */
	CHECK_INT(inode_lookup_ref(t, "pre/f2", 0, NULL), f2);
	{
		const char *const want[] = { "3:1:f2" };

		check_picked(t, 8, want, 1);
	}
	/* a name let go stays until its FORGET */
	CHECK_INT(inode_count(t), 5);
	inode_forget(t, f2, 2);
	inode_forget(t, g, 1);
	CHECK_INT(inode_count(t), 3);
	{
		/* d's last name went: d can go now, by its name without the '/' */
		const char *const want[] = { "4:1:d" };

		check_picked(t, 8, want, 1);
	}
	check_picked(t, 8, NULL, 0);
	inode_table_free(t);
}

/*
 * The kernel pins a directory while it holds a name in it: a directory is
 * named only once it has no node in it, as old as its last one, and a
 * name that comes into a directory let go takes it back.
 */
TEST(directories_go_after_their_names)
{
	struct inode_table *t = table(HOUR_MS);
	size_t going, cost;
	uint64_t a, b, c, x, f, y;

	a = inode_lookup_ref(t, "pre/a/", 1, NULL);
	b = inode_lookup_ref(t, "pre/a/b/", 1, NULL);
	c = inode_lookup_ref(t, "pre/a/b/c", 0, NULL);
	f = inode_lookup_ref(t, "pre/f", 0, NULL);
	{
		const char *const want[] = { "4:3:c", "5:1:f" };

		check_picked(t, 8, want, 2);
	}
	inode_forget(t, c, 1);
	{
		/* b is as old as c was: before any newer name */
		const char *const want[] = { "3:2:b" };

		x = inode_lookup_ref(t, "pre/x", 0, NULL);
		CHECK_INT(x, 6);
		check_picked(t, 1, want, 1);
	}
	inode_forget(t, b, 1);
	{
		const char *const want[] = { "2:1:a", "6:1:x" };

		check_picked(t, 8, want, 2);
	}
	/* a name comes into a while it is let go: a is the kernel's again */
	inode_bytes(t, &going);
	cost = going;
	y = inode_lookup_ref(t, "pre/a/y", 0, NULL);
	inode_bytes(t, &going);
	CHECK(going < cost);
	{
		const char *const want[] = { "7:2:y" };

		check_picked(t, 8, want, 1);
	}
	/*
	 * a's FORGET before y's (two threads may take them in either order):
	 * y's is then no kid of the a made anew.
	 */
	inode_forget(t, a, 1);
	a = inode_lookup_ref(t, "pre/a/", 1, NULL);
	CHECK_INT(a, 8);
	CHECK_INT(inode_lookup_ref(t, "pre/a/z", 0, NULL), 9);
	inode_forget(t, y, 1);
	{
		const char *const want[] = { "9:8:z" };

		check_picked(t, 8, want, 1);
	}
	inode_forget(t, 9, 1);
	{
		const char *const want[] = { "8:1:a" };

		check_picked(t, 8, want, 1);
	}
	inode_forget(t, f, 1);
	inode_forget(t, x, 1);
	inode_forget(t, a, 1);
	CHECK_INT(inode_count(t), 1);
	inode_bytes(t, &going);
	CHECK_INT(going, 0);
	inode_table_free(t);
}

/*
 * Where names are let go by name (no FUSE_NOTIFY_PRUNE), a directory is
 * never named: one met stays, and so does one picked before the kernel
 * turned out to lack the prune.
 */
TEST(directories_stay_where_names_go_by_name)
{
	struct inode_table *t = table(HOUR_MS);
	struct inode_name got[8];
	size_t going;
	uint64_t a, b, f;

	a = inode_lookup_ref(t, "pre/a/", 1, NULL);
	b = inode_lookup_ref(t, "pre/b/", 1, NULL);
	f = inode_lookup_ref(t, "pre/a/f", 0, NULL);
	CHECK_INT(inode_pick_unused(t, got, 8, SIZE_MAX, 0), 1);
	CHECK_INT(got[0].ino, f);
	CHECK_INT(got[0].is_dir, 0);
	free(got[0].name);
	inode_forget(t, f, 1);
	CHECK_INT(inode_pick_unused(t, got, 8, SIZE_MAX, 0), 0);
	check_picked(t, 8, NULL, 0);	/* a stays, even where directories may go */
	/* b was met above too; a new one is picked, then kept */
	CHECK_INT(inode_lookup_ref(t, "pre/c/", 1, NULL), 5);
	{
		const char *const want[] = { "5:1:c" };

		check_picked(t, 8, want, 1);
	}
	inode_bytes(t, &going);
	CHECK(going > 0);
	inode_keep_dir(t, 5);
	inode_bytes(t, &going);
	CHECK_INT(going, 0);
	check_picked(t, 8, NULL, 0);
	/* a kept directory's names still go */
	CHECK_INT(inode_lookup_ref(t, "pre/c/g", 0, NULL), 6);
	{
		const char *const want[] = { "6:5:g" };

		check_picked(t, 8, want, 1);
	}
	inode_forget(t, 6, 1);
	check_picked(t, 8, NULL, 0);
	inode_forget(t, a, 1);
	inode_forget(t, b, 1);
	inode_forget(t, 5, 1);
	CHECK_INT(inode_count(t), 1);
	inode_table_free(t);
}

TEST(bytes_are_counted_and_waited_for)
{
	struct inode_table *t = table(HOUR_MS);
	struct store_attr a = { .size = 1, .etag = "\"0123456789abcdef0123456789abcdef\"" };
	size_t empty = inode_bytes(t, NULL), one, going, all;
	struct inode_name got[2];
	uint64_t f;

	CHECK(empty > 0); /* the root and the buckets */
	CHECK_INT(inode_wait_over(t, empty, 0), 0);
	f = inode_lookup_ref(t, "pre/a-name", 0, &a);
	one = inode_bytes(t, NULL);
	CHECK(one > empty + strlen("pre/a-name") + strlen(a.etag));
	CHECK_INT(inode_wait_over(t, empty, 0), 1);
	CHECK_INT(inode_wait_over(t, one, 10), 0);
	CHECK_INT(inode_note_open(t, f, a.etag), 0); /* the open's ETag counts too */
	one = inode_bytes(t, &going);
	CHECK(one > empty + strlen(a.etag));
	CHECK_INT(going, 0);
	/* let go: its bytes are going, and no longer count against a limit */
	CHECK_INT(inode_lookup_ref(t, "pre/b-name", 0, &a), f + 1);
	CHECK_INT(inode_pick_unused(t, got, 2, 1, 1), 1); /* a byte's worth: one name */
	CHECK_STR(got[0].name, "a-name");
	free(got[0].name);
	all = inode_bytes(t, &going);
	CHECK_INT(going, one - empty); /* a-name's cost */
	CHECK_INT(inode_wait_over(t, all - going, 0), 0);
	CHECK_INT(inode_wait_over(t, all - going - 1, 0), 1);
	inode_forget(t, f, 1);
	inode_bytes(t, &going);
	CHECK_INT(going, 0);
	inode_forget(t, f + 1, 1);
	CHECK_INT(inode_bytes(t, NULL), empty);
	inode_wake(t);
	CHECK_INT(inode_wait_over(t, empty, -1), -1); /* woken: no wait, now or later */
	inode_table_free(t);
}

/*
 * inode_bytes, which the names' share is held to, is what the heap gave:
 * 100,000 files with an ETag and a storage class, within 5%. Plain glibc
 * builds only.
 */
TEST(bytes_are_what_the_heap_gave)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	harness_skip("a sanitizer's allocator: the heap's figures are not glibc's");
#else
	struct inode_table *t;
	struct store_attr a = { .size = 1 };
	size_t before, books, heap, i;
	char key[32];
	double ratio;

	snprintf(a.etag, sizeof(a.etag), "\"%032x\"", 7);
	strcpy(a.storage_class, "STANDARD");
	malloc_trim(0);
	before = heap_in_use();
	t = table(HOUR_MS);
	for (i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "pre/m/k%07zu", i);
		CHECK(inode_lookup_ref(t, key, 0, &a) > 1);
	}
	books = inode_bytes(t, NULL);
	heap = heap_in_use() - before;
	ratio = (double)books / (double)heap;
	printf("  books %zu, heap %zu: %.3f\n", books, heap, ratio);
	CHECK(ratio > 0.95 && ratio < 1.05);
	inode_table_free(t);
#endif
}

int main(void)
{
	RUN(lookup_forget);
	RUN(denial_shows_until_the_ttl);
	RUN(last_denial);
	RUN(unused_files_go_oldest_first_and_come_back);
	RUN(directories_go_after_their_names);
	RUN(directories_stay_where_names_go_by_name);
	RUN(bytes_are_counted_and_waited_for);
	RUN(bytes_are_what_the_heap_gave);
	return harness_done();
}
