/*
 * fakesrv: a scripted HTTP server for unit tests, on 127.0.0.1 only.
 *
 * fakesrv_start() listens on 127.0.0.1 at a port the kernel picks and serves
 * each connection on a thread of its own (keep-alive works; at most 64
 * connections in a server's life). For every request it reads
 * (the header block, then a Content-Length body if any) it records the raw
 * request and writes the next queued answer exactly as given: the test writes
 * the status line, the headers and the body itself, so an answer may be as
 * malformed as the test needs (a bare CR in a header, a short chunked body,
 * a lying Content-Range). Answers go out in the order they were queued, to
 * whichever request comes next. An answer can close the connection after it (a
 * close-delimited body), pause before or in the middle of it (a stall), or
 * trickle at a given rate. With no answer queued the server answers 500.
 *
 * Typical use:
 *
 *     struct fakesrv *fs = fakesrv_start();
 *     fakesrv_push(fs, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", -1, NULL);
 *     ... point a client at fakesrv_url(fs) ...
 *     CHECK_INT(fakesrv_nrequests(fs), 1);
 *     fakesrv_stop(fs);
 *
 * Every function is thread-safe; fakesrv_stop joins the thread (a stalled
 * answer is cut short) and frees everything.
 */
#ifndef IRSAFS_TESTS_FAKESRV_H
#define IRSAFS_TESTS_FAKESRV_H

#include <stddef.h>

struct fakesrv;

/* How one answer is written (NULL in fakesrv_push: all zero). */
struct fakesrv_opts {
	int close;		/* close the connection after the answer */
	long delay_ms;		/* wait this long before the first byte */
	size_t stall_after;	/* with stall_ms: write this many bytes, then ... */
	long stall_ms;		/* ... pause this long before the rest */
	long rate;		/* bytes per second (0: all at once) */
};

/* A server on 127.0.0.1:<ephemeral port>, or NULL (with a message on stderr). */
struct fakesrv *fakesrv_start(void);
/* "http://127.0.0.1:PORT", valid until fakesrv_stop. */
const char *fakesrv_url(const struct fakesrv *fs);
/* Queue an answer: len bytes of raw (len < 0: strlen), copied. */
void fakesrv_push(struct fakesrv *fs, const char *raw, long len, const struct fakesrv_opts *o);
/* Queue an answer built printf-style (headers and body in one string). */
void fakesrv_pushf(struct fakesrv *fs, const struct fakesrv_opts *o, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Requests read so far, and the i-th one's raw header block (a copy to free). */
int fakesrv_nrequests(struct fakesrv *fs);
char *fakesrv_request(struct fakesrv *fs, int i);
/* Drop the answers still queued. */
void fakesrv_clear(struct fakesrv *fs);
void fakesrv_stop(struct fakesrv *fs);

#endif
