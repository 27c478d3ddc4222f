/*
 * metrics: fixed-label families, lock-free updates, the text exposition
 * format, and irsafs's own registry.
 *
 * Cell layout: a counter or gauge series (i, j) is cells[i * n1 + j], where
 * n1 is the number of values of dim[1] (1 when unused). A histogram series
 * takes nbounds + 2 cells at the same index times that stride: one per
 * bucket (the last is +Inf), then the sum. Cells are only ever touched with
 * __atomic builtins; a render reads each once, so a series may be a few
 * observations behind another, never torn.
 */
#include "core/metrics.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "core/buf.h"

static unsigned dim_n(const struct metrics_dim *d)
{
	return d ? d->n : 1;
}

/* Cells per series. */
static size_t stride(const struct metrics_family *f)
{
	return f->type == METRICS_HISTOGRAM ? f->nbounds + 2 : 1;
}

static size_t series(const struct metrics_family *f)
{
	return (size_t)dim_n(f->dim[0]) * dim_n(f->dim[1]);
}

size_t metrics_cells(const struct metrics_family *f)
{
	return series(f) * stride(f);
}

/* The first cell of series (i, j), or NULL when out of range. */
static unsigned long long *cell(const struct metrics_family *f, unsigned i, unsigned j)
{
	if (i >= dim_n(f->dim[0]) || j >= dim_n(f->dim[1]))
		return NULL;
	return f->cells + ((size_t)i * dim_n(f->dim[1]) + j) * stride(f);
}

void metrics_add(struct metrics_family *f, unsigned i, unsigned j, unsigned long long n)
{
	unsigned long long *c = cell(f, i, j);

	if (c)
		__atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

void metrics_set(struct metrics_family *f, unsigned i, unsigned j, long long v)
{
	unsigned long long *c = cell(f, i, j);

	if (c)
		__atomic_store_n(c, (unsigned long long)v, __ATOMIC_RELAXED);
}

void metrics_observe(struct metrics_family *f, unsigned i, unsigned j, unsigned long long v)
{
	unsigned long long *c = cell(f, i, j);
	unsigned b = 0;

	if (!c)
		return;
	/* A dozen or so bounds: a linear scan beats a search. */
	while (b < f->nbounds && v > f->bounds[b])
		b++;
	__atomic_add_fetch(&c[b], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&c[f->nbounds + 1], v, __ATOMIC_RELAXED);
}

long long metrics_value(const struct metrics_family *f, unsigned i, unsigned j)
{
	const unsigned long long *c = cell(f, i, j);

	return c ? (long long)__atomic_load_n(c, __ATOMIC_RELAXED) : 0;
}

static const char *type_name(enum metrics_type t)
{
	return t == METRICS_COUNTER ? "counter" : t == METRICS_GAUGE ? "gauge" : "histogram";
}

int metrics_write_head(struct buf *out, const char *name, const char *type, const char *help)
{
	return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int metrics_write_value(struct buf *out, const char *name, const char *labels, long long v)
{
	if (labels && *labels)
		return buf_printf(out, "%s{%s} %lld\n", name, labels, v);
	return buf_printf(out, "%s %lld\n", name, v);
}

/* `a="x",b="y"` for series (i, j) into out ("" without labels). */
static void label_text(const struct metrics_family *f, unsigned i, unsigned j, char *out,
		       size_t len)
{
	out[0] = '\0';
	if (f->dim[0] && f->dim[1])
		snprintf(out, len, "%s=\"%s\",%s=\"%s\"", f->dim[0]->name, f->dim[0]->values[i],
			 f->dim[1]->name, f->dim[1]->values[j]);
	else if (f->dim[0])
		snprintf(out, len, "%s=\"%s\"", f->dim[0]->name, f->dim[0]->values[i]);
}

static int render_histogram(struct buf *out, const struct metrics_family *f,
			    const unsigned long long *c, const char *labels)
{
	double scale = f->scale > 0 ? f->scale : 1;
	const char *sep = labels[0] ? "," : "";
	unsigned long long cum = 0, sum;
	unsigned b;
	int rc = 0;

	for (b = 0; b <= f->nbounds && !rc; b++) {
		cum += __atomic_load_n(&c[b], __ATOMIC_RELAXED);
		if (b < f->nbounds)
			rc = buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", f->name, labels, sep,
					(double)f->bounds[b] / scale, cum);
		else
			rc = buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, labels,
					sep, cum);
	}
	sum = __atomic_load_n(&c[f->nbounds + 1], __ATOMIC_RELAXED);
	if (!rc)
		rc = buf_printf(out, "%s_sum%s%s%s %.6f\n", f->name, labels[0] ? "{" : "", labels,
				labels[0] ? "}" : "", (double)sum / scale);
	/* The buckets' total, not a counter of its own: +Inf and _count always agree. */
	if (!rc)
		rc = buf_printf(out, "%s_count%s%s%s %llu\n", f->name, labels[0] ? "{" : "", labels,
				labels[0] ? "}" : "", cum);
	return rc;
}

static int render_value(struct buf *out, const struct metrics_family *f,
			const unsigned long long *c, const char *labels)
{
	unsigned long long v = __atomic_load_n(c, __ATOMIC_RELAXED);

	if (f->type == METRICS_GAUGE)
		return metrics_write_value(out, f->name, labels, (long long)v);
	return buf_printf(out, "%s%s%s%s %llu\n", f->name, labels[0] ? "{" : "", labels,
			  labels[0] ? "}" : "", v);
}

/* Has series c counted anything (a gauge: is it not 0)? */
static int moved(const struct metrics_family *f, const unsigned long long *c)
{
	size_t k, n = f->type == METRICS_HISTOGRAM ? f->nbounds + 1 : 1;

	for (k = 0; k < n; k++)
		if (__atomic_load_n(&c[k], __ATOMIC_RELAXED))
			return 1;
	return 0;
}

int metrics_render_family(struct buf *out, const struct metrics_family *f)
{
	char labels[256];
	unsigned i, j;
	int rc;

	rc = metrics_write_head(out, f->name, type_name(f->type), f->help);
	for (i = 0; i < dim_n(f->dim[0]) && !rc; i++) {
		for (j = 0; j < dim_n(f->dim[1]) && !rc; j++) {
			const unsigned long long *c = cell(f, i, j);

			if (f->dim[0] && !moved(f, c))
				continue;
			label_text(f, i, j, labels, sizeof(labels));
			if (f->type == METRICS_HISTOGRAM)
				rc = render_histogram(out, f, c, labels);
			else
				rc = render_value(out, f, c, labels);
		}
	}
	return rc;
}

/* ---- the registry ---- */

static const char *const op_values[] = { "HEAD", "GET", "LIST", "STS" };
static const struct metrics_dim op_dim = { "op", op_values, METRICS_OP_COUNT };

/*
 * Statuses S3 and STS give that mean something different each; any other is
 * counted under its class, "none" is no answer at all.
 */
static const int status_codes[] = { 200, 206, 301, 304, 307, 400, 403, 404, 412, 416, 429,
				    500, 503 };
#define NSTATUS_CODES (sizeof(status_codes) / sizeof(status_codes[0]))
static const char *const status_values[] = { "200", "206", "301", "304", "307", "400", "403",
					     "404", "412", "416", "429", "500", "503", "1xx",
					     "2xx", "3xx", "4xx", "5xx", "none", "other" };
#define STATUS_NONE (NSTATUS_CODES + 5)
#define STATUS_OTHER (NSTATUS_CODES + 6)
static const struct metrics_dim status_dim = {
	"status", status_values, sizeof(status_values) / sizeof(status_values[0]),
};

static const char *const fs_op_values[] = { "lookup", "getattr", "open", "read", "opendir",
					    "readdir", "getxattr", "listxattr", "write" };
static const struct metrics_dim fs_op_dim = { "op", fs_op_values, METRICS_FS_COUNT };

/* The errnos irsafs answers with (core/err.h), and "other" for the rest. */
static const int errno_codes[] = { EACCES, ENOENT, EIO, ETIMEDOUT, ESTALE, EKEYEXPIRED,
				   EKEYREJECTED, EROFS, ENAMETOOLONG, ENOTDIR, EISDIR, ENOMEM,
				   EINVAL, ENODATA, ERANGE, EOPNOTSUPP };
#define NERRNO_CODES (sizeof(errno_codes) / sizeof(errno_codes[0]))
static const char *const errno_values[] = {
	"EACCES", "ENOENT", "EIO", "ETIMEDOUT", "ESTALE", "EKEYEXPIRED", "EKEYREJECTED",
	"EROFS", "ENAMETOOLONG", "ENOTDIR", "EISDIR", "ENOMEM", "EINVAL", "ENODATA", "ERANGE",
	"EOPNOTSUPP", "other",
};
static const struct metrics_dim errno_dim = {
	"errno", errno_values, sizeof(errno_values) / sizeof(errno_values[0]),
};

/* Latency buckets, in microseconds: 1 ms to a minute (an --operation-timeout may be longer). */
static const unsigned long long latency_bounds[] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 20000000, 60000000,
};
#define NLATENCY (sizeof(latency_bounds) / sizeof(latency_bounds[0]))

static unsigned long long requests_cells[METRICS_OP_COUNT * (NSTATUS_CODES + 7)];
static unsigned long long retries_cells[METRICS_OP_COUNT];
static unsigned long long throttled_cells[METRICS_OP_COUNT];
static unsigned long long gave_up_cells[METRICS_OP_COUNT];
static unsigned long long latency_cells[METRICS_OP_COUNT * (NLATENCY + 2)];
static unsigned long long fs_errors_cells[METRICS_FS_COUNT * (NERRNO_CODES + 1)];
static unsigned long long expiry_cells[1];
_Static_assert(sizeof(status_values) / sizeof(status_values[0]) == NSTATUS_CODES + 7,
	       "status labels: the codes, 5 classes, none, other");
_Static_assert(sizeof(errno_values) / sizeof(errno_values[0]) == NERRNO_CODES + 1,
	       "errno labels: the codes and other");
_Static_assert(sizeof(op_values) / sizeof(op_values[0]) == METRICS_OP_COUNT, "op labels");
_Static_assert(sizeof(fs_op_values) / sizeof(fs_op_values[0]) == METRICS_FS_COUNT,
	       "fs op labels");
static unsigned long long refreshes_cells[1];
static unsigned long long refresh_failures_cells[1];

static struct metrics_family requests = {
	"irsafs_requests_total",
	"HTTP requests sent to S3 and STS, every attempt, by operation and the answer's status "
	"(none: no answer)",
	METRICS_COUNTER, { &op_dim, &status_dim }, NULL, 0, 0, requests_cells,
};
static struct metrics_family retries = {
	"irsafs_retries_total", "Attempts sent again after a retryable failure, by operation",
	METRICS_COUNTER, { &op_dim, NULL }, NULL, 0, 0, retries_cells,
};
static struct metrics_family throttled = {
	"irsafs_throttled_total",
	"Answers that were throttling (503 SlowDown, 429, a bare 503 to a HEAD, ...), by operation",
	METRICS_COUNTER, { &op_dim, NULL }, NULL, 0, 0, throttled_cells,
};
static struct metrics_family gave_up = {
	"irsafs_retries_exhausted_total",
	"Operations that failed with a retryable error once their attempts, their time budget or "
	"the mount's shared retry budget were spent, by operation",
	METRICS_COUNTER, { &op_dim, NULL }, NULL, 0, 0, gave_up_cells,
};
static struct metrics_family latency = {
	"irsafs_operation_duration_seconds",
	"Time of one S3 or STS operation, every attempt, backoff and credentials wait included, "
	"by operation",
	METRICS_HISTOGRAM, { &op_dim, NULL }, latency_bounds, NLATENCY, 1e6, latency_cells,
};
static struct metrics_family fs_errors = {
	"irsafs_fs_errors_total",
	"File-system operations that answered the application with an error, by operation and "
	"errno (a missing name looked up counts as lookup ENOENT)",
	METRICS_COUNTER, { &fs_op_dim, &errno_dim }, NULL, 0, 0, fs_errors_cells,
};
static struct metrics_family expiry = {
	"irsafs_credentials_expiry_timestamp_seconds",
	"When the credentials in use expire, in Unix time (0: they do not, or none yet)",
	METRICS_GAUGE, { NULL, NULL }, NULL, 0, 0, expiry_cells,
};
static struct metrics_family refreshes = {
	"irsafs_credential_refreshes_total",
	"Credentials obtained from the credential source (STS, the container agent, ...)",
	METRICS_COUNTER, { NULL, NULL }, NULL, 0, 0, refreshes_cells,
};
static struct metrics_family refresh_failures = {
	"irsafs_credential_refresh_failures_total",
	"Credential refreshes that failed, including credentials that arrived expired and fresh "
	"ones the server rejected too",
	METRICS_COUNTER, { NULL, NULL }, NULL, 0, 0, refresh_failures_cells,
};

static struct metrics_family *const registry[] = {
	&requests, &retries, &throttled, &gave_up, &latency, &fs_errors,
	&expiry, &refreshes, &refresh_failures,
};
#define NREGISTRY (sizeof(registry) / sizeof(registry[0]))

const char *metrics_op_name(int op)
{
	return op >= 0 && op < METRICS_OP_COUNT ? op_values[op] : NULL;
}

long long metrics_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static unsigned status_index(int status)
{
	unsigned k;

	if (status == 0)
		return STATUS_NONE;
	for (k = 0; k < NSTATUS_CODES; k++)
		if (status_codes[k] == status)
			return k;
	if (status >= 100 && status < 600)
		return NSTATUS_CODES + (unsigned)(status / 100 - 1);
	return STATUS_OTHER;
}

static unsigned errno_index(int err)
{
	unsigned k;

	for (k = 0; k < NERRNO_CODES; k++)
		if (errno_codes[k] == err)
			return k;
	return NERRNO_CODES;
}

static int op_ok(int op)
{
	return op >= 0 && op < METRICS_OP_COUNT;
}

void metrics_request(int op, int status)
{
	if (op_ok(op))
		metrics_add(&requests, (unsigned)op, status_index(status), 1);
}

void metrics_retry(int op)
{
	if (op_ok(op))
		metrics_add(&retries, (unsigned)op, 0, 1);
}

void metrics_throttled(int op)
{
	if (op_ok(op))
		metrics_add(&throttled, (unsigned)op, 0, 1);
}

void metrics_gave_up(int op)
{
	if (op_ok(op))
		metrics_add(&gave_up, (unsigned)op, 0, 1);
}

void metrics_latency(int op, long long us)
{
	if (op_ok(op))
		metrics_observe(&latency, (unsigned)op, 0, us > 0 ? (unsigned long long)us : 0);
}

void metrics_fs_error(int fs_op, int err)
{
	if (fs_op >= 0 && fs_op < METRICS_FS_COUNT && err > 0)
		metrics_add(&fs_errors, (unsigned)fs_op, errno_index(err), 1);
}

void metrics_creds_expiry(time_t t)
{
	metrics_set(&expiry, 0, 0, (long long)t);
}

void metrics_creds_refreshed(void)
{
	metrics_add(&refreshes, 0, 0, 1);
}

void metrics_creds_refresh_failed(void)
{
	metrics_add(&refresh_failures, 0, 0, 1);
}

int metrics_render(struct buf *out, metrics_extra_fn extra, void *arg)
{
	size_t k;
	int rc = 0;

	for (k = 0; k < NREGISTRY && !rc; k++)
		rc = metrics_render_family(out, registry[k]);
	if (!rc)
		rc = metrics_write_head(out, "irsafs_build_info", "gauge",
					"Always 1; the version irsafs was built as");
	if (!rc)
		rc = metrics_write_value(out, "irsafs_build_info",
					 "version=\"" IRSAFS_VERSION "\"", 1);
	if (!rc && extra)
		rc = extra(out, arg);
	return rc;
}

void metrics_reset(void)
{
	size_t k, c;

	for (k = 0; k < NREGISTRY; k++)
		for (c = 0; c < metrics_cells(registry[k]); c++)
			__atomic_store_n(&registry[k]->cells[c], 0, __ATOMIC_RELAXED);
}
