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
