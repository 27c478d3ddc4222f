#include "core/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/redact.h"

#define LOG_ONCE_SLOTS 4096
#define LOG_MSG_MAX 2048	/* a formatted message, before escaping */
#define LOG_LINE_MAX 4096	/* an escaped line: longer ones are cut */
#define LOG_FIELDS_MAX 2048	/* a JSON line's fields, escaped */
#define LOG_KEY_MAX 1280	/* ... of which the key, escaped */
#define LOG_FIELD_MAX 1024	/* one field's value, before escaping */

static int log_level = LOG_INFO;
static int log_syslog;
static enum log_format log_format = LOG_FORMAT_TEXT;
static const char *log_tag = "irsafs";

/* Hashes of texts already logged by log_once; open addressing, never shrinks. */
static struct {
	pthread_mutex_t lock;
	unsigned long long seen[LOG_ONCE_SLOTS];
	unsigned used;
} once = { .lock = PTHREAD_MUTEX_INITIALIZER };

void log_set_level(int level)
{
	log_level = level;
}

int log_get_level(void)
{
	return log_level;
}

void log_use_syslog(void)
{
	openlog("irsafs", LOG_PID, LOG_DAEMON);
	log_syslog = 1;
}

void log_set_format(enum log_format f)
{
	log_format = f;
}

int log_level_parse(const char *name)
{
	static const struct {
		const char *name;
		int level;
	} levels[] = {
		{ "error", LOG_ERR }, { "warning", LOG_WARNING }, { "notice", LOG_NOTICE },
		{ "info", LOG_INFO }, { "debug", LOG_DEBUG },
	};
	size_t i;

	for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (strcmp(name, levels[i].name) == 0)
			return levels[i].level;
	return -1;
}

void log_set_tag(const char *tag)
{
	log_tag = tag;
}

int log_enabled(int level)
{
	return level <= log_level;
}

static const char *level_name(int level)
{
	switch (level) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
		return "fatal";
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
		return "notice";
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

/*
 * Length of the well-formed UTF-8 sequence at s (1 to 4), or 0 when s does
 * not start one (a stray continuation byte, an overlong form, a surrogate,
 * past U+10FFFF, or cut short by the NUL). Never reads past the NUL.
 */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
			return 0;
		return 4;
	}
	return 0;
}

size_t log_escape(char *out, size_t cap, const char *msg, int json)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)msg;
	size_t n = 0, k, w;
	char e[8];

	if (cap == 0)
		return 0;
	while (*s) {
		unsigned char c = *s;

		k = utf8_seq(s);
		w = 0;
		if (k == 0) {
			/* Not UTF-8: the byte's value, as text (JSON cannot carry raw bytes). */
			if (json)
				e[w++] = '\\';
			e[w++] = '\\';
			e[w++] = 'x';
			e[w++] = hex[c >> 4];
			e[w++] = hex[c & 15];
			k = 1;
		} else if (c == '\n' || c == '\r' || c == '\t') {
			e[w++] = '\\';
			e[w++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
		} else if (json && (c == '"' || c == '\\')) {
			e[w++] = '\\';
			e[w++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(e, json ? "\\u00" : "\\x", json ? 4 : 2);
			w = json ? 4 : 2;
			e[w++] = hex[c >> 4];
			e[w++] = hex[c & 15];
		} else if (k == 2 && c == 0xc2 && s[1] < 0xa0) {
			/* C1 controls (U+0080..U+009F): some terminals obey them too. */
			memcpy(e, "\\u00", 4);
			w = 4;
			e[w++] = hex[s[1] >> 4];
			e[w++] = hex[s[1] & 15];
		} else {
			memcpy(e, s, k);
			w = k;
		}
		/* Whole escapes and whole characters only: a cut line stays valid. */
		if (n + w >= cap)
			break;
		memcpy(out + n, e, w);
		n += w;
		s += k;
	}
	out[n] = '\0';
	return n;
}

/*
 * The message as it may be shown: a JWT in it (a web identity or Pod
 * Identity token a server echoed) redacted, trailing newlines dropped.
 * Escaping comes after, in log_escape.
 */
static void prepare(char *msg)
{
	size_t n;

	redact_jwt(msg);
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
}

/*
 * ,"name":"value" with value cut to max bytes, JWT-redacted and escaped,
 * written only when set (not NULL; not "" unless empty_ok) and when it fits
 * cap. Returns the length written.
 */
static size_t json_str(char *out, size_t cap, const char *name, const char *val, size_t max,
		       int empty_ok)
{
	char v[LOG_FIELD_MAX + 1];
	size_t n;
	int w;

	if (!val || (!*val && !empty_ok))
		return 0;
	snprintf(v, max < sizeof(v) ? max + 1 : sizeof(v), "%s", val);
	redact_jwt(v);
	w = snprintf(out, cap, ",\"%s\":\"", name);
	if (w < 0 || (size_t)w + 2 >= cap)
		return 0;
	n = (size_t)w;
	n += log_escape(out + n, cap - n - 1, v, 1);
	out[n++] = '"';
	return n;
}

/*
 * The fields of f as JSON members, each bounded (the message keeps at least
 * LOG_LINE_MAX - LOG_FIELDS_MAX bytes). Returns the length written.
 */
static size_t json_fields(char *out, size_t cap, const struct log_fields *f)
{
	const char *name = f->err ? err_errno_name(f->err) : NULL;
	char num[16];
	size_t n = 0;
	int w;

	if (cap > LOG_FIELDS_MAX)
		cap = LOG_FIELDS_MAX;
	n += json_str(out + n, cap - n, "op", f->op, 32, 0);
	n += json_str(out + n, cap - n, "bucket", f->bucket, 64, 0);
	n += json_str(out + n, cap - n < LOG_KEY_MAX ? cap - n : LOG_KEY_MAX, "key", f->key, 1024, 1);
	if (f->status > 0 && cap - n > 24) {
		w = snprintf(out + n, cap - n, ",\"status\":%d", f->status);
		n += w > 0 ? (size_t)w : 0;
	}
	n += json_str(out + n, cap - n, "code", f->code, 64, 0);
	if (f->err > 0) {
		if (!name) {
			snprintf(num, sizeof(num), "%d", f->err);
			name = num;
		}
		n += json_str(out + n, cap - n, "errno", name, 15, 0);
	}
	n += json_str(out + n, cap - n, "request_id", f->request_id, 96, 0);
	n += json_str(out + n, cap - n, "id2", f->id2, 128, 0);
	if (f->latency_us > 0 && cap - n > 40) {
		w = snprintf(out + n, cap - n, ",\"latency_ms\":%lld.%03lld", f->latency_us / 1000,
			     f->latency_us % 1000);
		n += w > 0 ? (size_t)w : 0;
	}
	return n;
}

/*
 * One JSON object: time (UTC, milliseconds), level, tag, the fields of f
 * (when not NULL) and the message, escaped by log_escape. Returns the length,
 * newline included.
 */
static size_t json_line(char *out, size_t cap, int level, const struct log_fields *f,
			const char *msg)
{
	struct timespec ts;
	struct tm tm;
	size_t n;
	int w;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	w = snprintf(out, cap, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\","
		     "\"level\":\"%s\",\"tag\":\"%s\"", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000000, level_name(level), log_tag);
	if (w < 0 || (size_t)w + 16 >= cap)
		return 0;
	n = (size_t)w;
	if (f)
		n += json_fields(out + n, cap - n - 16, f);
	memcpy(out + n, ",\"msg\":\"", 8);
	n += 8;
	n += log_escape(out + n, cap - n - 3, msg, 1);
	out[n++] = '"';
	out[n++] = '}';
	out[n++] = '\n';
	return n;
}

/*
 * Every line is built here, whatever the destination: the values callers
 * format in (key names, ARNs, a server's message) may hold anything, and no
 * byte of them may end a line, start a forged one or reach a terminal as a
 * control sequence. Fields (f, may be NULL) appear in JSON lines only.
 */
__attribute__((format(printf, 3, 0))) static void emit(int level, const struct log_fields *f,
						      const char *fmt, va_list ap)
{
	char msg[LOG_MSG_MAX], line[LOG_LINE_MAX];
	size_t n;
	int w;

	if (!log_enabled(level))
		return;
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		return;
	prepare(msg);
	if (log_syslog) {
		log_escape(line, sizeof(line), msg, 0);
		syslog(level, "%s", line);
		return;
	}
	if (log_format == LOG_FORMAT_JSON) {
		n = json_line(line, sizeof(line), level, f, msg);
	} else {
		w = snprintf(line, sizeof(line), "%s: %s: ", log_tag, level_name(level));
		if (w < 0 || (size_t)w + 2 >= sizeof(line))
			return;
		n = (size_t)w;
		n += log_escape(line + n, sizeof(line) - n - 1, msg, 0);
		line[n++] = '\n';
	}
	/* One write per line so that lines from threads never interleave. */
	if (n && write(STDERR_FILENO, line, n) < 0)
		return;
}

void log_vmsg(int level, const char *fmt, va_list ap)
{
	emit(level, NULL, fmt, ap);
}

void log_op(int level, const struct log_fields *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(level, f, fmt, ap);
	va_end(ap);
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

static unsigned long long fnv1a(const char *s)
{
	unsigned long long h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h ? h : 1;
}

/* Returns 1 if the hash was new (and records it), 0 if seen before. */
static int once_record(unsigned long long h)
{
	unsigned i, start = (unsigned)(h % LOG_ONCE_SLOTS);
	int fresh = 1;

	pthread_mutex_lock(&once.lock);
	for (i = 0; i < LOG_ONCE_SLOTS; i++) {
		unsigned slot = (start + i) % LOG_ONCE_SLOTS;

		if (once.seen[slot] == h) {
			fresh = 0;
			break;
		}
		if (once.seen[slot] == 0) {
			if (once.used < LOG_ONCE_SLOTS * 3 / 4) {
				once.seen[slot] = h;
				once.used++;
			}
			break;
		}
	}
	pthread_mutex_unlock(&once.lock);
	return fresh;
}

void log_once(int level, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (once_record(fnv1a(text)))
		log_msg(level, "%s", text);
}

void log_op_once(int level, const struct log_fields *f, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (once_record(fnv1a(text)))
		log_op(level, f, "%s", text);
}

void log_once_key(int level, const char *key, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level) || !once_record(fnv1a(key)))
		return;
	va_start(ap, fmt);
	emit(level, NULL, fmt, ap);
	va_end(ap);
}

void log_op_once_key(int level, const char *key, const struct log_fields *f, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level) || !once_record(fnv1a(key)))
		return;
	va_start(ap, fmt);
	emit(level, f, fmt, ap);
	va_end(ap);
}
