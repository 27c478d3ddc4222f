/*
 * The metadata cache: lookups (from a listing, a negative entry, or two
 * questions to the store below at once) and listings (fetched off the
 * caller's thread, kept in the table). See metacache.h for what the answers
 * mean. The table and the fetches lock themselves; the layer keeps only
 * atomic counters besides them.
 */
#include "cache/metacache.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/dirfetch.h"
#include "cache/metatable.h"
#include "core/log.h"
#include "core/workq.h"
#include "s3/store.h"

/* Cold lookups that can probe in parallel at once; more take two round trips. */
#define LOOKUP_HELPERS 8

struct metacache {
	struct store_layer layer;	/* first: the store is cast back */
	struct metacache_config cfg;
	char *bucket;
	struct metatable *table;
	struct dirfetch *dirs;		/* NULL once stopped */
	struct workq *helpers;		/* run a lookup's directory probe beside its GET */
	unsigned long long hits, misses;	/* atomic */
};

static struct store *below(struct metacache *mc)
{
	return mc->layer.inner;
}

static char *join(const char *a, const char *b, const char *c)
{
	char *s;

	if (asprintf(&s, "%s%s%s", a, b, c) < 0)
		return NULL;
	return s;
}

/* Does anything exist under dir_key? 1 yes, 0 no, or a negative errno. */
static int dir_exists(struct metacache *mc, const char *dir_key, struct store_error *e)
{
	struct store_page page;
	int rc, found;

	rc = store_list_page(below(mc), dir_key, NULL, 1, &page, e);
	if (rc)
		return rc;
	found = page.nobjects > 0 || page.nprefixes > 0;
	store_page_cleanup(&page);
	return found;
}

/* The directory probe of a lookup, run beside the file's GET (mc->helpers). */
struct dir_probe {
	struct work w;
	struct metacache *mc;
	const char *dir_key;
	struct store_error e;
	int rc;
};

static void dir_probe_run(struct work *w)
{
	struct dir_probe *p = (struct dir_probe *)w;

	p->rc = dir_exists(p->mc, p->dir_key, &p->e);
}

/*
 * --unlisted-dirs: is a name whose directory probe answered list_rc and whose
 * GET (or HEAD) answered rc a directory that can be traversed, not listed?
 * Without s3:ListBucket, S3 refuses both for a directory, for a missing key
 * and for a key the role may not read alike (403): nothing tells them apart.
 * The flag takes all three for directories, so that a role that may only
 * GetObject reaches a/b/c.txt by its path; a missing or unreadable name then
 * stats as d--x--x--x and opening it gives EACCES (opendir of a denied node).
 * Without the flag such a name is EACCES.
 */
static int unlisted_dir(const struct metacache *mc, int list_rc, int rc)
{
	return mc->cfg.unlisted_dirs && list_rc == -EACCES && (rc == -EACCES || rc == -ENOENT);
}

/*
 * Ask the store about a name: *list_rc is the directory probe's answer (1, 0
 * or a negative errno, detail in *le), the return value the file's (0 with
 * *a filled, or a negative errno with e; not asked, -ENOENT, when the probe
 * found a directory). Both go at once; with a head cache the file's is a GET
 * whose first bytes the store keeps for the open (store_stat_head), else a
 * HEAD.
 */
static int probe_name(struct metacache *mc, const char *dir_key, const char *file_key,
		      int *list_rc, struct store_error *le, struct store_attr *a,
		      struct store_error *e)
{
	struct dir_probe dp = { .w.fn = dir_probe_run, .mc = mc, .dir_key = dir_key };
	int rc;

	workq_submit(mc->helpers, &dp.w);
	rc = store_stat_head(below(mc), file_key, a, e);
	/* Waits for the probe, or runs it now when no helper was free. */
	workq_finish(mc->helpers, &dp.w);
	*list_rc = dp.rc;
	*le = dp.e;
	if (dp.rc == 1 || (dp.rc < 0 && dp.rc != -EACCES))
		return -ENOENT;
	if (rc == -ENOSYS) /* no head cache, or no memory for the bytes: a HEAD */
		return store_stat(below(mc), file_key, a, e);
	if (rc == 0 || rc == -ENOENT)
		return rc;
	if (rc == -EACCES && e->cls == ERR_DENIED) {
		/* Not a directory after all: the denial is this name's, report it. */
		if (!unlisted_dir(mc, dp.rc, rc)) /* else the lookup says what it shows */
			store_error_log_denial(e);
		return rc;
	}
	/*
	 * Throttled, broken, unreachable, untrusted or without credentials:
	 * the GET spent the operation's budget on it, and a HEAD would start a
	 * second one against the same fault. Not so a GET answered with the
	 * wrong range or length (MalformedReply): those answers come at once,
	 * and say nothing about what a HEAD would (a proxy that breaks ranges).
	 */
	if ((err_class_retryable(e->cls) && e->cls != ERR_PROTOCOL) || rc == -EKEYEXPIRED ||
	    rc == -EKEYREJECTED || e->cls == ERR_TLS)
		return rc;
	/*
	 * Empty (416), archived (InvalidObjectState), no usable size, or no
	 * usable answer to the range: ask with a HEAD.
	 */
	return store_stat(below(mc), file_key, a, e);
}

/*
 * The role may list but not read: find the key itself with one more listing
 * (prefix = the key), so an unreadable file still shows, as "----------".
 * 1 with *a filled when the key exists, 0 when not, or a negative errno.
 */
static int file_listed(struct metacache *mc, const char *file_key, struct store_attr *a)
{
	struct store_page page;
	struct store_error e;
	int rc, found = 0;

	rc = store_list_page(below(mc), file_key, NULL, 1, &page, &e);
	if (rc)
		return rc;
	if (page.nobjects > 0 && !strcmp(page.objects[0].key, file_key)) {
		const struct store_object *o = &page.objects[0];

		memset(a, 0, sizeof(*a));
		a->size = o->size;
		a->mtime = o->mtime;
		snprintf(a->etag, sizeof(a->etag), "%s", o->etag ? o->etag : "");
		snprintf(a->storage_class, sizeof(a->storage_class), "%s", o->storage_class);
		found = 1;
	}
	store_page_cleanup(&page);
	return found;
}

static void count(unsigned long long *c)
{
	__atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
}

/* What name is, asking the store below (no listing or negative entry knew). */
static int ask(struct metacache *mc, const char *dir_key, const char *name, const char *file_key,
	       struct store_entry *out, struct store_error *e)
{
	char *sub = join(dir_key, name, "/");
	struct store_error le;
	int rc, list_rc;

	if (!sub)
		return -ENOMEM;
	rc = probe_name(mc, sub, file_key, &list_rc, &le, &out->attr, e);
	if (list_rc == 1) {
		memset(out, 0, sizeof(*out));
		out->is_dir = 1;
		store_error_clear(e);
		rc = 0;
	} else if (list_rc < 0 && list_rc != -EACCES) {
		*e = le;
		rc = list_rc;
	} else if (rc == 0) {
		out->is_dir = 0;
		out->denied = 0;
	} else if (unlisted_dir(mc, list_rc, rc)) {
		/* Neither listed nor read: a directory to traverse (--unlisted-dirs). */
		log_once(LOG_INFO, "s3://%s/%s: S3 refused to list %s and to read %s: shown as a "
			 "directory that can be traversed, not listed (--unlisted-dirs); if %s is "
			 "a file, the role needs s3:GetObject on it", mc->bucket, sub, sub, file_key,
			 file_key);
		memset(out, 0, sizeof(*out));
		out->is_dir = 1;
		out->denied = 1;
		store_error_clear(e);
		rc = 0;
	} else if (rc == -EACCES && list_rc == 0 && file_listed(mc, file_key, &out->attr) == 1) {
		/* Listed but not readable: a file that shows its denial (e says which). */
		out->is_dir = 0;
		out->denied = 1;
		rc = 0;
	} else if (rc == -ENOENT && list_rc == -EACCES) {
		/* Not a file, and we may not look for a directory: it may be one. */
		metatable_neg_put(mc->table, file_key, -EACCES);
		store_error_clear(e);
		rc = -EACCES;
	} else if (rc == -ENOENT || rc == -EACCES) {
		metatable_neg_put(mc->table, file_key, rc);
	}
	free(sub);
	return rc;
}

static int mc_lookup(struct store *s, const char *dir_key, const char *name,
		     struct store_entry *out, struct store_error *e)
{
	struct metacache *mc = (struct metacache *)s;
	const struct store_dirent *ent;
	struct store_dir *d;
	char *file_key;
	int rc;

	memset(out, 0, sizeof(*out));
	store_error_clear(e);
	d = metatable_get_dir(mc->table, dir_key, mc->cfg.ttl_ms);
	if (d) {
		count(&mc->hits);
		ent = store_dir_find(d, name);
		rc = ent ? 0 : -ENOENT;
		if (ent) {
			out->is_dir = ent->is_dir;
			store_dirent_attr(ent, &out->attr);
		}
		store_dir_release(d);
		return rc;
	}
	file_key = join(dir_key, name, "");
	if (!file_key)
		return -ENOMEM;
	rc = metatable_neg_get(mc->table, file_key);
	count(rc ? &mc->hits : &mc->misses);
	if (!rc)
		rc = ask(mc, dir_key, name, file_key, out, e);
	free(file_key);
	return rc;
}

static int mc_dir_open(struct store *s, const char *dir_key, struct store_dir_reader **out,
		       struct store_dir_waiter *w)
{
	struct metacache *mc = (struct metacache *)s;
	struct store_dir *d = metatable_get_dir(mc->table, dir_key, mc->cfg.ttl_ms);

	*out = NULL;
	if (d) {
		/* Fresh: a reader of the whole listing, answered at the arm. */
		*out = dirfetch_open_listing(d);
		store_dir_release(d);
		if (!*out)
			return -ENOMEM;
		dirfetch_answered(w, *out, 0);
		return 0;
	}
	if (!mc->dirs)
		return -ESHUTDOWN;
	return dirfetch_open(mc->dirs, dir_key, out, w);
}

static ssize_t mc_dir_read(struct store *s, struct store_dir_reader *r, size_t off,
			   store_dirent_fn fn, void *ctx)
{
	return dirfetch_read(((struct metacache *)s)->dirs, r, off, fn, ctx);
}

static int mc_dir_wait(struct store *s, struct store_dir_reader *r, size_t off,
		       struct store_dir_waiter *w)
{
	struct metacache *mc = (struct metacache *)s;

	if (!mc->dirs)
		return -EIO;
	return dirfetch_wait(mc->dirs, r, off, w);
}

static void mc_dir_arm(struct store *s, struct store_dir_waiter *w)
{
	dirfetch_arm(((struct metacache *)s)->dirs, w);
}

static void mc_dir_cancel(struct store *s, const void *tag)
{
	struct metacache *mc = (struct metacache *)s;

	if (mc->dirs)
		dirfetch_cancel(mc->dirs, tag);
}

/* The kept listing whatever its age: the caller checks what it plans with it. */
static struct store_dir *mc_dir_peek(struct store *s, const char *dir_key)
{
	return metatable_get_dir(((struct metacache *)s)->table, dir_key, LLONG_MAX);
}

static void mc_dir_close(struct store *s, struct store_dir_reader *r)
{
	dirfetch_close(((struct metacache *)s)->dirs, r);
}

/* The fetches' share of the table, and where a finished listing goes. */
static int fetch_reserve(void *ctx, size_t bytes)
{
	return metatable_reserve(((struct metacache *)ctx)->table, bytes);
}

static void fetch_unreserve(void *ctx, size_t bytes)
{
	metatable_unreserve(((struct metacache *)ctx)->table, bytes);
}

static void fetch_finished(void *ctx, const char *key, int rc, struct store_dir *d)
{
	/* d is NULL for a listing read in a window: not kept. */
	if (!rc && d)
		metatable_set_dir(((struct metacache *)ctx)->table, key, d);
}

static void mc_destroy(struct store *s)
{
	struct metacache *mc = (struct metacache *)s;

	metacache_stop(s);
	workq_free(mc->helpers);
	metatable_free(mc->table);
	free(mc->bucket);
	free(mc);
}

static const struct store_ops mc_ops = {
	.stat = store_fwd_stat,
	.list_page = store_fwd_list_page,
	.read_range = store_fwd_read_range,
	.stat_read = store_fwd_stat_read,
	.stat_head = store_fwd_stat_head,
	.identity = store_fwd_identity,
	.lookup = mc_lookup,
	.dir_open = mc_dir_open,
	.dir_read = mc_dir_read,
	.dir_wait = mc_dir_wait,
	.dir_arm = mc_dir_arm,
	.dir_cancel = mc_dir_cancel,
	.dir_peek = mc_dir_peek,
	.dir_close = mc_dir_close,
	/* Reads pass through: the file is the layer's below that opens files. */
	.open = store_fwd_open,
	.destroy = mc_destroy,
};

struct store *metacache_new(struct store *inner, const struct metacache_config *cfg)
{
	struct metacache *mc = calloc(1, sizeof(*mc));
	struct dirfetch_config dc;

	if (!mc)
		return NULL;
	mc->layer.base.ops = &mc_ops;
	mc->layer.inner = inner;
	mc->cfg = *cfg;
	mc->bucket = strdup(cfg->bucket ? cfg->bucket : "");
	mc->table = metatable_new();
	mc->helpers = workq_new(LOOKUP_HELPERS);
	dc = (struct dirfetch_config){
		.store = inner,
		.page_size = cfg->page_size,
		.timeout_ms = cfg->list_timeout_ms,
		.reserve = fetch_reserve,
		.unreserve = fetch_unreserve,
		.finished = fetch_finished,
		.ctx = mc,
	};
	mc->dirs = dirfetch_new(&dc);
	if (!mc->bucket || !mc->table || !mc->helpers || !mc->dirs) {
		mc_destroy(&mc->layer.base);
		return NULL;
	}
	mc->cfg.bucket = mc->bucket;
	metatable_set_limits(mc->table, &(struct metatable_limits){
		.ttl_ms = cfg->ttl_ms,
		.negative_ttl_ms = cfg->negative_ttl_ms,
		.max_listing_bytes = cfg->max_listing_bytes,
	});
	return &mc->layer.base;
}

int metacache_start(struct store *s)
{
	return workq_start(((struct metacache *)s)->helpers);
}

void metacache_stop(struct store *s)
{
	struct metacache *mc = (struct metacache *)s;

	dirfetch_free(mc->dirs);
	mc->dirs = NULL;
}

void metacache_set_dir(struct store *s, const char *dir_key, struct store_dir *d)
{
	metatable_set_dir(((struct metacache *)s)->table, dir_key, d);
}

void metacache_stats(struct store *s, struct metacache_stats *out)
{
	struct metacache *mc = (struct metacache *)s;

	out->lookup_hits = __atomic_load_n(&mc->hits, __ATOMIC_RELAXED);
	out->lookup_misses = __atomic_load_n(&mc->misses, __ATOMIC_RELAXED);
	out->listing_bytes = metatable_listing_bytes(mc->table);
	out->listing_held = 0;
	out->listing_held_peak = 0;
	out->listings_live = 0;
	if (mc->dirs) {
		out->listing_held = dirfetch_held(mc->dirs, &out->listing_held_peak);
		out->listings_live = dirfetch_live(mc->dirs);
	}
}
