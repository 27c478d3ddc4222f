#include "core/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_ONCE_SLOTS 4096

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
 * One JSON object: time (UTC, milliseconds), level, tag and the message with
 * '"', '\\' and control bytes escaped. Other bytes pass through, so UTF-8 key
 * names stay readable. Truncated (never split inside an escape) at cap.
 */
static size_t json_line(char *out, size_t cap, int level, const char *msg)
{
	struct timespec ts;
	struct tm tm;
	size_t n;
	int w;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	w = snprintf(out, cap, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\","
		     "\"level\":\"%s\",\"tag\":\"%s\",\"msg\":\"", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000000, level_name(level), log_tag);
	if (w < 0 || (size_t)w >= cap)
		return 0;
	n = (size_t)w;
	for (; *msg && n + 8 < cap; msg++) {
		unsigned char c = (unsigned char)*msg;

		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c == '\n') {
			if (msg[1] == '\0')
				break;
			out[n++] = '\\';
			out[n++] = 'n';
		} else if (c < 0x20 || c == 0x7f) {
			n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
		} else {
			out[n++] = (char)c;
		}
	}
	out[n++] = '"';
	out[n++] = '}';
	out[n++] = '\n';
	return n;
}

void log_vmsg(int level, const char *fmt, va_list ap)
{
	char line[2048];
	int n;

	if (!log_enabled(level))
		return;
	if (log_syslog) {
		vsyslog(level, fmt, ap);
		return;
	}
	if (log_format == LOG_FORMAT_JSON) {
		char msg[2048], js[4096];
		size_t len;

		vsnprintf(msg, sizeof(msg), fmt, ap);
		len = json_line(js, sizeof(js), level, msg);
		if (len && write(STDERR_FILENO, js, len) < 0)
			return;
		return;
	}
	n = snprintf(line, sizeof(line), "%s: %s: ", log_tag, level_name(level));
	if (n < 0)
		return;
	if ((size_t)n < sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	while (n > 0 && line[n - 1] == '\n')
		n--;
	line[n++] = '\n';
	/* One write per line so that lines from threads never interleave. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
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

void log_once_key(int level, const char *key, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level) || !once_record(fnv1a(key)))
		return;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}
