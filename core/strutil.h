/*
 * strutil: small pure helpers for strings, URIs, hashes and times.
 *
 * Everything here is reentrant and allocation-free unless it takes a
 * struct buf. The URI encoder is the one S3 and SigV4 agree on: every byte
 * except the unreserved set A-Z a-z 0-9 - . _ ~ is written once as %XX
 * (upper-case hex); '/' is kept or encoded as the caller says.
 */
#ifndef IRSAFS_CORE_STRUTIL_H
#define IRSAFS_CORE_STRUTIL_H

#include <stddef.h>
#include <time.h>

struct buf;

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void hex_encode(const unsigned char *in, size_t n, char *out);

/* Lower-case hex SHA-256 of n bytes into out[65]. */
void sha256_hex(const void *in, size_t n, char out[65]);

/* Percent-encode n bytes; '/' is kept when keep_slash. Returns 0 or -errno. */
int uri_encode(struct buf *out, const char *in, size_t n, int keep_slash);

/*
 * Percent-decode in place ("%2F" -> "/"); when plus_is_space, '+' becomes ' '.
 * Returns the new length, or -EINVAL on a malformed escape or an encoded NUL.
 */
long uri_decode(char *s, int plus_is_space);

/* Strip leading and trailing ASCII whitespace in place; returns s. */
char *str_trim(char *s);

/*
 * Is host (n bytes, as written in a URL: IPv6 in brackets) a loopback name:
 * localhost, 127.0.0.0/8 as a dotted quad, [::1] or [::ffff:127.x.x.x]?
 * Decided from the text alone, nothing is resolved.
 */
int url_host_is_loopback(const char *host, size_t n);

/*
 * 1 when url is plain http:// to a host that is not loopback (what is sent
 * there crosses a network unencrypted), with the host copied into host
 * (may be NULL); 0 for https://, loopback, or anything else. Pure: nothing
 * is resolved or connected, so a name that resolves to loopback still counts.
 */
int url_is_cleartext_remote(const char *url, char *host, size_t hostlen);

/*
 * Split "HOST:PORT" or "[IPV6]:PORT" into host (without brackets) and port
 * (1-65535, decimal). 0, or -EINVAL with why saying what is wrong (no port,
 * a port out of range, no host, an IPv6 address without brackets, a host
 * longer than hostlen). Nothing is resolved.
 */
int hostport_split(const char *s, char *host, size_t hostlen, unsigned *port, char *why,
		   size_t whylen);

/* Case-insensitive prefix test. */
int str_has_prefix_ci(const char *s, const char *prefix);

/*
 * Parse an ISO 8601 UTC time as S3 and STS send it: 2026-11-28T15:17:00Z,
 * with or without fractional seconds. Returns 0 and sets *out, or -EINVAL.
 */
int time_parse_iso8601(const char *s, struct timespec *out);

/* Parse an RFC 1123 date ("Sat, 28 Nov 2026 15:17:00 GMT"). 0 or -EINVAL. */
int time_parse_rfc1123(const char *s, time_t *out);
/*
 * The object's size from a Content-Range that starts at byte 0
 * ("bytes 0-B/SIZE"); -1 for anything else ("*" sizes, other starts, junk).
 */
long long content_range_total(const char *s);
/*
 * Parse a Content-Range value strictly: "bytes FIRST-LAST/TOTAL" (FIRST <=
 * LAST < TOTAL), or a 416's "bytes *" "/TOTAL" (FIRST and LAST -1). Numbers are
 * plain decimals of at most 18 digits; nothing may follow. 0, or -EINVAL.
 */
int content_range_parse(const char *s, long long *first, long long *last, long long *total);

/*
 * An entity tag as a server must send it (RFC 9110): an optional W/, then a
 * quoted string of printable ASCII other than the quote. 1 or 0.
 */
int etag_valid(const char *s);
/*
 * May s go back to a server in an If-Match header? Non-empty, printable
 * ASCII only (no space, no control character): a listing's ETag may lack
 * the quotes, but it may never split a header. 1 or 0.
 */
int etag_sendable(const char *s);

/* Format t as x-amz-date (20261128T151700Z, 17 bytes with NUL). */
void time_format_amz(time_t t, char out[17]);

/* Format t as ISO 8601 (2026-11-28T15:17:00Z, 21 bytes with NUL). */
void time_format_iso8601(time_t t, char out[21]);

/*
 * What malloc(n) takes from the heap: n, its header and its rounding (glibc
 * on 64 bits: an 8-byte header, 16-byte steps, 32 bytes at least). Memory
 * books kept with it match the heap; with n alone, a listing of a million
 * short names was counted at 2/3 of what it took.
 */
size_t heap_bytes(size_t n);

/* Monotonic clock in milliseconds. */
long long clock_mono_ms(void);

/*
 * The wall clock ms milliseconds from now, normalised: the deadline
 * pthread_cond_timedwait and pthread_timedjoin_np take.
 */
void clock_real_in_ms(struct timespec *ts, long ms);

/*
 * Read a whole small file (at most max bytes) into a NUL-terminated malloc'd
 * string (wiped when it fails: it may be a token). Only a regular file is
 * read, and it never blocks: -EISDIR for a directory, -ESPIPE for a FIFO, a
 * socket or a device, -EFBIG when longer than max (a file already larger is
 * not read at all), else 0 or -errno from open/read.
 */
int file_read_small(const char *path, size_t max, char **out, size_t *len);

/*
 * The same rules without reading, for a file another library opens (a CA
 * bundle): 0 when path is a regular file of at most max bytes, else the
 * errors file_read_small would give. stat(2) only: never blocks on a FIFO.
 */
int file_check_small(const char *path, size_t max);

/* Words for file_read_small's result, for "cannot read X: ..." lines. */
const char *file_read_strerror(int rc);

#endif
