/*
 * metrics_http: the --metrics-addr endpoint (Prometheus text at /metrics).
 *
 * GET /metrics answers the registry (core/metrics.h), then what the mount
 * counts itself, read when the scrape comes: its counters, the caches' hits
 * and misses, the read-ahead's requests, the memory budget and the metadata
 * cache. libmicrohttpd serves it from one thread of its own, bound only to
 * the address given, with few connections and a short timeout each.
 *
 * The socket is bound before the mount (metrics_http_listen: a taken port or
 * a name that does not resolve stops irsafs before it asks STS anything),
 * and served once the mount is up (metrics_http_start, after any fork:
 * threads do not survive it). Not thread-safe: called from main's thread.
 *
 * It exposes counts for the whole mount by operation, status, errno and
 * cache: never a key, a prefix, a principal or a secret.
 */
#ifndef IRSAFS_APP_METRICS_HTTP_H
#define IRSAFS_APP_METRICS_HTTP_H

struct app;
struct metrics_http;

/*
 * Resolve addr (HOST:PORT, checked by opts) and listen there. NULL after
 * logging one line that names the address and the fix.
 */
struct metrics_http *metrics_http_listen(const char *addr);

/* Serve the mount's metrics (app) from now on. 0, or -1 after logging why. */
int metrics_http_start(struct metrics_http *m, struct app *app);

/* Stop serving (waits for a scrape in progress); m may be NULL. */
void metrics_http_stop(struct metrics_http *m);

/* Stop, close the socket and free; m may be NULL. */
void metrics_http_free(struct metrics_http *m);

#endif
