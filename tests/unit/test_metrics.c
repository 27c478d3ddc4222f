/*
 * core/metrics: families and their exact text, histogram buckets, the fixed
 * label sets of irsafs's registry (a status or errno outside them cannot add
 * a series), a strict reading of the whole exposition, and updates from many
 * threads while another renders (run under ThreadSanitizer in CI).
 */
#include "core/metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "harness.h"

static const char *const colors[] = { "red", "blue" };
static const struct metrics_dim color_dim = { "color", colors, 2 };
static const char *const sizes[] = { "s", "m", "l" };
static const struct metrics_dim size_dim = { "size", sizes, 3 };
static const unsigned long long ms_bounds[] = { 1000, 10000, 100000 };

/* The rendered text of f, in a static buffer. */
static const char *render(const struct metrics_family *f)
{
	static char out[8192];
	struct buf b;

	buf_init(&b, 1 << 20);
	out[0] = '\0';
	if (metrics_render_family(&b, f) == 0 && b.data)
		snprintf(out, sizeof(out), "%s", b.data);
	buf_cleanup(&b);
	return out;
}

TEST(counter_without_labels_always_shows)
{
	unsigned long long cells[1] = { 0 };
	struct metrics_family f = { "t_total", "Things.", METRICS_COUNTER, { NULL, NULL },
				    NULL, 0, 0, cells };

	CHECK_INT(metrics_cells(&f), 1);
	CHECK_STR(render(&f), "# HELP t_total Things.\n# TYPE t_total counter\nt_total 0\n");
	metrics_add(&f, 0, 0, 3);
	metrics_add(&f, 0, 0, 2);
	CHECK_STR(render(&f), "# HELP t_total Things.\n# TYPE t_total counter\nt_total 5\n");
	CHECK_INT(metrics_value(&f, 0, 0), 5);
}

TEST(labelled_counter_shows_the_series_that_moved)
{
	unsigned long long cells[6] = { 0 };
	struct metrics_family f = { "c_total", "By color and size.", METRICS_COUNTER,
				    { &color_dim, &size_dim }, NULL, 0, 0, cells };

	CHECK_INT(metrics_cells(&f), 6);
	/* Nothing counted yet: HELP and TYPE only. */
	CHECK_STR(render(&f), "# HELP c_total By color and size.\n# TYPE c_total counter\n");
	metrics_add(&f, 1, 2, 7);
	metrics_add(&f, 0, 0, 1);
	/* Out of range: ignored, never another series or a write past the cells. */
	metrics_add(&f, 2, 0, 1);
	metrics_add(&f, 0, 3, 1);
	CHECK_STR(render(&f), "# HELP c_total By color and size.\n# TYPE c_total counter\n"
			      "c_total{color=\"red\",size=\"s\"} 1\n"
			      "c_total{color=\"blue\",size=\"l\"} 7\n");
	CHECK_INT(metrics_value(&f, 1, 2), 7);
	CHECK_INT(metrics_value(&f, 5, 5), 0);
}

TEST(gauge_is_set_not_added)
{
	unsigned long long cells[2] = { 0 };
	struct metrics_family f = { "g", "A gauge.", METRICS_GAUGE, { &color_dim, NULL }, NULL, 0,
				    0, cells };

	metrics_set(&f, 0, 0, 10);
	metrics_set(&f, 0, 0, -4);
	metrics_set(&f, 1, 0, 1700000000);
	CHECK_STR(render(&f), "# HELP g A gauge.\n# TYPE g gauge\ng{color=\"red\"} -4\n"
			      "g{color=\"blue\"} 1700000000\n");
}

TEST(histogram_buckets_are_cumulative_and_end_with_count)
{
	unsigned long long cells[2 * 5] = { 0 };
	struct metrics_family f = { "lat_seconds", "Latency.", METRICS_HISTOGRAM,
				    { &color_dim, NULL }, ms_bounds, 3, 1e6, cells };

	CHECK_INT(metrics_cells(&f), 10);
	/* A bound is inclusive (le): 1000 goes in the first bucket. */
	metrics_observe(&f, 1, 0, 500);
	metrics_observe(&f, 1, 0, 1000);
	metrics_observe(&f, 1, 0, 1001);
	metrics_observe(&f, 1, 0, 250000);
	CHECK_STR(render(&f), "# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n"
			      "lat_seconds_bucket{color=\"blue\",le=\"0.001\"} 2\n"
			      "lat_seconds_bucket{color=\"blue\",le=\"0.01\"} 3\n"
			      "lat_seconds_bucket{color=\"blue\",le=\"0.1\"} 3\n"
			      "lat_seconds_bucket{color=\"blue\",le=\"+Inf\"} 4\n"
			      "lat_seconds_sum{color=\"blue\"} 0.252501\n"
			      "lat_seconds_count{color=\"blue\"} 4\n");
}

TEST(histogram_without_labels)
{
	unsigned long long cells[5] = { 0 };
	struct metrics_family f = { "h", "H.", METRICS_HISTOGRAM, { NULL, NULL }, ms_bounds, 3,
				    0, cells };

	CHECK_STR(render(&f), "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1000\"} 0\n"
			      "h_bucket{le=\"10000\"} 0\nh_bucket{le=\"100000\"} 0\n"
			      "h_bucket{le=\"+Inf\"} 0\nh_sum 0.000000\nh_count 0\n");
}

TEST(write_helpers)
{
	struct buf b;

	buf_init(&b, 4096);
	CHECK_INT(metrics_write_head(&b, "x_total", "counter", "X."), 0);
	CHECK_INT(metrics_write_value(&b, "x_total", "cache=\"disk\"", 3), 0);
	CHECK_INT(metrics_write_value(&b, "x_total", NULL, -1), 0);
	CHECK_STR(b.data, "# HELP x_total X.\n# TYPE x_total counter\nx_total{cache=\"disk\"} 3\n"
			  "x_total -1\n");
	buf_cleanup(&b);
}

TEST(a_full_buffer_fails_the_render)
{
	unsigned long long cells[1] = { 0 };
	struct metrics_family f = { "t_total", "Things.", METRICS_COUNTER, { NULL, NULL },
				    NULL, 0, 0, cells };
	struct buf b;

	buf_init(&b, 16);
	CHECK_INT(metrics_render_family(&b, &f), -EMSGSIZE);
	buf_cleanup(&b);
}

/* The whole exposition, in a malloc'd string (free it). */
static char *render_all(int (*extra)(struct buf *, void *), void *arg)
{
	struct buf b;

	buf_init(&b, 1 << 20);
	if (metrics_render(&b, extra, arg) != 0) {
		buf_cleanup(&b);
		return NULL;
	}
	return buf_steal(&b);
}

static int has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p = text;

	while ((p = strstr(p, line)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return 1;
		p += n;
	}
	return 0;
}

static int extra_lines(struct buf *out, void *arg)
{
	int rc = metrics_write_head(out, "irsafs_extra_total", "counter", "From elsewhere.");

	return rc ? rc : metrics_write_value(out, "irsafs_extra_total", NULL, *(long long *)arg);
}

/*
 * A strict reading: each line a # HELP or # TYPE of an irsafs_ name, or a
 * sample `name{labels} value` / `name value` of a family whose TYPE came
 * before. Returns the number of samples, or -line number of the first bad one.
 */
static int strict_parse(const char *text)
{
	char typed[64][96];
	int ntyped = 0, samples = 0, lineno = 0, k;
	const char *p = text;

	while (*p) {
		const char *end = strchr(p, '\n');
		char line[1024], name[96];
		size_t n;

		lineno++;
		if (!end)
			return -lineno; /* every line ends with a newline */
		n = (size_t)(end - p);
		if (n >= sizeof(line))
			return -lineno;
		memcpy(line, p, n);
		line[n] = '\0';
		p = end + 1;
		if (!strncmp(line, "# HELP irsafs_", 14))
			continue;
		if (!strncmp(line, "# TYPE irsafs_", 14)) {
			char type[16];

			if (sscanf(line, "# TYPE %95s %15s", name, type) != 2 || ntyped == 64 ||
			    (strcmp(type, "counter") && strcmp(type, "gauge") &&
			     strcmp(type, "histogram")))
				return -lineno;
			snprintf(typed[ntyped++], sizeof(typed[0]), "%s", name);
			continue;
		}
		if (strncmp(line, "irsafs_", 7))
			return -lineno;
		n = strcspn(line, "{ ");
		if (n >= sizeof(name))
			return -lineno;
		memcpy(name, line, n);
		name[n] = '\0';
		if (line[n] == '{') {
			char *close = strchr(line + n, '}');

			if (!close || close[1] != ' ')
				return -lineno;
			n = (size_t)(close + 1 - line);
		}
		if (line[n] != ' ' || !line[n + 1] || strchr(line + n + 1, ' '))
			return -lineno;
		{
			char *vend;

			strtod(line + n + 1, &vend);
			if (*vend)
				return -lineno;
		}
		for (k = 0; k < ntyped; k++) {
			size_t t = strlen(typed[k]);

			if (!strncmp(name, typed[k], t) &&
			    (!name[t] || !strcmp(name + t, "_bucket") || !strcmp(name + t, "_sum") ||
			     !strcmp(name + t, "_count")))
				break;
		}
		if (k == ntyped)
			return -lineno;
		samples++;
	}
	return samples;
}

TEST(registry_labels_are_fixed)
{
	long long extra = 42;
	char *text;

	metrics_reset();
	metrics_request(METRICS_OP_GET, 200);
	metrics_request(METRICS_OP_GET, 200);
	metrics_request(METRICS_OP_GET, 403);
	metrics_request(METRICS_OP_GET, 418);	/* not in the list: its class */
	metrics_request(METRICS_OP_HEAD, 0);	/* no answer */
	metrics_request(METRICS_OP_LIST, 999);	/* not HTTP at all */
	metrics_request(METRICS_OP_STS, 200);
	metrics_request(METRICS_OP_NONE, 200);	/* not counted */
	metrics_request(17, 200);
	metrics_retry(METRICS_OP_GET);
	metrics_throttled(METRICS_OP_GET);
	metrics_gave_up(METRICS_OP_LIST);
	metrics_latency(METRICS_OP_GET, 3000);
	metrics_fs_error(METRICS_FS_READ, EACCES);
	metrics_fs_error(METRICS_FS_LOOKUP, ENOENT);
	metrics_fs_error(METRICS_FS_LOOKUP, EPIPE);	/* not in the list: other */
	metrics_fs_error(METRICS_FS_LOOKUP, 0);		/* not an error */
	metrics_fs_error(METRICS_FS_COUNT, EIO);
	metrics_creds_expiry(1800000000);
	metrics_creds_refreshed();
	metrics_creds_refresh_failed();
	text = render_all(extra_lines, &extra);
	CHECK(text != NULL);
	if (!text)
		return;
	CHECK(has_line(text, "irsafs_requests_total{op=\"GET\",status=\"200\"} 2"));
	CHECK(has_line(text, "irsafs_requests_total{op=\"GET\",status=\"403\"} 1"));
	CHECK(has_line(text, "irsafs_requests_total{op=\"GET\",status=\"4xx\"} 1"));
	CHECK(has_line(text, "irsafs_requests_total{op=\"HEAD\",status=\"none\"} 1"));
	CHECK(has_line(text, "irsafs_requests_total{op=\"LIST\",status=\"other\"} 1"));
	CHECK(has_line(text, "irsafs_requests_total{op=\"STS\",status=\"200\"} 1"));
	CHECK(!strstr(text, "status=\"418\""));
	CHECK(has_line(text, "irsafs_retries_total{op=\"GET\"} 1"));
	CHECK(has_line(text, "irsafs_throttled_total{op=\"GET\"} 1"));
	CHECK(has_line(text, "irsafs_retries_exhausted_total{op=\"LIST\"} 1"));
	CHECK(has_line(text, "irsafs_operation_duration_seconds_bucket{op=\"GET\",le=\"0.0025\"} 0"));
	CHECK(has_line(text, "irsafs_operation_duration_seconds_bucket{op=\"GET\",le=\"0.005\"} 1"));
	CHECK(has_line(text, "irsafs_operation_duration_seconds_count{op=\"GET\"} 1"));
	CHECK(has_line(text, "irsafs_operation_duration_seconds_sum{op=\"GET\"} 0.003000"));
	CHECK(!strstr(text, "irsafs_operation_duration_seconds_count{op=\"HEAD\"}"));
	CHECK(has_line(text, "irsafs_fs_errors_total{op=\"lookup\",errno=\"ENOENT\"} 1"));
	CHECK(has_line(text, "irsafs_fs_errors_total{op=\"lookup\",errno=\"other\"} 1"));
	CHECK(has_line(text, "irsafs_fs_errors_total{op=\"read\",errno=\"EACCES\"} 1"));
	CHECK(has_line(text, "irsafs_credentials_expiry_timestamp_seconds 1800000000"));
	CHECK(has_line(text, "irsafs_credential_refreshes_total 1"));
	CHECK(has_line(text, "irsafs_credential_refresh_failures_total 1"));
	CHECK(strstr(text, "irsafs_build_info{version=\"") != NULL);
	CHECK(has_line(text, "irsafs_extra_total 42"));
	CHECK(strict_parse(text) > 0);
	free(text);
	CHECK_STR(metrics_op_name(METRICS_OP_LIST), "LIST");
	CHECK(metrics_op_name(METRICS_OP_NONE) == NULL);
	metrics_reset();
	text = render_all(NULL, NULL);
	CHECK(text && !strstr(text, "irsafs_requests_total{"));
	CHECK(text && has_line(text, "irsafs_credential_refreshes_total 0"));
	free(text);
}

TEST(the_strict_reader_rejects_what_it_should)
{
	CHECK(strict_parse("# TYPE irsafs_a counter\nirsafs_a 1\n") == 1);
	CHECK(strict_parse("irsafs_a 1\n") < 0);		/* no TYPE before */
	CHECK(strict_parse("# TYPE irsafs_a counter\nirsafs_a{x=\"1\"} 1\n") == 1);
	CHECK(strict_parse("# TYPE irsafs_a counter\nirsafs_a{x=\"1\" 1\n") < 0);
	CHECK(strict_parse("# TYPE irsafs_a counter\nirsafs_a 1 2\n") < 0);
	CHECK(strict_parse("# TYPE irsafs_a counter\nirsafs_a one\n") < 0);
	CHECK(strict_parse("# TYPE other counter\n") < 0);
	CHECK(strict_parse("# TYPE irsafs_a counter\nirsafs_a 1") < 0);	/* no newline */
}

#define THREADS 8
#define ROUNDS 20000

static unsigned long long conc_cells[2];
static unsigned long long conc_hist[2 * 5];
static struct metrics_family conc = { "conc_total", "C.", METRICS_COUNTER,
				      { &color_dim, NULL }, NULL, 0, 0, conc_cells };
static struct metrics_family conc_h = { "conc_seconds", "H.", METRICS_HISTOGRAM,
					{ &color_dim, NULL }, ms_bounds, 3, 1e6, conc_hist };
static int conc_stop;
static int conc_bad;

static void *updater(void *arg)
{
	unsigned long long v = (unsigned long long)(size_t)arg;
	int i;

	for (i = 0; i < ROUNDS; i++) {
		metrics_add(&conc, (unsigned)(i & 1), 0, 1);
		metrics_observe(&conc_h, 0, 0, (v * 7919 + (unsigned long long)i) % 200000);
		metrics_request(METRICS_OP_GET, i % 3 ? 200 : 503);
		metrics_latency(METRICS_OP_GET, i);
		metrics_fs_error(METRICS_FS_READ, EIO);
	}
	return NULL;
}

/* Render while others update: every histogram must stay monotonic, +Inf = count. */
static void *renderer(void *arg)
{
	while (!__atomic_load_n(&conc_stop, __ATOMIC_ACQUIRE)) {
		const char *text = render(&conc_h);
		unsigned long long prev = 0, v, inf = 0, count = 0;
		const char *p = text;

		while ((p = strstr(p, "conc_seconds_bucket{")) != NULL) {
			const char *sp = strchr(p, ' ');

			v = strtoull(sp + 1, NULL, 10);
			if (v < prev)
				__atomic_store_n(&conc_bad, 1, __ATOMIC_RELAXED);
			prev = v;
			if (strstr(p, "le=\"+Inf\"") && strstr(p, "le=\"+Inf\"") < sp)
				inf = v;
			p = sp;
		}
		p = strstr(text, "conc_seconds_count{");
		if (p)
			count = strtoull(strchr(p, ' ') + 1, NULL, 10);
		if (inf != count)
			__atomic_store_n(&conc_bad, 1, __ATOMIC_RELAXED);
	}
	return arg;
}

TEST(concurrent_updates_lose_nothing)
{
	pthread_t t[THREADS], r;
	char *text;
	size_t i;

	metrics_reset();
	pthread_create(&r, NULL, renderer, NULL);
	for (i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, updater, (void *)i);
	for (i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	__atomic_store_n(&conc_stop, 1, __ATOMIC_RELEASE);
	pthread_join(r, NULL);
	CHECK_INT(conc_bad, 0);
	CHECK_INT(metrics_value(&conc, 0, 0), THREADS * ROUNDS / 2);
	CHECK_INT(metrics_value(&conc, 1, 0), THREADS * ROUNDS / 2);
	text = render_all(NULL, NULL);
	CHECK(text != NULL);
	if (text) {
		char want[128];

		snprintf(want, sizeof(want), "irsafs_fs_errors_total{op=\"read\",errno=\"EIO\"} %d",
			 THREADS * ROUNDS);
		CHECK(has_line(text, want));
		snprintf(want, sizeof(want), "irsafs_operation_duration_seconds_count{op=\"GET\"} %d",
			 THREADS * ROUNDS);
		CHECK(has_line(text, want));
		/* i % 3 == 0 for 6667 of every 20000. */
		snprintf(want, sizeof(want), "irsafs_requests_total{op=\"GET\",status=\"503\"} %d",
			 THREADS * 6667);
		CHECK(has_line(text, want));
		CHECK(strict_parse(text) > 0);
	}
	free(text);
	{
		char want[64];

		snprintf(want, sizeof(want), "conc_seconds_count{color=\"red\"} %d", THREADS * ROUNDS);
		CHECK(strstr(render(&conc_h), want) != NULL);
	}
}

int main(void)
{
	RUN(counter_without_labels_always_shows);
	RUN(labelled_counter_shows_the_series_that_moved);
	RUN(gauge_is_set_not_added);
	RUN(histogram_buckets_are_cumulative_and_end_with_count);
	RUN(histogram_without_labels);
	RUN(write_helpers);
	RUN(a_full_buffer_fails_the_render);
	RUN(registry_labels_are_fixed);
	RUN(the_strict_reader_rejects_what_it_should);
	RUN(concurrent_updates_lose_nothing);
	return harness_done();
}
