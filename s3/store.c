/*
 * What every store shares: packed attributes, the terms of a read, list
 * pages, the words of an error, the forwarders of a layer, and plain files
 * (per-open contexts for a store that keeps no per-open state).
 */
#include "s3/store.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/strutil.h"

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

size_t store_entry_bytes(size_t len, const struct store_attr_packed *a)
{
	return heap_bytes(len + 1) + (a->strings ? heap_bytes(store_attr_packed_bytes(a)) : 0);
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

struct store_error *store_error_dup(const struct store_error *e)
{
	struct store_error *k;

	if (!e || e->cls == ERR_OK)
		return NULL;
	k = malloc(sizeof(*k));
	if (k)
		*k = *e;
	return k;
}

void store_error_give(const struct store_error *kept, struct store_error *e)
{
	if (kept)
		*e = *kept;
	else
		store_error_clear(e);
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

int store_fwd_stat_head(struct store *s, const char *key, struct store_attr *out,
			struct store_error *e)
{
	return store_stat_head(inner_of(s), key, out, e);
}

int store_fwd_identity(struct store *s, struct store_identity *out)
{
	return store_identity(inner_of(s), out);
}

struct store_file *store_fwd_open(struct store *s, const char *key, const struct store_attr *a,
				  struct store_head *head)
{
	return store_open(inner_of(s), key, a, head);
}

void store_head_release(struct store_head *h)
{
	if (h->buf && h->release)
		h->release(h->ctx, h->buf, h->cap);
	memset(h, 0, sizeof(*h));
}

/*
 * A plain file: the pin and the size, and the head it was opened with.
 * refs: the handle, and each span served from the head (the head's buffer is
 * the file's). The pin is set by the first answer when open had no ETag.
 */
struct plain_file {
	struct store_file base;
	int refs;			/* atomic */
	char *key;
	long long size;
	pthread_mutex_t lock;		/* guards etag */
	char etag[128];
	struct store_head head;
};

static void plain_put(struct plain_file *f)
{
	if (__atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	store_head_release(&f->head);
	pthread_mutex_destroy(&f->lock);
	free(f->key);
	free(f);
}

void store_open_terms(const struct store_attr *a, char *etag, size_t etaglen, long long *size)
{
	snprintf(etag, etaglen, "%s", etag_sendable(a->etag) ? a->etag : "");
	*size = a->size < 0 ? 0 : a->size > STORE_SIZE_MAX ? STORE_SIZE_MAX : a->size;
}

struct store_file *store_plain_open(struct store *s, const char *key, const struct store_attr *a,
				    struct store_head *head)
{
	struct plain_file *f = calloc(1, sizeof(*f));

	if (f)
		f->key = strdup(key);
	if (!f || !f->key) {
		free(f);
		if (head)
			store_head_release(head);
		return NULL;
	}
	f->base.store = s;
	f->refs = 1;
	pthread_mutex_init(&f->lock, NULL);
	store_open_terms(a, f->etag, sizeof(f->etag), &f->size);
	if (head) {
		f->head = *head;
		memset(head, 0, sizeof(*head));
		if ((long long)f->head.got > f->size)
			f->head.got = (size_t)f->size;
	}
	return &f->base;
}

int store_plain_read(struct store_file *sf, long long off, size_t len, const int *cancel,
		     struct store_span *sp, struct store_error *e)
{
	struct plain_file *f = (struct plain_file *)sf;
	struct store_read rd;
	size_t got = 0, n;
	char *buf;
	int rc;

	memset(sp, 0, sizeof(*sp));
	store_error_clear(e);
	if (off < 0)
		return -EINVAL;
	if (off >= f->size || len == 0)
		return 0;
	n = (long long)len > f->size - off ? (size_t)(f->size - off) : len;
	if (f->head.buf && off + (long long)n <= (long long)f->head.got) {
		__atomic_add_fetch(&f->refs, 1, __ATOMIC_ACQ_REL);
		sp->iov[0].iov_base = f->head.buf + off;
		sp->iov[0].iov_len = n;
		sp->niov = 1;
		sp->len = n;
		sp->owner = f;
		return 0;
	}
	buf = malloc(n);
	if (!buf)
		return -ENOMEM;
	pthread_mutex_lock(&f->lock);
	store_read_init(&rd, f->etag, f->size);
	pthread_mutex_unlock(&f->lock);
	rd.cancel = cancel;
	rc = store_read_range(sf->store, f->key, &rd, off, n, buf, &got, e);
	if (!rc && got != n) {
		/* Only the size ends the file: fewer bytes are an answer to refuse. */
		store_error_clear(e);
		e->cls = ERR_PROTOCOL;
		snprintf(e->what, sizeof(e->what), "%zu bytes where %zu were asked for", got, n);
		rc = -store_error_errno(e);
	}
	if (!rc) {
		pthread_mutex_lock(&f->lock);
		if (!f->etag[0]) {
			snprintf(f->etag, sizeof(f->etag), "%s", rd.etag);
		} else if (rd.etag[0] && strcmp(f->etag, rd.etag)) {
			e->cls = ERR_PRECONDITION;
			snprintf(e->what, sizeof(e->what), "the object changed since it was opened");
			rc = -store_error_errno(e);
		}
		pthread_mutex_unlock(&f->lock);
	}
	if (rc) {
		free(buf);
		return rc;
	}
	sp->iov[0].iov_base = buf;
	sp->iov[0].iov_len = n;
	sp->niov = 1;
	sp->len = n;
	sp->owned = buf;
	sp->owned_cap = n;
	return 0;
}

void store_plain_span_release(struct store_file *sf, struct store_span *sp)
{
	free(sp->owned);
	if (sp->owner)
		plain_put(sp->owner);
	memset(sp, 0, sizeof(*sp));
}

void store_plain_interrupt(struct store_file *sf)
{
	/* Nothing waits here: the cancel flag reaches the request itself. */
}

void store_plain_close(struct store_file *sf)
{
	plain_put((struct plain_file *)sf);
}

int store_fwd_lookup(struct store *s, const char *dir_key, const char *name,
		     struct store_entry *out, struct store_error *e)
{
	return store_lookup(inner_of(s), dir_key, name, out, e);
}

int store_fwd_dir_open(struct store *s, const char *dir_key, struct store_dir_reader **out,
		       struct store_dir_waiter *w)
{
	return store_dir_open(inner_of(s), dir_key, out, w);
}

ssize_t store_fwd_dir_read(struct store *s, struct store_dir_reader *r, size_t off,
			   store_dirent_fn fn, void *ctx)
{
	return store_dir_read(inner_of(s), r, off, fn, ctx);
}

int store_fwd_dir_wait(struct store *s, struct store_dir_reader *r, size_t off,
		       struct store_dir_waiter *w)
{
	return store_dir_wait(inner_of(s), r, off, w);
}

void store_fwd_dir_arm(struct store *s, struct store_dir_waiter *w)
{
	store_dir_arm(inner_of(s), w);
}

void store_fwd_dir_cancel(struct store *s, const void *tag)
{
	store_dir_cancel(inner_of(s), tag);
}

struct store_dir *store_fwd_dir_peek(struct store *s, const char *dir_key)
{
	return store_dir_peek(inner_of(s), dir_key);
}

void store_fwd_dir_close(struct store *s, struct store_dir_reader *r)
{
	store_dir_close(inner_of(s), r);
}

int store_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > STORE_NAME_MAX)
		return 0;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return 0;
	return memchr(name, '/', len) == NULL && memchr(name, '\0', len) == NULL;
}

struct store_dir *store_dir_new(void)
{
	struct store_dir *d = calloc(1, sizeof(*d));

	if (d) {
		d->refs = 1;
		d->fetched_ms = clock_mono_ms();
		d->bytes = sizeof(*d);
	}
	return d;
}

struct store_dir *store_dir_ref(struct store_dir *d)
{
	__atomic_add_fetch(&d->refs, 1, __ATOMIC_RELAXED);
	return d;
}

/* What an entry holds besides its slot. */
static size_t dirent_bytes(const struct store_dirent *ent)
{
	return store_entry_bytes(strlen(ent->name), &ent->attr);
}

/* Chunk k's entries (those in [d->first, d->n)) are freed, then the chunk; the bytes they held. */
static size_t free_chunk(struct store_dir *d, size_t k, size_t cap)
{
	size_t lo = k << STORE_DIR_CHUNK_SHIFT, hi = lo + STORE_DIR_CHUNK, i, bytes = 0;
	struct store_dirent *c = d->chunk[k];

	if (!c)
		return 0;
	if (lo < d->first)
		lo = d->first;
	if (hi > d->n)
		hi = d->n;
	for (i = lo; i < hi; i++) {
		struct store_dirent *ent = &c[i & (STORE_DIR_CHUNK - 1)];

		bytes += dirent_bytes(ent);
		free(ent->name);
		store_attr_packed_clear(&ent->attr);
	}
	free(c);
	d->chunk[k] = NULL;
	return bytes + cap * sizeof(*c);
}

void store_dir_release(struct store_dir *d)
{
	size_t k;

	if (!d || __atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (k = 0; k < d->nchunks; k++)
		free_chunk(d, k, 0);
	free(d->chunk);
	free(d);
}

size_t store_dir_let_go(struct store_dir *d, size_t below)
{
	size_t k, end = below >> STORE_DIR_CHUNK_SHIFT, freed = 0;

	if (below > d->n)
		end = d->n >> STORE_DIR_CHUNK_SHIFT;
	/* Chunks wholly below `below` are full, STORE_DIR_CHUNK entries each. */
	for (k = d->first >> STORE_DIR_CHUNK_SHIFT; k < end; k++)
		freed += free_chunk(d, k, STORE_DIR_CHUNK);
	if (end << STORE_DIR_CHUNK_SHIFT > d->first)
		d->first = end << STORE_DIR_CHUNK_SHIFT;
	d->bytes -= freed;
	return freed;
}

int store_name_cmp(const char *a, const char *b)
{
	const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;

	while (*x && *x == *y) {
		x++;
		y++;
	}
	if (!*x && !*y)
		return 0;
	/* The end of a name sorts as the '/' that would follow it... */
	if ((*x ? *x : '/') != (*y ? *y : '/'))
		return (int)(*x ? *x : '/') - (int)(*y ? *y : '/');
	/* ... and before a '/' that is really there (a name to look up never holds one). */
	return *x ? 1 : -1;
}

const struct store_dirent *store_dir_find(const struct store_dir *d, const char *name)
{
	size_t lo = d->first, hi = d->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct store_dirent *ent = store_dir_at(d, mid);
		int c = store_name_cmp(ent->name, name);

		if (c == 0)
			return ent;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}
