/*
 * The --metrics-addr endpoint on libmicrohttpd, and the mount's scrape-time
 * values.
 *
 * Limits, so that whoever can reach the port cannot use it against the
 * daemon: METRICS_CONNS connections at once (more wait in the listen queue,
 * then are refused by the kernel), each closed after METRICS_TIMEOUT_S
 * seconds of silence, with METRICS_CONN_MEMORY bytes for its request; a body
 * is never read. One polling thread serves them all, so a scrape costs one
 * render at a time; a render is bounded by METRICS_BODY_MAX.
 */
#include "app/metrics_http.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "app/app.h"
#include "cache/dirahead.h"
#include "cache/diskcache.h"
#include "cache/headcache.h"
#include "cache/membudget.h"
#include "cache/metacache.h"
#include "cache/readahead.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/strutil.h"
#include "fs/inode.h"
#include "fs/nodetrim.h"

#define METRICS_CONNS 8
#define METRICS_TIMEOUT_S 10
#define METRICS_CONN_MEMORY (32 * 1024)
#define METRICS_BODY_MAX (1024 * 1024)
#define METRICS_BACKLOG 16
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics_http {
	int fd;
	char *addr;			/* as given, for log lines */
	struct MHD_Daemon *daemon;
	struct app *app;
};

struct metrics_http *metrics_http_listen(const char *addr)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL, *ai;
	char host[256], port[8], why[160];
	struct metrics_http *m = NULL;
	unsigned p;
	int fd = -1, rc, err = 0, one = 1;

	if (hostport_split(addr, host, sizeof(host), &p, why, sizeof(why)) != 0) {
		log_msg(LOG_ERR, "--metrics-addr %s: %s", addr, why);
		return NULL;
	}
	snprintf(port, sizeof(port), "%u", p);
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		log_msg(LOG_ERR, "--metrics-addr %s: cannot resolve %s (%s); give an IP address, "
			"such as 127.0.0.1:%u, or a name in /etc/hosts", addr, host,
			rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc), p);
		return NULL;
	}
	/* The first address of the name that can be bound; only that one. */
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		/* A restarted sidecar binds again while the old connections linger. */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, METRICS_BACKLOG) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		log_msg(LOG_ERR, "--metrics-addr %s: cannot listen there: %s%s", addr, strerror(err),
			err == EADDRINUSE ? " (another process serves that port: pick another "
					    "one)"
			: err == EADDRNOTAVAIL ? " (no interface of this host has that address)"
			: err == EACCES ? " (a port below 1024 needs CAP_NET_BIND_SERVICE)" : "");
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (m)
		m->addr = strdup(addr);
	if (!m || !m->addr) {
		log_msg(LOG_ERR, "out of memory");
		close(fd);
		free(m);
		return NULL;
	}
	m->fd = fd;
	return m;
}

/* ---- what the mount keeps itself, read at scrape time ---- */

static unsigned long long load(const unsigned long long *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* One family of one unlabelled sample. */
static int one(struct buf *out, const char *name, const char *type, const char *help,
	       long long v)
{
	int rc = metrics_write_head(out, name, type, help);

	return rc ? rc : metrics_write_value(out, name, NULL, v);
}

static int render_caches(struct buf *out, struct app *app)
{
	struct stack *st = &app->stack;
	struct metacache_stats ms;
	unsigned long long hh = 0, hm = 0;
	struct diskcache_stats ds;
	int rc = 0, k;
	const char *const names[] = { "irsafs_cache_hits_total", "irsafs_cache_misses_total" };
	const char *const helps[] = {
		"Answers found in a cache, by cache: metadata (a lookup answered by a cached "
		"listing or a remembered missing name), head (an open that found the first bytes "
		"its lookup fetched), disk (--cache-dir blocks)",
		"Answers a cache did not have, by cache (see irsafs_cache_hits_total)",
	};

	memset(&ds, 0, sizeof(ds));
	memset(&ms, 0, sizeof(ms));
	if (st->meta)
		metacache_stats(st->meta, &ms);
	if (st->head)
		headcache_stats(st->head, &hh, &hm);
	if (st->disk)
		diskcache_stats(st->disk, &ds);
	for (k = 0; k < 2 && !rc; k++) {
		rc = metrics_write_head(out, names[k], "counter", helps[k]);
		if (!rc)
			rc = metrics_write_value(out, names[k], "cache=\"metadata\"",
						 (long long)(k ? ms.lookup_misses : ms.lookup_hits));
		if (!rc && st->head)
			rc = metrics_write_value(out, names[k], "cache=\"head\"",
						 (long long)(k ? hm : hh));
		if (!rc && st->disk)
			rc = metrics_write_value(out, names[k], "cache=\"disk\"",
						 (long long)(k ? ds.misses : ds.hits));
	}
	if (!rc && st->disk)
		rc = one(out, "irsafs_disk_cache_bytes", "gauge",
			 "Bytes of blocks in --cache-dir now", (long long)ds.bytes);
	return rc;
}

static int render_readahead(struct buf *out, struct app *app)
{
	struct ra_stats rs;
	int rc;

	memset(&rs, 0, sizeof(rs));
	if (app->stack.ra)
		readahead_stats(app->stack.ra, &rs);
	rc = metrics_write_head(out, "irsafs_read_requests_total", "counter",
				"Ranged GETs of object bytes done for reads, by kind: readahead "
				"(parts of the read-ahead window) or direct (a seek's own bytes)");
	if (!rc)
		rc = metrics_write_value(out, "irsafs_read_requests_total", "kind=\"readahead\"",
					 (long long)rs.gets);
	if (!rc)
		rc = metrics_write_value(out, "irsafs_read_requests_total", "kind=\"direct\"",
					 (long long)rs.direct_gets);
	if (!rc)
		rc = one(out, "irsafs_read_received_bytes_total", "counter",
			 "Object bytes received by those GETs", (long long)rs.bytes);
	if (!rc)
		rc = one(out, "irsafs_readahead_cancelled_total", "counter",
			 "Read-ahead parts dropped before their GET started (a seek or a close)",
			 (long long)rs.cancelled);
	if (!rc)
		rc = one(out, "irsafs_readahead_aborted_total", "counter",
			 "Read-ahead GETs cut short: nobody would read their part any more (a "
			 "close, a seek)", (long long)rs.aborted);
	if (!rc)
		rc = one(out, "irsafs_readahead_budget_short_total", "counter",
			 "Read-ahead parts not started for want of memory (--max-memory was full)",
			 (long long)rs.budget_short);
	return rc;
}

static int render_dirahead(struct buf *out, struct app *app)
{
	struct dirahead_stats ds;
	int rc;

	if (!app->stack.ahead)
		return 0;
	dirahead_store_stats(app->stack.ahead, &ds);
	rc = one(out, "irsafs_dirahead_requests_total", "counter",
		 "GETs of files fetched ahead of a reader that opens a directory's files in "
		 "listing order (--dir-readahead)", (long long)ds.gets);
	if (!rc)
		rc = one(out, "irsafs_dirahead_taken_total", "counter",
			 "Opens that found their file fetched ahead", (long long)ds.hits);
	if (!rc)
		rc = one(out, "irsafs_dirahead_unused_total", "counter",
			 "Files fetched ahead that no open took (the reader stopped or left the "
			 "order): one GET each", (long long)ds.wasted);
	if (!rc)
		rc = one(out, "irsafs_dirahead_breaks_total", "counter",
			 "Opens out of listing order, which stopped the read-ahead across files",
			 (long long)ds.breaks);
	if (!rc)
		rc = one(out, "irsafs_dirahead_held_bytes", "gauge",
			 "Bytes of files fetched ahead and not yet opened", (long long)ds.held);
	return rc;
}

static int render_memory(struct buf *out, struct app *app)
{
	struct membudget *mem = app->stack.mem;
	int rc = 0;

	if (!mem)
		return 0;
	rc = one(out, "irsafs_memory_budget_used_bytes", "gauge",
		 "Bytes of read buffers reserved now (read-ahead, lookups' first bytes, disk "
		 "cache bounce buffers)", (long long)membudget_used(mem));
	if (!rc)
		rc = one(out, "irsafs_memory_budget_kept_bytes", "gauge",
			 "Bytes of released buffers kept for reuse (counted in the budget)",
			 (long long)membudget_pooled(mem));
	if (!rc)
		rc = one(out, "irsafs_memory_budget_peak_bytes", "gauge",
			 "The most bytes ever reserved at once", (long long)membudget_peak(mem));
	if (!rc)
		rc = one(out, "irsafs_memory_budget_limit_bytes", "gauge",
			 "The ceiling for read buffers (--max-memory)",
			 (long long)membudget_limit(mem));
	return rc;
}

static size_t listing_bytes(struct app *app)
{
	struct metacache_stats ms;

	if (!app->stack.meta)
		return 0;
	metacache_stats(app->stack.meta, &ms);
	return ms.listing_bytes;
}

/* metrics_extra_fn: the mount's own counters, caches and memory. */
static int render_fs(struct buf *out, void *arg)
{
	struct app *app = arg;
	struct irsafs *fs = &app->fs;
	int rc;

	rc = one(out, "irsafs_read_bytes_total", "counter", "Bytes returned to applications by read",
		 (long long)load(&fs->counters.bytes_read));
	if (!rc)
		rc = one(out, "irsafs_reads_total", "counter",
			 "Reads answered (the kernel's requests, up to --kernel-readahead each); "
			 "beside irsafs_read_requests_total, how many reads each GET served",
			 (long long)load(&fs->counters.reads));
	if (!rc)
		rc = one(out, "irsafs_small_direct_reads_total", "counter",
			 "Reads under 32 KiB of objects read with direct I/O (--direct-io-size), "
			 "each where a small one ended: a round trip each, no kernel read-ahead",
			 (long long)load(&fs->counters.small_direct_reads));
	if (!rc)
		rc = one(out, "irsafs_opens_total", "counter", "Files opened",
			 (long long)load(&fs->counters.opens));
	if (!rc)
		rc = one(out, "irsafs_lookups_total", "counter", "Names looked up",
			 (long long)load(&fs->counters.lookups));
	if (!rc)
		rc = one(out, "irsafs_listings_total", "counter",
			 "Directories listed from S3 (all pages of one directory count once)",
			 (long long)load(&fs->counters.listings));
	if (!rc)
		rc = render_caches(out, app);
	if (!rc)
		rc = render_readahead(out, app);
	if (!rc)
		rc = render_dirahead(out, app);
	if (!rc)
		rc = render_memory(out, app);
	if (!rc)
		rc = one(out, "irsafs_metadata_cache_bytes", "gauge",
			 "Bytes of directory listings kept (--metadata-cache-size)",
			 (long long)listing_bytes(app));
	if (!rc)
		rc = one(out, "irsafs_inodes", "gauge", "Files and directories the kernel knows",
			 (long long)inode_count(fs->inodes));
	if (!rc)
		rc = one(out, "irsafs_inodes_bytes", "gauge",
			 "Bytes the names the kernel knows take (their share of "
			 "--metadata-cache-size)", (long long)inode_bytes(fs->inodes, NULL));
	if (!rc)
		rc = one(out, "irsafs_inodes_let_go_total", "counter",
			 "Names the kernel was asked to forget, past their share",
			 (long long)nodetrim_let_go(app->trim));
	if (!rc)
		rc = one(out, "irsafs_inodes_forgotten_total", "counter",
			 "Names the kernel forgot (FUSE FORGET)", (long long)load(&fs->counters.forgotten));
	if (!rc)
		rc = one(out, "irsafs_forget_messages_total", "counter",
			 "FORGET and BATCH_FORGET messages those came in",
			 (long long)load(&fs->counters.forget_messages));
	return rc;
}

/* ---- HTTP ---- */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, char *body, size_t len,
			     enum MHD_ResponseMemoryMode mode, const char *allow)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result ok;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				status == MHD_HTTP_OK ? METRICS_CONTENT_TYPE : "text/plain");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	ok = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ok;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	static char not_found[] = "not found: the metrics are at /metrics\n";
	static char not_allowed[] = "method not allowed: GET /metrics\n";
	static char failed[] = "cannot render the metrics\n";
	struct metrics_http *m = cls;
	struct buf b;
	size_t len;

	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, not_allowed, strlen(not_allowed),
			     MHD_RESPMEM_PERSISTENT, "GET, HEAD");
	if (strcmp(url, "/metrics"))
		return reply(c, MHD_HTTP_NOT_FOUND, not_found, strlen(not_found),
			     MHD_RESPMEM_PERSISTENT, NULL);
	buf_init(&b, METRICS_BODY_MAX);
	if (metrics_render(&b, render_fs, m->app) != 0) {
		buf_cleanup(&b);
		log_once(LOG_WARNING, "metrics at %s: the exposition is larger than %d bytes "
			 "or memory ran out: answering 500", m->addr, METRICS_BODY_MAX);
		return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, failed, strlen(failed),
			     MHD_RESPMEM_PERSISTENT, NULL);
	}
	len = b.len;
	return reply(c, MHD_HTTP_OK, buf_steal(&b), len, MHD_RESPMEM_MUST_FREE, NULL);
}

/* libmicrohttpd's own messages (a client that went away, ...): debug detail. */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt,
							   va_list ap)
{
	char line[512];
	size_t n;

	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	log_msg(LOG_DEBUG, "metrics endpoint: %s", line);
}

int metrics_http_start(struct metrics_http *m, struct app *app)
{
	m->app = app;
	m->daemon = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL,
				     NULL, answer, m,
				     MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				     MHD_OPTION_LISTEN_SOCKET, (MHD_socket)m->fd,
				     MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_CONNS,
				     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_TIMEOUT_S,
				     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)METRICS_CONN_MEMORY,
				     MHD_OPTION_END);
	if (!m->daemon) {
		log_msg(LOG_ERR, "cannot start the metrics endpoint on %s (libmicrohttpd refused "
			"to start its thread)", m->addr);
		return -1;
	}
	log_msg(LOG_INFO, "metrics at http://%s/metrics", m->addr);
	return 0;
}

void metrics_http_stop(struct metrics_http *m)
{
	if (!m || !m->daemon)
		return;
	MHD_stop_daemon(m->daemon);
	m->daemon = NULL;
}

void metrics_http_free(struct metrics_http *m)
{
	if (!m)
		return;
	metrics_http_stop(m);
	close(m->fd);
	free(m->addr);
	free(m);
}
