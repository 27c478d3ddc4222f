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
 * A line about one operation may also carry its facts as fields (log_op):
 * in JSON they are members of the object beside "msg", so a log pipeline can
 * select on them (op, bucket, key, status, code, errno, request_id, id2,
 * latency_ms) without parsing the text; text and syslog lines are the same
 * as log_msg's, the facts staying in the message. Field values are redacted
 * and escaped like the message.
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
 * The facts of one operation, for log_op. Unset members (NULL, 0, "") are
 * left out of the line; key is written when not NULL, even "" (a listing of
 * the bucket's root).
 *   op          the S3 or STS request ("HEAD", "GET", "LIST", "STS"), or the
 *               file-system operation ("lookup", "open", "read", ...)
 *   bucket, key the object (for LIST: key is the prefix listed, "" for the root)
 *   status      HTTP status of the last answer (0: none came)
 *   code        S3/STS <Code> ("AccessDenied"), or irsafs's own
 *               ("NoCredentials", "MalformedReply")
 *   err         the errno the operation fails with, positive; written as
 *               its name ("EACCES"), see err_errno_name
 *   request_id, id2   x-amz-request-id and x-amz-id-2
 *   latency_us  the whole operation, retries included; written as
 *               latency_ms with microsecond precision
 */
struct log_fields {
	const char *op;
	const char *bucket;
	const char *key;
	int status;
	const char *code;
	int err;
	const char *request_id;
	const char *id2;
	long long latency_us;
};

/* log_msg with fields (f may be NULL: then exactly log_msg). */
void log_op(int level, const struct log_fields *f, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* log_once with fields ("once" by the text, as there). */
void log_op_once(int level, const struct log_fields *f, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* log_once_key with fields. */
void log_op_once_key(int level, const char *key, const struct log_fields *f, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

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
