/*
 * log: the process-wide log sink.
 *
 * One line per event, to stderr by default (container logs) or to syslog once
 * the daemon has detached. Levels are syslog's (LOG_ERR .. LOG_DEBUG). The sink
 * is the only process-global in irsafs; it is configured once in main before
 * any thread starts and is safe to call from every thread afterwards (each line
 * is written with a single write(2) so lines never interleave).
 *
 * Every line is one line: the sink escapes what callers format in, so a key
 * name, an ARN or a server's message cannot end a line, forge another or send
 * a terminal escape (log_escape says how). This holds for stderr, JSON and
 * syslog alike; no caller needs to escape anything itself.
 *
 * Nothing secret may be passed to log_msg: callers format only names, keys,
 * status codes and ARNs. auth/ keeps secrets in struct creds, which has no
 * formatting helper on purpose, and takes known secrets out of a server's
 * text before it can reach a line (core/redact.h). As a last guard the sink
 * also redacts anything shaped like a JWT (a web identity token).
 */
#ifndef IRSAFS_CORE_LOG_H
#define IRSAFS_CORE_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <syslog.h>

/* Set the most verbose level that is written (default LOG_INFO). */
void log_set_level(int level);
int log_get_level(void);

/*
 * The shape of a stderr line: text ("irsafs: info: ...") or one JSON object
 * per line ({"time":"...","level":"info","tag":"irsafs","msg":"..."}) for log
 * pipelines. Syslog lines are always text.
 */
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };
void log_set_format(enum log_format f);

/* "error", "warning", "notice", "info" or "debug" to a level; -1 if unknown. */
int log_level_parse(const char *name);

/* Send further lines to syslog (ident "irsafs") instead of stderr. */
void log_use_syslog(void);

/* Prefix every line with this tag (e.g. the program name); not copied. */
void log_set_tag(const char *tag);

int log_enabled(int level);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/*
 * Escape msg into out (at most cap bytes with the NUL; returns the length).
 * Text (json = 0): CR, LF and TAB become \r \n \t; other control bytes and
 * DEL become \xHH; C1 controls (U+0080..U+009F) become \u00HH; a byte that
 * is not part of well-formed UTF-8 becomes \xHH. Other UTF-8 passes through.
 * JSON (json = 1): the same, as a JSON string body: '"' and '\\' escaped,
 * control bytes as \u00HH, and a byte that is not UTF-8 as the six
 * characters \\xHH (so the decoded string reads as the text line does). A
 * message too long for cap is cut between characters, never inside one or
 * inside an escape. Pure; used by the sink for every line.
 */
size_t log_escape(char *out, size_t cap, const char *msg, int json);

/*
 * Log a message only the first time this exact text is seen (bounded memory:
 * after a few thousand distinct texts, further ones are logged every time).
 * Used for per-key notices such as hidden names and denials.
 */
void log_once(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Like log_once, but "once" is decided by key, not by the text: for a line
 * that ends with something that differs every time (a request id) while the
 * event it reports is the same (one denial of one key).
 */
void log_once_key(int level, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
