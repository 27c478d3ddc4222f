#include "s3/store.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

const char *store_attr_packed_etag(const struct store_attr_packed *p)
{
	return p->strings ? p->strings : ""; /* packed first (fields[0]) */
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
