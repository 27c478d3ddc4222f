/*
 * Unit tests for cache/listorder.c: entries handed out in order while the pages
 * come, shadowing across pages, bounded lookahead, and what a server gets
 * wrong. Pages are crafted as S3 writes them: Contents and CommonPrefixes as
 * two lists, interleaved in key order within a page and across pages.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/listing.h"
#include "cache/listorder.h"
#include "core/log.h"
#include "harness.h"

/* A page of keys under dir ("P:" marks a common prefix), in the given order. */
static struct store_page page_of(const char *dir, const char *const *keys, size_t n)
{
	struct store_page p;
	size_t i;

	memset(&p, 0, sizeof(p));
	p.objects = calloc(n + 1, sizeof(*p.objects));
	p.prefixes = calloc(n + 1, sizeof(*p.prefixes));
	for (i = 0; i < n; i++) {
		char *k;

		if (!strncmp(keys[i], "P:", 2)) {
			if (asprintf(&k, "%s%s", dir, keys[i] + 2) < 0)
				abort();
			p.prefixes[p.nprefixes++] = k;
		} else {
			struct store_object *o = &p.objects[p.nobjects++];

			if (asprintf(&k, "%s%s", dir, keys[i]) < 0)
				abort();
			o->key = k;
			o->size = (long long)strlen(keys[i]);
			o->etag = strdup("\"e\"");
			strcpy(o->storage_class, "STANDARD");
		}
	}
	return p;
}

/* Feed one page; return the names handed out, joined by ',' (dirs end in '/'). */
static char *feed(struct listorder *o, const char *dir, const char *const *keys, size_t n,
		  int last)
{
	struct store_page p = page_of(dir, keys, n);
	struct listing_batch b = { 0 };
	char *out = calloc(1, 65536);
	size_t i;

	CHECK_INT(listorder_add_page(o, &p, &b), 0);
	if (last)
		CHECK_INT(listorder_finish(o, &b), 0);
	for (i = 0; i < b.n; i++) {
		if (i)
			strcat(out, ",");
		strcat(out, b.e[i].name);
		if (b.e[i].is_dir)
			strcat(out, "/");
	}
	listing_batch_cleanup(&b);
	store_page_cleanup(&p);
	return out;
}

#define FEED(o, last, want, ...)                                                         \
	do {                                                                             \
		static const char *const k_[] = { __VA_ARGS__ };                         \
		char *got_ = feed(o, "d/", k_, sizeof(k_) / sizeof(k_[0]), last);       \
		CHECK_STR(got_, want);                                                   \
		free(got_);                                                              \
	} while (0)

/*
 * A file `a` and the directory `a/` on different pages, with names between
 * them ("a!b", "a.txt": bytes below '/'): the file is held back until "a/"
 * comes and hides it; what sorts before the directory comes out first.
 */
TEST(file_and_same_named_directory_split_across_pages)
{
	struct listorder *o = listorder_new("d/");

	FEED(o, 0, "", "a", "a!b");
	CHECK_INT(listorder_held(o), 2);
	FEED(o, 0, "a!b,a.txt,a/", "a.txt", "P:a/");
	CHECK_INT(listorder_held(o), 0);
	FEED(o, 1, "b,c/", "b", "P:c/");
	listorder_free(o);

	/* the same, with the directory first on its page and the file alone before it */
	o = listorder_new("d/");
	FEED(o, 0, "", "x");
	FEED(o, 0, "x/", "P:x/");
	FEED(o, 1, "y", "y");
	listorder_free(o);
}

/* A file with no directory of its name comes out once the listing passes "name/". */
TEST(file_comes_out_when_the_listing_passes_its_place)
{
	struct listorder *o = listorder_new("d/");

	FEED(o, 0, "", "a");
	FEED(o, 0, "", "a.txt");		/* still before "a/": a dir "a" may come */
	FEED(o, 0, "a.txt,a", "a0");		/* "a0" > "a/": neither dir can come now */
	FEED(o, 1, "a0,a00", "a00");
	listorder_free(o);
}

/* Within a page the two lists are merged; a prefix and an object of one key keep the prefix. */
TEST(one_page_merged_and_shadowed)
{
	struct listorder *o = listorder_new("d/");

	FEED(o, 1, "a!b,a/,b,c.d,c/,e", "a", "a!b", "b", "c", "c.d", "e", "P:c/", "P:a/");
	listorder_free(o);
	o = listorder_new("d/");
	/* an object "d/k/" (name "k/": hidden) beside the prefix "d/k/" */
	FEED(o, 1, "k/", "k/", "P:k/");
	listorder_free(o);
}

/*
 * Pages of names like the bench's: every page hands out all it holds but its
 * last file (which waits for the next page to pass "name/").
 */
TEST(streams_page_by_page)
{
	struct listorder *o = listorder_new("m/");
	struct listing_batch b = { 0 };
	struct store_page p;
	char *keys[100];
	size_t page, i, total = 0;

	for (page = 0; page < 5; page++) {
		for (i = 0; i < 100; i++)
			if (asprintf(&keys[i], "file-%07zu.txt", page * 100 + i) < 0)
				abort();
		p = page_of("m/", (const char *const *)keys, 100);
		CHECK_INT(listorder_add_page(o, &p, &b), 0);
		CHECK_INT(b.n, page == 0 ? 99 : 100);
		CHECK_INT(listorder_held(o), 1);
		total += b.n;
		listing_batch_cleanup(&b);
		store_page_cleanup(&p);
		for (i = 0; i < 100; i++)
			free(keys[i]);
	}
	CHECK_INT(listorder_finish(o, &b), 0);
	CHECK(b.n == 1 && !strcmp(b.e[0].name, "file-0000499.txt"));
	CHECK_INT(total + b.n, 500);
	listing_batch_cleanup(&b);
	listorder_free(o);
}

/* Held-back files are prefixes of one another: at most one per byte of the last name. */
TEST(lookahead_is_bounded_by_the_name_length)
{
	struct listorder *o = listorder_new("");
	struct listing_batch b = { 0 };
	struct store_page p;
	char *keys[255], name[256];
	size_t i;

	/* "a", "a!", "a!!", ...: each sorts before the previous one's "/" */
	for (i = 0; i < 255; i++) {
		memset(name, '!', i + 1);
		name[0] = 'a';
		name[i + 1] = '\0';
		keys[i] = strdup(name);
	}
	p = page_of("", (const char *const *)keys, 255);
	CHECK_INT(listorder_add_page(o, &p, &b), 0);
	CHECK_INT(b.n, 0);
	CHECK_INT(listorder_held(o), 255);
	store_page_cleanup(&p);
	/* one key past "a/" lets all of them out, longest first */
	{
		static const char *const after[] = { "b" };

		p = page_of("", after, 1);
	}
	CHECK_INT(listorder_add_page(o, &p, &b), 0);
	CHECK_INT(b.n, 255);
	CHECK_INT(strlen(b.e[0].name), 255);
	CHECK_STR(b.e[254].name, "a");
	for (i = 1; i < b.n; i++)
		CHECK(store_name_cmp(b.e[i - 1].name, b.e[i].name) < 0);
	CHECK_INT(listorder_held(o), 1);
	store_page_cleanup(&p);
	listing_batch_cleanup(&b);
	for (i = 0; i < 255; i++)
		free(keys[i]);
	listorder_free(o);
}

/* Keys out of order across pages: a repeat is dropped silently, an earlier key with one line. */
static void out_of_order(void *arg)
{
	struct listorder *o = listorder_new("d/");

	(void)arg;
	FEED(o, 0, "b", "b", "c");
	FEED(o, 0, "c", "c", "d");		/* the repeat of "c" */
	FEED(o, 0, "", "a", "d");		/* "a" is too late */
	FEED(o, 1, "d,e", "a0", "e");		/* so is "a0": one line for the listing */
	listorder_free(o);
}

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

TEST(out_of_order_keys_are_dropped)
{
	int level = log_get_level();
	char *log;

	log_set_level(LOG_WARNING);
	log = stderr_of(out_of_order, NULL);
	log_set_level(level);
	CHECK(log && strstr(log, "warning: ListObjectsV2 under 'd/' sent 'd/a' after 'd/d'"));
	CHECK(log && strchr(log, '\n') == log + strlen(log) - 1);
	free(log);
}

/*
 * Keys outside the directory, the folder marker, hidden names and a prefix
 * without its '/' (it would sort where later keys are) show nothing.
 */
TEST(foreign_marker_and_hidden)
{
	struct listorder *o = listorder_new("d/");
	struct store_page p;
	struct listing_batch b = { 0 };
	static const char *const keys[] = { "", "P:/", "P:./", "ok", "P:q", "x" };

	p = page_of("d/", keys, 6);
	free(p.objects[0].key);
	p.objects[0].key = strdup("d/"); /* the marker */
	p.prefixes[p.nprefixes++] = strdup("e/elsewhere/");
	CHECK_INT(listorder_add_page(o, &p, &b), 0);
	CHECK_INT(listorder_finish(o, &b), 0);
	CHECK_INT(b.n, 2);
	CHECK_STR(b.e[0].name, "ok");
	CHECK_STR(b.e[1].name, "x");
	listing_batch_cleanup(&b);
	store_page_cleanup(&p);
	listorder_free(o);
}

/* ---- random directories, random page breaks, against a reference ---------------------- */

static unsigned long long rnd_state = 0x9e3779b97f4a7c15ULL;

static unsigned rnd(unsigned n)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return (unsigned)(rnd_state % n);
}

struct ent {
	char name[8];
	int is_dir;
	char pos[9];			/* name + "/": where it sorts */
	char key[9];			/* what S3 sends: name, or name + "/" */
};

static int by_key(const void *a, const void *b)
{
	return strcmp(((const struct ent *)a)->key, ((const struct ent *)b)->key);
}

static int by_pos(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;
	int c = strcmp(x->pos, y->pos);

	return c ? c : y->is_dir - x->is_dir;
}

/*
 * Names from bytes on both sides of '/' ('!', '.', '0', 'a'), as files or
 * directories or both, sent in key order in pages of 1 to 6 keys. The output
 * must be the reference (unique names, directories winning, sorted by
 * name+"/", built here without listorder), and after each page it must hold
 * exactly the entries whose place the listing has passed: as early as can be.
 */
TEST(random_pages_match_the_reference)
{
	static const char alphabet[] = "!.0a";
	int round;

	for (round = 0; round < 2000; round++) {
		struct ent all[64], want[64];
		size_t n = 0, nwant = 0, i, j, sent = 0, given = 0;
		struct listorder *o = listorder_new("r/");
		struct listing_batch b = { 0 };

		while (n < 1 + rnd(40)) {
			struct ent e;
			size_t len = 1 + rnd(4), dup;

			memset(&e, 0, sizeof(e));
			for (i = 0; i < len; i++)
				e.name[i] = alphabet[rnd(4)];
			e.is_dir = (int)rnd(2);
			snprintf(e.pos, sizeof(e.pos), "%s/", e.name);
			snprintf(e.key, sizeof(e.key), "%s%s", e.name, e.is_dir ? "/" : "");
			/* "." and ".." are hidden: test_listing.c */
			dup = !strcmp(e.name, ".") || !strcmp(e.name, "..");
			for (i = 0; i < n; i++)
				dup |= !strcmp(all[i].key, e.key);
			if (!dup)
				all[n++] = e;
		}
		/* the reference: one entry per name, the directory when both */
		memcpy(want, all, n * sizeof(*all));
		qsort(want, n, sizeof(*want), by_pos);
		for (i = 0; i < n; i++)
			if (!nwant || strcmp(want[nwant - 1].name, want[i].name))
				want[nwant++] = want[i];
		qsort(all, n, sizeof(*all), by_key);
		while (sent < n) {
			size_t k = 1 + rnd(6), m;
			const char *keys[8];
			char buf[8][12];
			struct store_page p;
			const char *last;

			if (k > n - sent)
				k = n - sent;
			for (i = 0; i < k; i++) {
				snprintf(buf[i], sizeof(buf[i]), "%s%s", all[sent + i].is_dir ? "P:" : "",
					 all[sent + i].key);
				keys[i] = buf[i];
			}
			p = page_of("r/", keys, k);
			last = all[sent + k - 1].key;
			sent += k;
			CHECK_INT(listorder_add_page(o, &p, &b), 0);
			if (sent == n)
				CHECK_INT(listorder_finish(o, &b), 0);
			store_page_cleanup(&p);
			/* what the listing has passed, and only that, is out */
			for (m = 0; m < nwant && (sent == n || strcmp(want[m].pos, last) <= 0); m++)
				;
			CHECK_INT(b.n, m);
			for (j = given; j < b.n && j < nwant; j++) {
				CHECK_STR(b.e[j].name, want[j].name);
				CHECK_INT(b.e[j].is_dir, want[j].is_dir);
			}
			given = b.n;
		}
		CHECK_INT(b.n, nwant);
		listing_batch_cleanup(&b);
		listorder_free(o);
		if (harness_current_failed)
			break;
	}
}

int main(void)
{
	log_set_level(LOG_CRIT);
	RUN(file_and_same_named_directory_split_across_pages);
	RUN(file_comes_out_when_the_listing_passes_its_place);
	RUN(one_page_merged_and_shadowed);
	RUN(streams_page_by_page);
	RUN(lookahead_is_bounded_by_the_name_length);
	RUN(out_of_order_keys_are_dropped);
	RUN(foreign_marker_and_hidden);
	RUN(random_pages_match_the_reference);
	return harness_done();
}
