/*
 * What every store shares: packed attributes, the terms of a read, list
 * pages and the words of an error.
 */
#include "s3/store.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define FIELD(name) { offsetof(struct store_attr, name), sizeof(((struct store_attr *)0)->name) }

/* The strings of a store_attr, in the order they are packed. */
static const struct {
	size_t off, cap;
} fields[] = { FIELD(etag), FIELD(storage_class), FIELD(content_type), FIELD(version_id) };

#define NSTRINGS (sizeof(fields) / sizeof(fields[0]))

int store_attr_pack(struct store_attr_packed *p, const struct store_attr *a)
{
	size_t n[NSTRINGS], total = 0, i;
	char *w;

	p->size = a->size;
	p->mtime = a->mtime;
	p->strings = NULL;
	for (i = 0; i < NSTRINGS; i++) {
		n[i] = strnlen((const char *)a + fields[i].off, fields[i].cap - 1);
		total += n[i] + 1;
	}
	if (total == NSTRINGS)
		return 0;
	w = p->strings = malloc(total);
	if (!w)
		return -ENOMEM;
	for (i = 0; i < NSTRINGS; i++) {
		memcpy(w, (const char *)a + fields[i].off, n[i]);
		w[n[i]] = '\0';
		w += n[i] + 1;
	}
	return 0;
}

void store_attr_unpack(const struct store_attr_packed *p, struct store_attr *a)
{
	const char *r = p->strings;
	size_t i;

	memset(a, 0, sizeof(*a));
	a->size = p->size;
	a->mtime = p->mtime;
	if (!r)
		return;
	for (i = 0; i < NSTRINGS; i++) {
		snprintf((char *)a + fields[i].off, fields[i].cap, "%s", r);
		r += strlen(r) + 1;
	}
}

size_t store_attr_packed_bytes(const struct store_attr_packed *p)
{
	const char *r = p->strings;
	size_t i;

	if (!r)
		return 0;
	for (i = 0; i < NSTRINGS; i++)
		r += strlen(r) + 1;
	return (size_t)(r - p->strings);
}

void store_attr_packed_clear(struct store_attr_packed *p)
{
	free(p->strings);
	p->strings = NULL;
}

void store_read_init(struct store_read *rd, const char *etag, long long size)
{
	memset(rd, 0, sizeof(*rd));
	snprintf(rd->etag, sizeof(rd->etag), "%s", etag ? etag : "");
	rd->size = size;
}

void store_page_cleanup(struct store_page *page)
{
	size_t i;

	if (!page)
		return;
	for (i = 0; i < page->nobjects; i++) {
		free(page->objects[i].key);
		free(page->objects[i].etag);
	}
	free(page->objects);
	for (i = 0; i < page->nprefixes; i++)
		free(page->prefixes[i]);
	free(page->prefixes);
	free(page->next_token);
	for (i = 0; i < page->ndrops; i++)
		free(page->drops[i].key);
	memset(page, 0, sizeof(*page));
}

void store_error_clear(struct store_error *e)
{
	memset(e, 0, sizeof(*e));
}

void store_error_log_fields(const struct store_error *e, struct log_fields *f)
{
	memset(f, 0, sizeof(*f));
	f->op = e->op[0] ? e->op : NULL;
	f->bucket = e->bucket[0] ? e->bucket : NULL;
	/* A listing of the bucket's root has key "": still a key field. */
	f->key = e->op[0] ? e->key : NULL;
	f->status = e->http_status;
	f->code = e->code;
	f->err = store_error_errno(e);
	f->request_id = e->request_id;
	f->id2 = e->host_id;
	f->latency_us = e->latency_us;
}

void store_error_log_denial(const struct store_error *e)
{
	char line[2400];
	struct log_fields f;

	snprintf(line, sizeof(line), "%s on %s denied to %s (%s): %s", e->action, e->resource,
		 e->principal[0] ? e->principal : "this identity", e->what, e->hint);
	store_error_log_fields(e, &f);
	/* A HEAD's 403 has no body: S3 means AccessDenied by it. */
	if (!f.code[0] && e->http_status == 403)
		f.code = "AccessDenied";
	/* Once per (principal, action, resource): the request id differs every time. */
	log_op_once_key(LOG_WARNING, line, &f, "%s%s", line, e->ids);
}

static struct store *inner_of(struct store *s)
{
	return ((struct store_layer *)s)->inner;
}

int store_fwd_stat(struct store *s, const char *key, struct store_attr *out,
		   struct store_error *e)
{
	return store_stat(inner_of(s), key, out, e);
}

int store_fwd_list_page(struct store *s, const char *prefix, const char *token, int max_keys,
			struct store_page *page, struct store_error *e)
{
	return store_list_page(inner_of(s), prefix, token, max_keys, page, e);
}

int store_fwd_read_range(struct store *s, const char *key, struct store_read *rd, long long off,
			 size_t len, char *dst, size_t *got, struct store_error *e)
{
	return store_read_range(inner_of(s), key, rd, off, len, dst, got, e);
}

int store_fwd_stat_read(struct store *s, const char *key, size_t len, char *dst, size_t *got,
			struct store_attr *out, struct store_error *e)
{
	return store_stat_read(inner_of(s), key, len, dst, got, out, e);
}

int store_fwd_identity(struct store *s, struct store_identity *out)
{
	return store_identity(inner_of(s), out);
}
