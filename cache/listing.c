#include "cache/listing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/strutil.h"

size_t listing_max_pages(int page_size)
{
	size_t n = LISTING_MAX_PAGE_KEYS / (size_t)(page_size > 0 ? page_size : 1000);

	return n < 1000 ? 1000 : n;
}

/* What an entry holds besides its slot in l->e. */
static size_t entry_bytes(const struct store_dirent *ent)
{
	return strlen(ent->name) + 1 + store_attr_packed_bytes(&ent->attr);
}

static void entry_clear(struct store_dirent *ent)
{
	free(ent->name);
	store_attr_packed_clear(&ent->attr);
}

static int add_entry(struct store_dir *l, const char *name, size_t len, int is_dir,
		     const struct store_attr *attr)
{
	struct store_dirent *ent;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct store_dirent *e = realloc(l->e, cap * sizeof(*e));

		if (!e)
			return -ENOMEM;
		l->bytes += (cap - l->cap) * sizeof(*e);
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
	l->bytes += entry_bytes(ent);
	l->n++;
	return 0;
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

int listing_add_page(struct store_dir *l, const char *dir_key, const struct store_page *page)
{
	size_t dlen = strlen(dir_key), i, len;
	int rc;

	log_drops(dir_key, page);
	for (i = 0; i < page->nobjects; i++) {
		const struct store_object *o = &page->objects[i];
		struct store_attr a;
		const char *name;

		if (strncmp(o->key, dir_key, dlen) != 0)
			continue;
		name = o->key + dlen;
		len = strlen(name);
		if (len == 0)
			continue; /* the folder marker of this directory */
		if (!store_name_ok(name, len)) {
			hidden(o->key, len > STORE_NAME_MAX ? "name longer than 255 bytes"
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
		if (!store_name_ok(name, len)) {
			hidden(p, len == 0 ? "empty path segment" : len > STORE_NAME_MAX
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
	const struct store_dirent *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	/* Directories first among equal names, so they win. */
	return c ? c : y->is_dir - x->is_dir;
}

void listing_finish(struct store_dir *l, const char *dir_key)
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
			l->bytes -= entry_bytes(&l->e[r]);
			entry_clear(&l->e[r]);
			continue;
		}
		l->e[w++] = l->e[r];
	}
	l->n = w;
}

/*
 * The continuation tokens a listing was given, as 64-bit hashes in an
 * open-addressed table kept at most half full. A false "seen" needs two of a
 * listing's (at most a few thousand) tokens to share a hash: about 1 in 10^12.
 */
struct token_set {
	unsigned long long *slot;	/* 0: empty */
	size_t cap, n;
};

static unsigned long long token_hash(const char *s)
{
	unsigned long long h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h ? h : 1;
}

/* Add token: 0, 1 when it was there already, or -ENOMEM. */
static int token_set_add(struct token_set *ts, const char *token)
{
	unsigned long long h = token_hash(token);
	size_t i;

	if (2 * (ts->n + 1) > ts->cap) {
		struct token_set bigger = { .cap = ts->cap ? ts->cap * 2 : 64 };

		bigger.slot = calloc(bigger.cap, sizeof(*bigger.slot));
		if (!bigger.slot)
			return -ENOMEM;
		for (i = 0; i < ts->cap; i++) {
			size_t j = ts->slot[i] % bigger.cap;

			if (!ts->slot[i])
				continue;
			while (bigger.slot[j])
				j = (j + 1) % bigger.cap;
			bigger.slot[j] = ts->slot[i];
		}
		bigger.n = ts->n;
		free(ts->slot);
		*ts = bigger;
	}
	for (i = h % ts->cap; ts->slot[i]; i = (i + 1) % ts->cap)
		if (ts->slot[i] == h)
			return 1;
	ts->slot[i] = h;
	ts->n++;
	return 0;
}

/* One listing_fetch in progress. */
struct fetch {
	const char *dir_key;
	const struct listing_bounds *b;
	struct store_dir *l;
	struct token_set tokens;
	size_t pages;
	size_t charged;			/* bytes already passed to b->charge */
	struct store_error *e;		/* the caller's */
};

/*
 * A listing ends for a bound the server's answers ran into: an answer this
 * listing cannot use (class cls, why), with the table's errno (EIO).
 */
static int fetch_fail(struct fetch *f, enum err_class cls, const char *why)
{
	store_error_clear(f->e);
	f->e->cls = cls;
	snprintf(f->e->what, sizeof(f->e->what), "%s", why);
	snprintf(f->e->op, sizeof(f->e->op), "LIST");
	snprintf(f->e->key, sizeof(f->e->key), "%s", f->dir_key);
	return -store_error_errno(f->e);
}

/* Before a page: cancelled, out of pages, out of time? 0 or the errno to end with. */
static int fetch_may_go_on(struct fetch *f, size_t max_pages)
{
	const struct listing_bounds *b = f->b;

	if (b->cancelled && b->cancelled(b->ctx))
		return -EINTR;
	if (f->pages >= max_pages) {
		log_msg(LOG_ERR, "listing of '%s' stopped after %zu pages (%zu entries): no "
			"directory needs more than %zu pages, the server keeps saying there is "
			"more; the listing fails (EIO)", f->dir_key, f->pages, f->l->n, max_pages);
		return fetch_fail(f, ERR_PROTOCOL, "too many pages");
	}
	if (b->deadline_ms && clock_mono_ms() >= b->deadline_ms) {
		log_msg(LOG_ERR, "listing of '%s' is not done within --list-timeout (%zu pages, "
			"%zu entries so far): the listing fails (EIO); raise --list-timeout if the "
			"directory is this large and the server this slow", f->dir_key, f->pages,
			f->l->n);
		return fetch_fail(f, ERR_PROTOCOL, "not done within --list-timeout");
	}
	return 0;
}

/* After a page: the memory bound. 0 or -EIO. */
static int fetch_charge(struct fetch *f)
{
	const struct listing_bounds *b = f->b;
	size_t now = f->l->bytes + f->tokens.n * LISTING_TOKEN_BYTES;

	if (b->max_bytes && now > b->max_bytes) {
		log_msg(LOG_ERR, "listing of '%s' needs more than --metadata-cache-size (%zu MiB) "
			"after %zu pages (%zu entries): the listing fails (EIO); raise "
			"--metadata-cache-size to list this directory", f->dir_key,
			b->max_bytes >> 20, f->pages, f->l->n);
		return fetch_fail(f, ERR_TOO_LARGE, "larger than --metadata-cache-size");
	}
	if (b->charge && now > f->charged) {
		if (b->charge(b->ctx, now - f->charged)) {
			log_msg(LOG_ERR, "listing of '%s' stopped after %zu pages (%zu entries): the "
				"listings being built at once hold all of --metadata-cache-size; the "
				"listing fails (EIO); raise --metadata-cache-size", f->dir_key,
				f->pages, f->l->n);
			return fetch_fail(f, ERR_TOO_LARGE, "no room in --metadata-cache-size");
		}
		f->charged = now;
	}
	return 0;
}

/* The token that continues after page: 0 with *token set, or -EIO / -ENOMEM. */
static int fetch_next_token(struct fetch *f, struct store_page *page, char **token)
{
	size_t len;
	int rc;

	if (!page->next_token || !*page->next_token) {
		log_msg(LOG_ERR, "ListObjectsV2 under '%s': page %zu is truncated but has no "
			"continuation token; the listing fails (EIO)", f->dir_key, f->pages);
		return fetch_fail(f, ERR_PROTOCOL, "a truncated page without a token");
	}
	len = strlen(page->next_token);
	if (len > LISTING_MAX_TOKEN) {
		log_msg(LOG_ERR, "ListObjectsV2 under '%s': page %zu has a continuation token of "
			"%zu bytes, more than %d; the listing fails (EIO)", f->dir_key, f->pages,
			len, LISTING_MAX_TOKEN);
		return fetch_fail(f, ERR_PROTOCOL, "a continuation token too long");
	}
	rc = token_set_add(&f->tokens, page->next_token);
	if (rc == 1) {
		log_msg(LOG_ERR, "ListObjectsV2 under '%s': page %zu repeats a continuation token "
			"this listing was already given, so the server would loop for ever; the "
			"listing fails (EIO)", f->dir_key, f->pages);
		return fetch_fail(f, ERR_PROTOCOL, "a continuation token repeated");
	}
	if (rc)
		return rc;
	*token = page->next_token;
	page->next_token = NULL;
	return 0;
}

int listing_fetch(struct store *st, const char *dir_key, int page_size,
		  const struct listing_bounds *bounds, struct store_dir **out, struct store_error *e)
{
	static const struct listing_bounds none;
	struct fetch f = { .dir_key = dir_key, .b = bounds ? bounds : &none, .e = e };
	size_t max_pages = f.b->max_pages ? f.b->max_pages : listing_max_pages(page_size);
	struct store_page page;
	char *token = NULL;
	int rc;

	store_error_clear(e);
	f.l = store_dir_new();
	if (!f.l)
		return -ENOMEM;
	for (;;) {
		rc = fetch_may_go_on(&f, max_pages);
		if (rc)
			break;
		rc = store_list_page(st, dir_key, token, page_size, &page, e);
		free(token);
		token = NULL;
		if (rc)
			break;
		f.pages++;
		rc = listing_add_page(f.l, dir_key, &page);
		if (!rc && page.truncated)
			rc = fetch_next_token(&f, &page, &token);
		if (!rc)
			rc = fetch_charge(&f);
		store_page_cleanup(&page);
		if (rc || !token)
			break;
	}
	free(token);
	free(f.tokens.slot);
	if (rc) {
		store_dir_release(f.l);
		return rc;
	}
	listing_finish(f.l, dir_key);
	*out = f.l;
	return 0;
}
