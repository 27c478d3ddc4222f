#include "fs/listing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/strutil.h"

int listing_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > NAME_MAX_BYTES)
		return 0;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return 0;
	return memchr(name, '/', len) == NULL && memchr(name, '\0', len) == NULL;
}

struct listing *listing_new(void)
{
	struct listing *l = calloc(1, sizeof(*l));

	if (l) {
		l->refs = 1;
		l->fetched_ms = clock_mono_ms();
	}
	return l;
}

struct listing *listing_ref(struct listing *l)
{
	__atomic_add_fetch(&l->refs, 1, __ATOMIC_RELAXED);
	return l;
}

static void entry_clear(struct listing_entry *ent)
{
	free(ent->name);
	store_attr_packed_clear(&ent->attr);
}

void listing_release(struct listing *l)
{
	size_t i;

	if (!l || __atomic_sub_fetch(&l->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (i = 0; i < l->n; i++)
		entry_clear(&l->e[i]);
	free(l->e);
	free(l);
}

static int add_entry(struct listing *l, const char *name, size_t len, int is_dir,
		     const struct store_attr *attr)
{
	struct listing_entry *ent;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct listing_entry *e = realloc(l->e, cap * sizeof(*e));

		if (!e)
			return -ENOMEM;
		l->e = e;
		l->cap = cap;
	}
	ent = &l->e[l->n];
	memset(ent, 0, sizeof(*ent));
	ent->name = strndup(name, len);
	if (!ent->name || (attr && store_attr_pack(&ent->attr, attr) != 0)) {
		free(ent->name);
		return -ENOMEM;
	}
	ent->is_dir = is_dir;
	l->n++;
	return 0;
}

static void hidden(const char *key, const char *why)
{
	log_once(LOG_NOTICE, "hiding s3 key '%s': %s", key, why);
}

int listing_add_page(struct listing *l, const char *dir_key, const struct s3_list_page *page)
{
	size_t dlen = strlen(dir_key), i, len;
	int rc;

	for (i = 0; i < page->nobjects; i++) {
		const struct s3_list_object *o = &page->objects[i];
		struct store_attr a;
		const char *name;

		if (strncmp(o->key, dir_key, dlen) != 0)
			continue;
		name = o->key + dlen;
		len = strlen(name);
		if (len == 0)
			continue; /* the folder marker of this directory */
		if (!listing_name_ok(name, len)) {
			hidden(o->key, len > NAME_MAX_BYTES ? "name longer than 255 bytes"
							    : "not a valid file name");
			continue;
		}
		memset(&a, 0, sizeof(a));
		a.size = o->size;
		a.mtime = o->mtime;
		snprintf(a.etag, sizeof(a.etag), "%s", o->etag ? o->etag : "");
		snprintf(a.storage_class, sizeof(a.storage_class), "%s", o->storage_class);
		rc = add_entry(l, name, len, 0, &a);
		if (rc)
			return rc;
	}
	for (i = 0; i < page->nprefixes; i++) {
		const char *p = page->prefixes[i], *name;

		if (strncmp(p, dir_key, dlen) != 0)
			continue;
		name = p + dlen;
		len = strlen(name);
		if (len && name[len - 1] == '/')
			len--;
		if (!listing_name_ok(name, len)) {
			hidden(p, len == 0 ? "empty path segment" : len > NAME_MAX_BYTES
					 ? "name longer than 255 bytes" : "not a valid directory name");
			continue;
		}
		rc = add_entry(l, name, len, 1, NULL);
		if (rc)
			return rc;
	}
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct listing_entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	/* Directories first among equal names, so they win. */
	return c ? c : y->is_dir - x->is_dir;
}

void listing_finish(struct listing *l, const char *dir_key)
{
	size_t r, w = 0;

	if (l->n < 2)
		return; /* nothing to sort (and qsort may not get a NULL base) */
	qsort(l->e, l->n, sizeof(*l->e), entry_cmp);
	for (r = 0; r < l->n; r++) {
		if (w && !strcmp(l->e[w - 1].name, l->e[r].name)) {
			if (l->e[w - 1].is_dir && !l->e[r].is_dir)
				log_once(LOG_NOTICE, "s3 key '%s%s' is hidden by the directory "
					 "'%s%s/'", dir_key, l->e[r].name, dir_key, l->e[r].name);
			entry_clear(&l->e[r]);
			continue;
		}
		l->e[w++] = l->e[r];
	}
	l->n = w;
}

const struct listing_entry *listing_find(const struct listing *l, const char *name)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->e[mid].name, name);

		if (c == 0)
			return &l->e[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int listing_fetch(struct store *st, const char *dir_key, int page_size, struct listing **out,
		  struct s3_error *e)
{
	struct listing *l = listing_new();
	struct s3_list_page page;
	char *token = NULL;
	int rc = 0;

	if (!l)
		return -ENOMEM;
	for (;;) {
		rc = store_list_page(st, dir_key, token, page_size, &page, e);
		free(token);
		token = NULL;
		if (rc)
			break;
		rc = listing_add_page(l, dir_key, &page);
		if (!rc && page.truncated) {
			if (!page.next_token || !*page.next_token) {
				log_msg(LOG_ERR, "ListObjectsV2 under '%s': truncated page without a "
					"continuation token", dir_key);
				rc = -EIO;
			} else {
				token = page.next_token;
				page.next_token = NULL;
			}
		}
		s3_list_page_cleanup(&page);
		if (rc || !token)
			break;
	}
	free(token);
	if (rc) {
		listing_release(l);
		return rc;
	}
	listing_finish(l, dir_key);
	*out = l;
	return 0;
}
