/*
 * The state between pages is the last key taken (to drop what comes out of
 * order) and the stack of files held back. Invariants, after each entry:
 *  - every held file f has f < last < f+"/" (or f == last), so each is a
 *    proper prefix of the next one up the stack, and the top one has the
 *    smallest position f+"/";
 *  - everything handed out sorts before every held file and before any key
 *    still to come.
 */
#include "cache/listorder.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

struct held {
	char *name;
	size_t len;
	struct store_attr_packed attr;
};

struct listorder {
	char *dir_key;
	size_t dlen;
	char *last;			/* the last key taken, without dir_key ("d/" for a prefix) */
	size_t last_cap;
	int have_last;
	struct held *held;		/* a stack: held[nheld - 1] is the top */
	size_t nheld, held_cap;
	size_t held_bytes;
	int disorder_logged;
};

/* One key of a page, about to be taken. */
struct item {
	const char *name;		/* the key without dir_key */
	int is_dir;
	const struct store_object *o;	/* files */
	const char *key;		/* the whole key, for the log */
};

struct listorder *listorder_new(const char *dir_key)
{
	struct listorder *o = calloc(1, sizeof(*o));

	if (!o || !(o->dir_key = strdup(dir_key))) {
		free(o);
		return NULL;
	}
	o->dlen = strlen(dir_key);
	return o;
}

void listorder_free(struct listorder *o)
{
	size_t i;

	if (!o)
		return;
	for (i = 0; i < o->nheld; i++) {
		free(o->held[i].name);
		store_attr_packed_clear(&o->held[i].attr);
	}
	free(o->held);
	free(o->last);
	free(o->dir_key);
	free(o);
}

size_t listorder_held(const struct listorder *o)
{
	return o->nheld;
}

size_t listorder_bytes(const struct listorder *o)
{
	return sizeof(*o) + o->held_cap * sizeof(*o->held) + o->held_bytes + o->last_cap;
}

static void hidden(const char *key, const char *why)
{
	log_once(LOG_NOTICE, "hiding s3 key '%s': %s", key, why);
}

/* The parser's dropped entries, once each: they would otherwise vanish without a word. */
static void log_drops(const char *dir_key, const struct store_page *page)
{
	size_t i;

	for (i = 0; i < page->ndrops; i++) {
		const struct store_drop *d = &page->drops[i];

		if (d->key[0])
			log_once(LOG_NOTICE, "hiding s3 key '%s' (as the listing of '%s' sent it): %s",
				 d->key, dir_key, d->why);
		else
			log_once(LOG_NOTICE, "hiding an entry of the listing of '%s': %s", dir_key,
				 d->why);
	}
	if (page->dropped > page->ndrops)
		log_msg(LOG_NOTICE, "hiding %zu more entries of one page of the listing of '%s' "
			"(only the first %zu are named)", page->dropped - page->ndrops, dir_key,
			page->ndrops);
}

/* f+"/" against k, in byte order: where a held file sorts, against a key. */
static int pos_cmp(const char *f, size_t flen, const char *k)
{
	int c = strncmp(f, k, flen);

	if (c)
		return c;
	/* k starts with f; k[flen] is 0 when k == f (then f+"/" is after it) */
	return (int)(unsigned char)'/' - (int)(unsigned char)k[flen];
}

/* Hand out the top held file. */
static int pop_out(struct listorder *o, struct listing_batch *out)
{
	struct held *h = &o->held[o->nheld - 1];
	int rc = listing_batch_take(out, h->name, h->len, 0, &h->attr);

	if (rc)
		return rc;
	o->held_bytes -= store_entry_bytes(h->len, &out->e[out->n - 1].attr);
	o->nheld--;
	return 0;
}

/* Hand out the held files whose position the listing has passed (key k). */
static int pop_passed(struct listorder *o, const char *k, struct listing_batch *out)
{
	int rc;

	while (o->nheld && pos_cmp(o->held[o->nheld - 1].name, o->held[o->nheld - 1].len, k) < 0) {
		rc = pop_out(o, out);
		if (rc)
			return rc;
	}
	return 0;
}

static int push_file(struct listorder *o, const char *name, size_t len,
		     const struct store_object *obj)
{
	struct store_attr a;
	struct held *h;

	if (o->nheld == o->held_cap) {
		size_t cap = o->held_cap ? o->held_cap * 2 : 8;
		struct held *bigger = realloc(o->held, cap * sizeof(*bigger));

		if (!bigger)
			return -ENOMEM;
		o->held = bigger;
		o->held_cap = cap;
	}
	h = &o->held[o->nheld];
	memset(&a, 0, sizeof(a));
	a.size = obj->size;
	a.mtime = obj->mtime;
	/* Copied with their lengths: a store_attr is 456 bytes, and this runs per key. */
	if (obj->etag) {
		size_t n = strnlen(obj->etag, sizeof(a.etag) - 1);

		memcpy(a.etag, obj->etag, n);
	}
	memcpy(a.storage_class, obj->storage_class,
	       strnlen(obj->storage_class, sizeof(a.storage_class) - 1));
	h->name = strndup(name, len);
	if (!h->name || store_attr_pack(&h->attr, &a) != 0) {
		free(h->name);
		return -ENOMEM;
	}
	h->len = len;
	o->held_bytes += store_entry_bytes(len, &h->attr);
	o->nheld++;
	return 0;
}

static int set_last(struct listorder *o, const char *name)
{
	size_t n = strlen(name) + 1;

	if (n > o->last_cap) {
		char *bigger = realloc(o->last, n);

		if (!bigger)
			return -ENOMEM;
		o->last = bigger;
		o->last_cap = n;
	}
	memcpy(o->last, name, n);
	o->have_last = 1;
	return 0;
}

/* Take one key, in key order. */
static int take(struct listorder *o, const struct item *it, struct listing_batch *out)
{
	size_t len = strlen(it->name);
	int rc, c;

	if (o->have_last && (c = strcmp(it->name, o->last)) <= 0) {
		if (c < 0 && !o->disorder_logged) {
			o->disorder_logged = 1;
			log_msg(LOG_WARNING, "ListObjectsV2 under '%s' sent '%s' after '%s%s': S3 "
				"lists keys in byte order, and entries before those already shown "
				"cannot be added; keys out of order are hidden", o->dir_key, it->key,
				o->dir_key, o->last);
		}
		return 0;
	}
	rc = set_last(o, it->name);
	if (!rc)
		rc = pop_passed(o, it->name, out);
	if (rc)
		return rc;
	if (it->is_dir) {
		if (!len || it->name[len - 1] != '/') {
			/* It would sort at name+"/", where a later key may still be. */
			hidden(it->key, "a common prefix that does not end in '/'");
			return 0;
		}
		len--;
		/* The top held file is exactly this name (f+"/" == key): the directory wins. */
		if (o->nheld && o->held[o->nheld - 1].len == len &&
		    !memcmp(o->held[o->nheld - 1].name, it->name, len)) {
			struct held *h = &o->held[--o->nheld];

			log_once(LOG_NOTICE, "s3 key '%s%s' is hidden by the directory '%s'",
				 o->dir_key, h->name, it->key);
			o->held_bytes -= store_entry_bytes(h->len, &h->attr);
			free(h->name);
			store_attr_packed_clear(&h->attr);
		}
		if (!store_name_ok(it->name, len)) {
			hidden(it->key, len == 0 ? "empty path segment" : len > STORE_NAME_MAX
					? "name longer than 255 bytes" : "not a valid directory name");
			return 0;
		}
		return listing_batch_add(out, it->name, len, 1, NULL);
	}
	if (len == 0)
		return 0; /* the folder marker of this directory */
	if (!store_name_ok(it->name, len)) {
		hidden(it->key, len > STORE_NAME_MAX ? "name longer than 255 bytes"
						     : "not a valid file name");
		return 0;
	}
	return push_file(o, it->name, len, it->o);
}

static int item_cmp(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	/* A prefix before an object of the same key ("d/" both): the directory is kept. */
	return c ? c : y->is_dir - x->is_dir;
}

int listorder_add_page(struct listorder *o, const struct store_page *page,
		       struct listing_batch *out)
{
	size_t i, n = 0;
	struct item *items;
	int rc = 0;

	log_drops(o->dir_key, page);
	items = malloc((page->nobjects + page->nprefixes + 1) * sizeof(*items));
	if (!items)
		return -ENOMEM;
	for (i = 0; i < page->nobjects; i++) {
		const char *k = page->objects[i].key;

		if (strncmp(k, o->dir_key, o->dlen) == 0)
			items[n++] = (struct item){ k + o->dlen, 0, &page->objects[i], k };
	}
	for (i = 0; i < page->nprefixes; i++) {
		const char *k = page->prefixes[i];

		if (strncmp(k, o->dir_key, o->dlen) == 0)
			items[n++] = (struct item){ k + o->dlen, 1, NULL, k };
	}
	if (n > 1)
		qsort(items, n, sizeof(*items), item_cmp);
	for (i = 0; i < n && !rc; i++)
		rc = take(o, &items[i], out);
	free(items);
	return rc;
}

int listorder_finish(struct listorder *o, struct listing_batch *out)
{
	int rc = 0;

	while (o->nheld && !rc)
		rc = pop_out(o, out);
	return rc;
}
