/*
 * metrics: counters, gauges and histograms, and the Prometheus text format
 * they are read in.
 *
 * A family is one metric name with at most two label dimensions, and every
 * value a label can ever take is in a table fixed at compile time: an
 * operation, a status from a fixed list (others fall into "4xx", "5xx", ...),
 * an errno name from a fixed list (others are "other"). So nothing a server
 * answers, and no key, can add a series: the number of series is bounded
 * however the mount is used. Updates are one relaxed atomic add or store per
 * cell, with no lock, from any thread: cheap enough for the request path. A
 * histogram keeps one cell per bucket (not cumulative) and its sum; the
 * renderer adds the buckets up, so the +Inf bucket and _count are the same
 * number by construction, even while other threads observe.
 *
 * The families irsafs keeps (metrics_request and the functions after it) live
 * in one process-wide registry: with the log sink, the second process global,
 * for the same reason. The request path in http/, s3/ and auth/ counts with
 * one call and no pointer threaded through every layer, and each counter is a
 * fact about the process. What other modules count already (the file
 * system's counters, the caches, the memory budget) is not copied here:
 * metrics_render asks a callback for it at scrape time.
 *
 * No metric carries a secret or names an object: labels are operations,
 * status codes, errno names and cache names, never a key, a prefix or a
 * principal. Everything here is thread-safe.
 */
#ifndef IRSAFS_CORE_METRICS_H
#define IRSAFS_CORE_METRICS_H

#include <stddef.h>
#include <time.h>

struct buf;

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

/* A label and every value it can take. */
struct metrics_dim {
	const char *name;
	const char *const *values;
	unsigned n;
};

/*
 * One family. Cells are indexed by the label values (i for dim[0], j for
 * dim[1]; 0 where a dimension is unused). A histogram's observations and
 * sum are stored in integer units (e.g. microseconds) and rendered divided
 * by scale (e.g. 1e6: seconds); its bounds are in stored units, ascending.
 */
struct metrics_family {
	const char *name;			/* without _bucket, _sum, _count */
	const char *help;
	enum metrics_type type;
	const struct metrics_dim *dim[2];	/* NULL: unused (dim[1] only with dim[0]) */
	const unsigned long long *bounds;	/* histograms */
	unsigned nbounds;
	double scale;				/* histograms; 0: 1 */
	unsigned long long *cells;		/* metrics_cells() of them, zeroed */
};

/* How many cells f needs. */
size_t metrics_cells(const struct metrics_family *f);

/* Counter: add n to series (i, j). Out-of-range indexes are ignored. */
void metrics_add(struct metrics_family *f, unsigned i, unsigned j, unsigned long long n);
/* Gauge: set series (i, j) to v. */
void metrics_set(struct metrics_family *f, unsigned i, unsigned j, long long v);
/* Histogram: one observation of v (stored units) in series (i, j). */
void metrics_observe(struct metrics_family *f, unsigned i, unsigned j, unsigned long long v);
/* The current value of a counter or gauge series (tests, logs). */
long long metrics_value(const struct metrics_family *f, unsigned i, unsigned j);

/*
 * Append f in the text exposition format (version 0.0.4): # HELP, # TYPE,
 * then the series. A family without labels always has its sample; of a
 * labelled one, the series that have counted something (a gauge: that are
 * not 0), so an idle mount shows few lines; HELP and TYPE are there either
 * way. Histograms: name_bucket{...,le="B"} cumulative, le="+Inf",
 * name_sum, name_count. 0, or -EMSGSIZE / -ENOMEM from out.
 */
int metrics_render_family(struct buf *out, const struct metrics_family *f);

/*
 * For values kept elsewhere, read at scrape time: the HELP and TYPE lines
 * (type "counter" or "gauge"), then one line per series. labels is the text
 * inside the braces (e.g. cache="disk"), NULL for none; it must come from a
 * fixed set like every other label here.
 */
int metrics_write_head(struct buf *out, const char *name, const char *type, const char *help);
int metrics_write_value(struct buf *out, const char *name, const char *labels, long long v);

/* ---- irsafs's own families (the process registry) ---- */

/* Remote operations: the op label of requests, retries and latency. */
enum metrics_op {
	METRICS_OP_HEAD,	/* S3 HeadObject */
	METRICS_OP_GET,		/* S3 GetObject */
	METRICS_OP_LIST,	/* S3 ListObjectsV2 */
	METRICS_OP_STS,		/* STS AssumeRoleWithWebIdentity */
	METRICS_OP_COUNT,
	METRICS_OP_NONE = -1,	/* not counted */
};

/* "HEAD", "GET", "LIST", "STS"; NULL for METRICS_OP_NONE. */
const char *metrics_op_name(int op);

/* File-system operations: the op label of file-system errors. */
enum metrics_fs_op {
	METRICS_FS_LOOKUP,
	METRICS_FS_GETATTR,
	METRICS_FS_OPEN,
	METRICS_FS_READ,
	METRICS_FS_OPENDIR,
	METRICS_FS_READDIR,
	METRICS_FS_GETXATTR,
	METRICS_FS_LISTXATTR,
	METRICS_FS_WRITE,	/* every write-type operation (always EROFS) */
	METRICS_FS_COUNT,
};

/* Monotonic microseconds, for latencies. */
long long metrics_now_us(void);

/* One HTTP attempt of op answered status (0: no answer: refused, reset, timeout, TLS). */
void metrics_request(int op, int status);
/* op is tried again after a retryable failure. */
void metrics_retry(int op);
/* op was answered with throttling (SlowDown, 429, a bare 503 to a HEAD, ...). */
void metrics_throttled(int op);
/* op failed for good with a retryable error: the attempts, time or shared budget spent. */
void metrics_gave_up(int op);
/* One whole operation of op took us microseconds, every attempt and wait included. */
void metrics_latency(int op, long long us);
/* A file-system operation answered the application with errno err (positive). */
void metrics_fs_error(int fs_op, int err);
/* The current credentials expire at t (0: never, e.g. static keys). */
void metrics_creds_expiry(time_t t);
/* A credential refresh worked / failed. */
void metrics_creds_refreshed(void);
void metrics_creds_refresh_failed(void);

/*
 * Values kept by other modules, appended at scrape time after the registry's
 * families (with metrics_write_head/metrics_write_value). 0 or -errno.
 */
typedef int (*metrics_extra_fn)(struct buf *out, void *arg);

/* The whole exposition: the registry, then extra (may be NULL). 0 or -errno. */
int metrics_render(struct buf *out, metrics_extra_fn extra, void *arg);

/* Zero every family of the registry (tests only: not atomic as a whole). */
void metrics_reset(void);

#endif
