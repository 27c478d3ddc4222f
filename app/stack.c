/*
 * The stack, composed: which layers a mount gets and how they are sized.
 */
#include "app/stack.h"

#include <stdio.h>
#include <string.h>

#include "app/opts.h"
#include "cache/dirahead.h"
#include "cache/diskcache.h"
#include "cache/headcache.h"
#include "cache/membudget.h"
#include "cache/metacache.h"
#include "cache/readahead.h"
#include "core/log.h"
#include "http/http.h"
#include "s3/s3.h"

/* Heads kept at once: a stat that is never followed by an open holds little. */
#define HEAD_SLOTS 16

int stack_open_s3(struct stack *st, const struct opts *o, struct http_client *http,
		  struct creds_cache *creds, unsigned long long *requests, char *why,
		  size_t whylen)
{
	struct s3_config sc = {
		.bucket = o->bucket,
		.endpoint = o->endpoint,
		.region = o->region,
		.path_style = o->force_path_style,
		.page_size = o->list_page_size,
		.budget_ms = o->budget_ms,
		.requests = requests,
	};

	memset(st, 0, sizeof(*st));
	st->http = http;
	st->s3 = s3_store_new(&sc, http, creds, why, whylen);
	st->top = st->s3;
	return st->s3 ? 0 : -1;
}

int stack_open_caches(struct stack *st, const struct opts *o, char *why, size_t whylen)
{
	struct ra_config ra_cfg = {
		.part_size = o->read_part_size,
		.concurrency = (unsigned)o->read_concurrency,
	};
	struct store *below = st->s3;

	st->mem = membudget_new(o->max_memory);
	if (!st->mem)
		goto nomem;
	if (o->cache_dir) {
		st->disk = diskcache_new(below, st->mem, o->bucket, o->cache_dir, o->max_cache_size,
					 why, whylen);
		if (!st->disk)
			return -1;
		below = st->disk;
	}
	/* A window never exceeds a quarter of the budget: four files stream at full speed. */
	ra_cfg.max_window = o->read_part_size * (size_t)o->read_concurrency;
	if (ra_cfg.max_window > o->max_memory / 4)
		ra_cfg.max_window = o->max_memory / 4;
	st->ra = readahead_new(below, st->mem, &ra_cfg);
	if (!st->ra)
		goto nomem;
	st->top = st->ra;
	if (o->lookup_read) {
		st->head = headcache_new(st->top, st->mem, HEAD_SLOTS, o->lookup_read);
		if (!st->head)
			goto nomem;
		st->top = st->head;
	}
	st->meta = metacache_new(st->top, &(struct metacache_config){
		.bucket = o->bucket,
		.ttl_ms = (long long)(o->metadata_ttl * 1000),
		.negative_ttl_ms = (long long)(o->negative_ttl * 1000),
		.max_listing_bytes = o->metadata_cache_size,
		.page_size = o->list_page_size,
		.list_timeout_ms = o->list_timeout_ms,
		.unlisted_dirs = o->unlisted_dirs,
	});
	if (!st->meta)
		goto nomem;
	st->top = st->meta;
	if (o->dir_readahead) {
		/*
		 * As many GETs at once as the read-ahead, whole files up to 1 MiB,
		 * at most a quarter of the budget held, leaving another quarter to
		 * the files being read.
		 */
		st->ahead = dirahead_store_new(st->top, st->mem, &(struct dirahead_config){
			.max_inflight = (unsigned)o->read_concurrency,
			.max_files = (unsigned)o->dir_readahead,
			.max_bytes = o->max_memory / 4,
			.keep_free = o->max_memory / 4,
			.whole_max = 1u << 20,
		}, (long long)(o->metadata_ttl * 1000));
		if (!st->ahead)
			goto nomem;
		st->top = st->ahead;
	}
	return 0;
nomem:
	snprintf(why, whylen, "out of memory");
	return -1;
}

int stack_start(struct stack *st)
{
	if (readahead_start(st->ra) != 0) {
		log_msg(LOG_ERR, "cannot start the read-ahead threads");
		return -1;
	}
	/* Best effort too: without its threads, files are not fetched ahead. */
	if (st->ahead && dirahead_store_start(st->ahead) != 0)
		log_msg(LOG_WARNING, "cannot start the read-ahead across files: files are read "
			"one after another");
	/* Best effort: without helpers a lookup asks its two questions in turn. */
	if (metacache_start(st->meta) != 0)
		log_msg(LOG_WARNING, "cannot start the lookup helper threads: cold lookups "
			"will take two round trips");
	return 0;
}

size_t stack_listing_bytes(void *arg)
{
	struct stack *st = arg;
	struct metacache_stats ms;

	if (!st->meta)
		return 0;
	metacache_stats(st->meta, &ms);
	return ms.listing_bytes + ms.listing_held;
}

void stack_stop(struct stack *st)
{
	struct dirahead_stats ds;

	if (st->http)
		http_client_close(st->http);
	if (st->meta)
		metacache_stop(st->meta);
	if (!st->ahead || st->ahead_logged)
		return;
	st->ahead_logged = 1;
	dirahead_store_stats(st->ahead, &ds);
	if (ds.gets || ds.breaks)
		log_msg(LOG_INFO, "read ahead across files: %llu requests, %llu taken by opens, "
			"%llu breaks in the order", ds.gets, ds.hits, ds.breaks);
}

void stack_free(struct stack *st)
{
	store_destroy(st->ahead);
	store_destroy(st->meta);
	store_destroy(st->head);
	store_destroy(st->ra);
	store_destroy(st->disk);
	store_destroy(st->s3);
	membudget_free(st->mem);
	memset(st, 0, sizeof(*st));
}
