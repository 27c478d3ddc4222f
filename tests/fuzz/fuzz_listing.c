/*
 * fuzz_listing: key-to-name mapping and the streaming order (cache/listing.c,
 * cache/listorder.c) on hostile keys and page breaks.
 *
 * The input is lines: the first is the directory key (its prefix), each
 * other line an object key, or a common prefix when it starts with "P:"; a
 * line "--" ends a page. Keys may hold any byte but newline: control
 * characters, invalid UTF-8, CR, '.', '..', empty segments, very long names,
 * and pages out of order. Invariants, with the pages fed one by one through
 * listorder into a listing: every name passes store_name_ok, names are
 * strictly increasing by store_name_cmp (unique), store_dir_find finds each
 * one, at most 255 files are ever held back, and l->bytes (what the memory
 * bounds count) is exactly what the listing holds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "cache/listing.h"
#include "cache/listorder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_KEYS 4096

static struct store_object objs[MAX_KEYS];
static char *prefixes[MAX_KEYS];

static void page_clear(struct store_page *page)
{
	size_t i;

	for (i = 0; i < page->nobjects; i++)
		free(objs[i].key);
	for (i = 0; i < page->nprefixes; i++)
		free(prefixes[i]);
	memset(page, 0, sizeof(*page));
	page->objects = objs;
	page->prefixes = prefixes;
}

/* Feed the page; abort on a broken invariant. */
static void feed(struct listorder *o, struct store_dir *l, struct store_page *page, int last)
{
	struct listing_batch b = { 0 };

	if (listorder_add_page(o, page, &b) == 0 && (!last || listorder_finish(o, &b) == 0))
		if (listing_append(l, &b) != 0)
			abort();
	if (listorder_held(o) > 255)
		abort();
	listing_batch_cleanup(&b);
	page_clear(page);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	struct store_page page;
	struct listorder *o = NULL;
	struct store_dir *l = NULL;
	char *dir = NULL;
	size_t i, k;

	if (size > 256 * 1024)
		return 0;
	log_set_level(LOG_EMERG);
	memset(&page, 0, sizeof(page));
	page.objects = objs;
	page.prefixes = prefixes;
	while (p <= end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl ? nl : end;
		char *s = strndup(p, (size_t)(stop - p));

		if (!s)
			break;
		if (!dir) {
			dir = s;
			o = listorder_new(dir);
			l = store_dir_new();
			if (!o || !l)
				break;
		} else if (!strcmp(s, "--")) {
			free(s);
			feed(o, l, &page, 0);
		} else if (!strncmp(s, "P:", 2) && page.nprefixes < MAX_KEYS) {
			memmove(s, s + 2, strlen(s + 2) + 1);
			prefixes[page.nprefixes++] = s;
		} else if (page.nobjects < MAX_KEYS) {
			memset(&objs[page.nobjects], 0, sizeof(objs[0]));
			objs[page.nobjects].key = s;
			objs[page.nobjects].size = (long long)(stop - p);
			page.nobjects++;
		} else {
			free(s);
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	if (o && l) {
		size_t bytes;

		feed(o, l, &page, 1);
		bytes = sizeof(*l) + l->nslots * sizeof(*l->chunk);
		for (k = 0; k < l->nchunks; k++)
			bytes += (k + 1 < l->nchunks ? STORE_DIR_CHUNK : l->last_cap) *
				 sizeof(struct store_dirent);
		for (i = 0; i < l->n; i++) {
			const struct store_dirent *ent = store_dir_at(l, i);

			bytes += store_entry_bytes(strlen(ent->name), &ent->attr);
			if (!store_name_ok(ent->name, strlen(ent->name)))
				abort();
			if (i && store_name_cmp(store_dir_at(l, i - 1)->name, ent->name) >= 0)
				abort();
			if (store_dir_find(l, ent->name) != ent)
				abort();
		}
		if (bytes != l->bytes)
			abort();
	}
	page_clear(&page);
	store_dir_release(l);
	listorder_free(o);
	free(dir);
	return 0;
}
