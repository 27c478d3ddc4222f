#include "cache/listing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/listorder.h"
#include "core/log.h"
#include "core/strutil.h"

/* The first chunk starts this small: most directories are small. */
#define FIRST_CHUNK_CAP 16

size_t listing_max_pages(int page_size)
{
	size_t n = LISTING_MAX_PAGE_KEYS / (size_t)(page_size > 0 ? page_size : 1000);

	return n < 1000 ? 1000 : n;
}

/* What an entry holds besides its slot. */
static size_t entry_bytes(const struct store_dirent *ent)
{
	return store_entry_bytes(strlen(ent->name), &ent->attr);
}

static void entry_clear(struct store_dirent *ent)
{
	free(ent->name);
	store_attr_packed_clear(&ent->attr);
}

/* Room for one more entry at index l->n. 0 or -ENOMEM. */
static int grow(struct store_dir *l)
{
	size_t k = l->n >> STORE_DIR_CHUNK_SHIFT, used = l->n & (STORE_DIR_CHUNK - 1);
	struct store_dirent *c;

	if (k < l->nchunks && used < l->last_cap)
		return 0;
	if (k < l->nchunks) {
		/* The last chunk is full below STORE_DIR_CHUNK: double it. */
		size_t cap = l->last_cap * 2;

		c = realloc(l->chunk[k], cap * sizeof(*c));
		if (!c)
			return -ENOMEM;
		l->chunk[k] = c;
		l->bytes += (cap - l->last_cap) * sizeof(*c);
		l->last_cap = cap;
		return 0;
	}
	/* A new chunk: the first starts small, later ones whole (the listing is big). */
	if (k == l->nslots) {
		struct store_dirent **slots = realloc(l->chunk, (k + 64) * sizeof(*slots));

		if (!slots)
			return -ENOMEM;
		l->chunk = slots;
		l->nslots = k + 64;
		l->bytes += 64 * sizeof(*slots);
	}
	l->last_cap = k ? STORE_DIR_CHUNK : FIRST_CHUNK_CAP;
	c = malloc(l->last_cap * sizeof(*c));
	if (!c)
		return -ENOMEM;
	l->chunk[k] = c;
	l->nchunks = k + 1;
	l->bytes += l->last_cap * sizeof(*c);
	return 0;
}

int listing_append(struct store_dir *l, struct listing_batch *b)
{
	size_t i, moved = 0;
	int rc = 0;

	for (i = 0; i < b->n && !rc; i++) {
		rc = grow(l);
		if (rc)
			break;
		l->chunk[l->n >> STORE_DIR_CHUNK_SHIFT][l->n & (STORE_DIR_CHUNK - 1)] = b->e[i];
		moved += entry_bytes(&b->e[i]);
		l->n++;
	}
	/* What moved is l's now; b keeps the rest (all of it but on ENOMEM). */
	l->bytes += moved;
	b->bytes -= moved;
	if (i < b->n)
		memmove(b->e, b->e + i, (b->n - i) * sizeof(*b->e));
	b->n -= i;
	return rc;
}

/* ---- batches ---------------------------------------------------------------------------- */

int listing_batch_take(struct listing_batch *b, char *name, size_t len, int is_dir,
		       struct store_attr_packed *attr)
{
	struct store_dirent *ent;

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		struct store_dirent *e = realloc(b->e, cap * sizeof(*e));

		if (!e)
			return -ENOMEM;
		b->e = e;
		b->cap = cap;
	}
	ent = &b->e[b->n++];
	ent->name = name;
	ent->is_dir = is_dir;
	memset(&ent->attr, 0, sizeof(ent->attr));
	if (attr) {
		ent->attr = *attr;
		attr->strings = NULL;
	}
	b->bytes += store_entry_bytes(len, &ent->attr);
	return 0;
}

int listing_batch_add(struct listing_batch *b, const char *name, size_t len, int is_dir,
		      const struct store_attr_packed *attr)
{
	struct store_attr_packed copy = { 0 };
	char *n = strndup(name, len);
	int rc;

	if (!n)
		return -ENOMEM;
	if (attr) {
		struct store_attr a;

		store_attr_unpack(attr, &a);
		if (store_attr_pack(&copy, &a) != 0) {
			free(n);
			return -ENOMEM;
		}
	}
	rc = listing_batch_take(b, n, len, is_dir, &copy);
	if (rc) {
		free(n);
		store_attr_packed_clear(&copy);
	}
	return rc;
}

void listing_batch_cleanup(struct listing_batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		entry_clear(&b->e[i]);
	free(b->e);
	memset(b, 0, sizeof(*b));
}

struct store_dir *listing_of_page(const char *dir_key, const struct store_page *page)
{
	struct listorder *o = listorder_new(dir_key);
	struct listing_batch b = { 0 };
	struct store_dir *l = store_dir_new();
	int rc = -ENOMEM;

	if (o && l) {
		rc = listorder_add_page(o, page, &b);
		if (!rc)
			rc = listorder_finish(o, &b);
		if (!rc)
			rc = listing_append(l, &b);
	}
	listing_batch_cleanup(&b);
	listorder_free(o);
	if (rc) {
		store_dir_release(l);
		return NULL;
	}
	return l;
}

/* ---- fetching --------------------------------------------------------------------------- */

/*
 * The continuation tokens a listing was given are kept as 64-bit hashes in an
 * open-addressed table at most half full. A false "seen" needs two of a
 * listing's (at most ten thousand) tokens to share a hash: about 1 in 10^11.
 */
static unsigned long long token_hash(const char *s)
{
	unsigned long long h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h ? h : 1;
}

/* Add token: 0, 1 when it was there already, or -ENOMEM. */
static int token_add(struct listing_fetch *f, const char *token)
{
	unsigned long long h = token_hash(token);
	size_t i;

	if (2 * (f->ntokens + 1) > f->tokens_cap) {
		size_t cap = f->tokens_cap ? f->tokens_cap * 2 : 64;
		unsigned long long *slot = calloc(cap, sizeof(*slot));

		if (!slot)
			return -ENOMEM;
		for (i = 0; i < f->tokens_cap; i++) {
			size_t j = f->tokens[i] % cap;

			if (!f->tokens[i])
				continue;
			while (slot[j])
				j = (j + 1) % cap;
			slot[j] = f->tokens[i];
		}
		free(f->tokens);
		f->tokens = slot;
		f->tokens_cap = cap;
	}
	for (i = h % f->tokens_cap; f->tokens[i]; i = (i + 1) % f->tokens_cap)
		if (f->tokens[i] == h)
			return 1;
	f->tokens[i] = h;
	f->ntokens++;
	return 0;
}

int listing_fetch_init(struct listing_fetch *f, struct store *st, const char *dir_key,
		       int page_size, const struct listing_bounds *bounds)
{
	memset(f, 0, sizeof(*f));
	f->st = st;
	f->page_size = page_size;
	if (bounds)
		f->b = *bounds;
	f->max_pages = f->b.max_pages ? f->b.max_pages : listing_max_pages(page_size);
	f->dir_key = strdup(dir_key);
	f->order = listorder_new(dir_key);
	if (!f->dir_key || !f->order) {
		listing_fetch_cleanup(f);
		return -ENOMEM;
	}
	return 0;
}

void listing_fetch_cleanup(struct listing_fetch *f)
{
	listorder_free(f->order);
	free(f->tokens);
	free(f->token);
	free(f->dir_key);
	memset(f, 0, sizeof(*f));
}

size_t listing_fetch_bytes(const struct listing_fetch *f)
{
	return f->tokens_cap * sizeof(*f->tokens) + (f->order ? listorder_bytes(f->order) : 0);
}

/*
 * A listing ends for a bound the server's answers ran into: an answer this
 * listing cannot use (class cls, why), with the table's errno (EIO).
 */
static int fetch_fail(struct listing_fetch *f, struct store_error *e, enum err_class cls,
		      const char *why)
{
	store_error_clear(e);
	e->cls = cls;
	snprintf(e->what, sizeof(e->what), "%s", why);
	snprintf(e->op, sizeof(e->op), "LIST");
	snprintf(e->key, sizeof(e->key), "%s", f->dir_key);
	return -store_error_errno(e);
}

/* Before a page: cancelled, out of pages, out of time? 0 or the errno to end with. */
static int may_go_on(struct listing_fetch *f, struct store_error *e)
{
	const struct listing_bounds *b = &f->b;

	if (b->cancelled && b->cancelled(b->ctx))
		return -EINTR;
	if (f->pages >= f->max_pages) {
		log_msg(LOG_ERR, "listing of '%s' stopped after %zu pages (%zu entries): no "
			"directory needs more than %zu pages, the server keeps saying there is "
			"more; the listing fails (EIO)", f->dir_key, f->pages, f->entries,
			f->max_pages);
		return fetch_fail(f, e, ERR_PROTOCOL, "too many pages");
	}
	if (b->deadline_ms && clock_mono_ms() >= b->deadline_ms) {
		log_msg(LOG_ERR, "listing of '%s' is not done within --list-timeout (%zu pages, "
			"%zu entries so far): the listing fails (EIO); raise --list-timeout if the "
			"directory is this large and the server this slow", f->dir_key, f->pages,
			f->entries);
		return fetch_fail(f, e, ERR_PROTOCOL, "not done within --list-timeout");
	}
	return 0;
}

/* The token that continues after page: 0 with f->token set, or -EIO / -ENOMEM. */
static int next_token(struct listing_fetch *f, struct store_page *page, struct store_error *e)
{
	size_t len;
	int rc;

	if (!page->next_token || !*page->next_token) {
		log_msg(LOG_ERR, "ListObjectsV2 under '%s': page %zu is truncated but has no "
			"continuation token; the listing fails (EIO)", f->dir_key, f->pages);
		return fetch_fail(f, e, ERR_PROTOCOL, "a truncated page without a token");
	}
	len = strlen(page->next_token);
	if (len > LISTING_MAX_TOKEN) {
		log_msg(LOG_ERR, "ListObjectsV2 under '%s': page %zu has a continuation token of "
			"%zu bytes, more than %d; the listing fails (EIO)", f->dir_key, f->pages,
			len, LISTING_MAX_TOKEN);
		return fetch_fail(f, e, ERR_PROTOCOL, "a continuation token too long");
	}
	rc = token_add(f, page->next_token);
	if (rc == 1) {
		log_msg(LOG_ERR, "ListObjectsV2 under '%s': page %zu repeats a continuation token "
			"this listing was already given, so the server would loop for ever; the "
			"listing fails (EIO)", f->dir_key, f->pages);
		return fetch_fail(f, e, ERR_PROTOCOL, "a continuation token repeated");
	}
	if (rc)
		return rc;
	f->token = page->next_token;
	page->next_token = NULL;
	return 0;
}

int listing_fetch_page(struct listing_fetch *f, struct listing_batch *out, struct store_error *e)
{
	struct store_page page;
	size_t before = out->n;
	int rc;

	store_error_clear(e);
	rc = may_go_on(f, e);
	if (rc)
		return rc;
	rc = store_list_page(f->st, f->dir_key, f->token, f->page_size, &page, e);
	free(f->token);
	f->token = NULL;
	if (rc)
		return rc;
	f->pages++;
	/* The token first: a page that loops is not taken (its keys would come again). */
	if (page.truncated)
		rc = next_token(f, &page, e);
	if (!rc)
		rc = listorder_add_page(f->order, &page, out);
	if (!rc && !page.truncated) {
		rc = listorder_finish(f->order, out);
		f->ended = 1;
	}
	f->entries += out->n - before;
	store_page_cleanup(&page);
	if (rc)
		return rc;
	return f->ended ? 0 : 1;
}
