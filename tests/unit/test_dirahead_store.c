/*
 * cache/dirahead as a store layer (dirahead_store_new): over a store that
 * offers what the metadata cache does (dir_peek, lookup) and opens files.
 * Checked: opens in listing order get their files' first bytes handed down
 * with the open (right bytes, one GET per file); a lookup in a listing past
 * the TTL is answered from the GET ahead (with its content type) instead of
 * going below, and one in a fresh listing goes below; a stale listing that
 * the layer below drops at the first lookup is kept by the stream
 * (dirahead_follow), so the reader's next files are still fetched ahead;
 * the budget is whole again at the end.
 */
#include "cache/dirahead.h"
#include "cache/listing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/membudget.h"
#include "core/strutil.h"
#include "harness.h"
#include "s3/store.h"

#define NF 40

static int gets[NF];			/* atomic: GETs per file */
static int lookups_below;		/* atomic */
static struct store_dir *listing;	/* what dir_peek answers (one reference kept here) */
static int peek_once;			/* dir_peek answers once, then NULL (a dropped listing) */
static struct store_head last_head;	/* what the last open was handed */
static char last_key[64];

static long long size_of(int n)
{
	return 1000 + 37 * n;
}

static unsigned char byte_at(int n, long long off)
{
	return (unsigned char)((n * 31 + off * 5) & 0xff);
}

static int key_num(const char *key)
{
	const char *f = strrchr(key, 'f');

	return f ? atoi(f + 1) : -1;
}

static int fake_read(struct store *s, const char *key, struct store_read *rd, long long off,
		     size_t len, char *dst, size_t *got, struct store_error *e)
{
	int n = key_num(key);
	size_t i;

	(void)s;
	store_error_clear(e);
	if (n < 0 || n >= NF)
		return -ENOENT;
	__atomic_add_fetch(&gets[n], 1, __ATOMIC_RELAXED);
	if ((long long)len > size_of(n) - off)
		len = (size_t)(size_of(n) - off);
	for (i = 0; i < len; i++)
		dst[i] = (char)byte_at(n, off + (long long)i);
	*got = len;
	if (rd && rd->headers) {
		memset(rd->headers, 0, sizeof(*rd->headers));
		snprintf(rd->headers->etag, sizeof(rd->headers->etag), "%s", rd->etag);
		rd->headers->size = size_of(n);
		snprintf(rd->headers->content_type, sizeof(rd->headers->content_type),
			 "text/x-%d", n);
	}
	return 0;
}

static int fake_stat(struct store *s, const char *key, struct store_attr *out,
		     struct store_error *e)
{
	(void)s;
	(void)key;
	(void)out;
	store_error_clear(e);
	return -ENOENT;
}

static int fake_lookup(struct store *s, const char *dir_key, const char *name,
		       struct store_entry *out, struct store_error *e)
{
	(void)s;
	(void)dir_key;
	(void)name;
	memset(out, 0, sizeof(*out));
	store_error_clear(e);
	__atomic_add_fetch(&lookups_below, 1, __ATOMIC_RELAXED);
	return -ENOENT;
}

static struct store_dir *fake_peek(struct store *s, const char *dir_key)
{
	struct store_dir *d = listing;

	(void)s;
	if (!d || strcmp(dir_key, "dir/"))
		return NULL;
	if (peek_once)
		listing = NULL;	/* dropped: the caller gets the table's reference */
	else
		store_dir_ref(d);
	return d;
}

static void fake_close(struct store_file *f)
{
	(void)f;
}

static void fake_destroy(struct store *s)
{
	(void)s;
}

static const struct store_ops file_ops = { .file_close = fake_close };
static struct store file_store = { &file_ops };
static struct store_file a_file = { &file_store };

/* Keeps what it was handed (the test checks and releases it). */
static struct store_file *fake_open(struct store *s, const char *key, const struct store_attr *a,
				    struct store_head *head)
{
	(void)s;
	(void)a;
	snprintf(last_key, sizeof(last_key), "%s", key);
	memset(&last_head, 0, sizeof(last_head));
	if (head)
		last_head = *head;
	return &a_file;
}

static const struct store_ops fake_ops = {
	.stat = fake_stat, .read_range = fake_read, .lookup = fake_lookup,
	.dir_peek = fake_peek, .open = fake_open, .destroy = fake_destroy,
};
static struct store fake_store = { &fake_ops };

/* dir/f00 .. f39, listed age_ms ago. */
static struct store_dir *make_listing(long long age_ms)
{
	struct store_dir *d = store_dir_new();
	struct listing_batch b;
	struct store_attr_packed p;
	struct store_attr a;
	char name[8];
	int i;

	memset(&b, 0, sizeof(b));
	d->fetched_ms -= age_ms;
	for (i = 0; i < NF; i++) {
		memset(&a, 0, sizeof(a));
		a.size = size_of(i);
		snprintf(a.etag, sizeof(a.etag), "\"e%d\"", i);
		snprintf(name, sizeof(name), "f%02d", i);
		CHECK_INT(store_attr_pack(&p, &a), 0);
		CHECK_INT(listing_batch_add(&b, name, strlen(name), 0, &p), 0);
		store_attr_packed_clear(&p);
	}
	CHECK_INT(listing_append(d, &b), 0);
	listing_batch_cleanup(&b);
	CHECK_INT(d->n, NF);
	return d;
}

static void reset(struct store_dir *d, int once)
{
	memset(gets, 0, sizeof(gets));
	lookups_below = 0;
	listing = d;
	peek_once = once;
}

static int fetched(int n)
{
	int t;

	for (t = 0; t < 10000 && !__atomic_load_n(&gets[n], __ATOMIC_RELAXED); t++)
		usleep(1000);
	return __atomic_load_n(&gets[n], __ATOMIC_RELAXED) > 0;
}

/* Open dir/fNN through the layer: 1 when its whole bytes came down with the open. */
static int open_n(struct store *s, int n)
{
	struct store_attr a;
	char key[16];
	int whole = 0;
	long long j;

	memset(&a, 0, sizeof(a));
	a.size = size_of(n);
	snprintf(a.etag, sizeof(a.etag), "\"e%d\"", n);
	snprintf(key, sizeof(key), "dir/f%02d", n);
	store_file_close(store_open(s, key, &a, NULL));
	CHECK_STR(last_key, key);
	if (last_head.buf) {
		whole = (long long)last_head.got == size_of(n);
		for (j = 0; j < (long long)last_head.got; j++)
			if ((unsigned char)last_head.buf[j] != byte_at(n, j))
				whole = 0;
		store_head_release(&last_head);
	}
	return whole;
}

static struct store *layer(struct membudget *mb)
{
	struct store *s = dirahead_store_new(&fake_store, mb, &(struct dirahead_config){
		.max_inflight = 4, .max_files = 8, .max_bytes = 1 << 20 }, 1000);

	CHECK(s != NULL);
	CHECK_INT(dirahead_store_start(s), 0);
	return s;
}

TEST(opens_in_order_get_their_bytes_down_with_the_open)
{
	struct membudget *mb = membudget_new(8 << 20);
	struct store_dir *d = make_listing(0);
	struct store *s = layer(mb);
	struct dirahead_stats st;
	int i, whole = 0;

	reset(d, 0);
	for (i = 0; i < NF; i++) {
		if (i >= 2)
			CHECK(fetched(i));
		whole += open_n(s, i);
	}
	CHECK_INT(whole, NF - 2);
	for (i = 0; i < NF; i++)
		CHECK_INT(gets[i], i < 2 ? 0 : 1);	/* the first two: the open's own read */
	dirahead_store_stats(s, &st);
	CHECK_INT(st.hits, NF - 2);
	store_destroy(s);
	CHECK_INT(membudget_used(mb), 0);
	store_dir_release(d);
	membudget_free(mb);
}

TEST(a_lookup_in_a_stale_listing_is_answered_from_the_get_ahead)
{
	struct membudget *mb = membudget_new(8 << 20);
	struct store_dir *d = make_listing(5000);	/* past the 1 s TTL */
	struct store *s = layer(mb);
	struct store_entry ent;
	struct store_error e;

	reset(d, 0);
	open_n(s, 0);
	open_n(s, 1);
	CHECK(fetched(2));
	CHECK_INT(store_lookup(s, "dir/", "f02", &ent, &e), 0);
	CHECK_INT(lookups_below, 0);
	CHECK(!ent.is_dir);
	CHECK_INT(ent.attr.size, size_of(2));
	CHECK_STR(ent.attr.etag, "\"e2\"");
	CHECK_STR(ent.attr.content_type, "text/x-2");
	/* Not fetched ahead (outside the window): asked below. */
	CHECK_INT(store_lookup(s, "dir/", "f30", &ent, &e), -ENOENT);
	CHECK_INT(lookups_below, 1);
	store_destroy(s);
	CHECK_INT(membudget_used(mb), 0);
	store_dir_release(d);
	membudget_free(mb);
}

TEST(a_lookup_in_a_fresh_listing_goes_below)
{
	struct membudget *mb = membudget_new(8 << 20);
	struct store_dir *d = make_listing(0);
	struct store *s = layer(mb);
	struct store_entry ent;
	struct store_error e;

	reset(d, 0);
	open_n(s, 0);
	open_n(s, 1);
	CHECK(fetched(2));
	store_lookup(s, "dir/", "f02", &ent, &e);
	CHECK_INT(lookups_below, 1);	/* the metadata cache answers from its listing */
	CHECK(open_n(s, 2));
	store_destroy(s);
	store_dir_release(d);
	membudget_free(mb);
}

TEST(a_stale_listing_dropped_below_is_kept_by_the_stream)
{
	struct membudget *mb = membudget_new(8 << 20);
	struct store_dir *d = make_listing(5000);
	struct store *s = layer(mb);
	struct store_entry ent;
	struct store_error e;
	int i, whole = 0;

	reset(d, 1);	/* the first lookup's peek is the last: then the listing is gone */
	CHECK_INT(store_lookup(s, "dir/", "f00", &ent, &e), -ENOENT);
	CHECK_INT(lookups_below, 1);
	for (i = 0; i < 6; i++) {
		if (i >= 2)
			CHECK(fetched(i));
		whole += open_n(s, i);
	}
	CHECK_INT(whole, 4);
	store_destroy(s);
	CHECK_INT(membudget_used(mb), 0);
	membudget_free(mb);
}

int main(void)
{
	RUN(opens_in_order_get_their_bytes_down_with_the_open);
	RUN(a_lookup_in_a_stale_listing_is_answered_from_the_get_ahead);
	RUN(a_lookup_in_a_fresh_listing_goes_below);
	RUN(a_stale_listing_dropped_below_is_kept_by_the_stream);
	return harness_done();
}
