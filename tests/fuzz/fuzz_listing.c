/*
 * fuzz_listing: key-to-name mapping (fs/listing.c) on hostile keys.
 *
 * The input is lines: the first is the directory key (its prefix), each
 * other line an object key, or a common prefix when it starts with "P:".
 * Keys may hold any byte but newline: control characters, invalid UTF-8,
 * CR, '.', '..', empty segments, very long names. Invariants after
 * listing_finish: every name passes store_name_ok, names are strictly
 * increasing (unique), store_dir_find finds each one, and l->bytes (what the
 * memory bounds count) is exactly what the listing holds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "cache/listing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_KEYS 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct store_object objs[MAX_KEYS];
	static char *prefixes[MAX_KEYS];
	const char *p = (const char *)data, *end = p + size;
	struct store_page page;
	struct store_dir *l;
	char *dir = NULL;
	size_t i;

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
		} else if (!strncmp(s, "P:", 2) && page.nprefixes < MAX_KEYS) {
			memmove(s, s + 2, strlen(s + 2) + 1);
			prefixes[page.nprefixes++] = s;
		} else if (page.nobjects < MAX_KEYS) {
			memset(&objs[page.nobjects], 0, sizeof(objs[0]));
			objs[page.nobjects].key = s;
			objs[page.nobjects].size = (long long)(stop - p);
			objs[page.nobjects].etag = NULL;
			page.nobjects++;
		} else {
			free(s);
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	if (!dir)
		return 0;
	l = store_dir_new();
	if (l && listing_add_page(l, dir, &page) == 0) {
		size_t bytes = sizeof(*l) + l->cap * sizeof(l->e[0]);

		listing_finish(l, dir);
		for (i = 0; i < l->n; i++) {
			const char *name = l->e[i].name;

			bytes += strlen(name) + 1 + store_attr_packed_bytes(&l->e[i].attr);
			if (!store_name_ok(name, strlen(name)))
				abort();
			if (i && strcmp(l->e[i - 1].name, name) >= 0)
				abort();
			if (store_dir_find(l, name) != &l->e[i])
				abort();
		}
		if (bytes != l->bytes)
			abort();
	}
	store_dir_release(l);
	for (i = 0; i < page.nobjects; i++)
		free(objs[i].key);
	for (i = 0; i < page.nprefixes; i++)
		free(prefixes[i]);
	free(dir);
	return 0;
}
