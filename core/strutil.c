#include "core/strutil.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/buf.h"

/* The characters of an entity tag between its quotes: 0x21 and 0x23-0x7E. */
#define ETAG_CHARS "!#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`" \
	"abcdefghijklmnopqrstuvwxyz{|}~"

void hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

void sha256_hex(const void *in, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = sizeof(md);

	EVP_Digest(in, n, md, &mdlen, EVP_sha256(), NULL);
	hex_encode(md, 32, out);
}

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

int uri_encode(struct buf *out, const char *in, size_t n, int keep_slash)
{
	static const char digits[] = "0123456789ABCDEF";
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];

		if (is_unreserved(c) || (keep_slash && c == '/')) {
			rc = buf_append(out, &in[i], 1);
		} else {
			char esc[3] = { '%', digits[c >> 4], digits[c & 15] };

			rc = buf_append(out, esc, 3);
		}
		if (rc)
			return rc;
	}
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

long uri_decode(char *s, int plus_is_space)
{
	char *r = s, *w = s;

	while (*r) {
		if (*r == '%') {
			int hi, lo;

			if (!r[1] || !r[2])
				return -EINVAL;
			hi = hexval(r[1]);
			lo = hexval(r[2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -EINVAL;
			*w++ = (char)(hi * 16 + lo);
			r += 3;
		} else if (*r == '+' && plus_is_space) {
			*w++ = ' ';
			r++;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
	return w - s;
}

char *str_trim(char *s)
{
	size_t n;
	char *p = s;

	while (*p && isspace((unsigned char)*p))
		p++;
	if (p != s)
		memmove(s, p, strlen(p) + 1);
	n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

int url_host_is_loopback(const char *host, size_t n)
{
	struct in6_addr a6;
	struct in_addr a4;
	char h[64];

	if (n == 0 || n >= sizeof(h))
		return 0;
	memcpy(h, host, n);
	h[n] = '\0';
	if (!strcasecmp(h, "localhost") || !strcasecmp(h, "localhost."))
		return 1;
	/* 127.0.0.0/8 as a dotted quad (inet_pton takes no other form). */
	if (inet_pton(AF_INET, h, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (h[0] != '[' || h[n - 1] != ']')
		return 0;
	h[n - 1] = '\0';
	if (inet_pton(AF_INET6, h + 1, &a6) != 1)
		return 0;
	return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
}

int url_is_cleartext_remote(const char *url, char *host, size_t hostlen)
{
	const char *p, *end, *at, *h;
	size_t n;

	if (strncasecmp(url, "http://", 7) != 0)
		return 0;
	p = url + 7;
	end = p + strcspn(p, "/?#");
	/* user:password@host: the host is after the last '@' of the authority. */
	for (at = p, h = p; at < end; at++)
		if (*at == '@')
			h = at + 1;
	if (*h == '[') {
		const char *close = memchr(h, ']', (size_t)(end - h));

		n = close ? (size_t)(close + 1 - h) : (size_t)(end - h);
	} else {
		const char *colon = memchr(h, ':', (size_t)(end - h));

		n = (size_t)((colon ? colon : end) - h);
	}
	if (url_host_is_loopback(h, n))
		return 0;
	if (host && hostlen)
		snprintf(host, hostlen, "%.*s", (int)n, h);
	return 1;
}

int hostport_split(const char *s, char *host, size_t hostlen, unsigned *port, char *why,
		   size_t whylen)
{
	const char *h = s, *colon, *p;
	unsigned long v = 0;
	size_t n;

	if (*s == '[') {
		colon = strchr(s, ']');
		if (!colon || colon[1] != ':') {
			snprintf(why, whylen, "expected [IPV6]:PORT, such as [::1]:9100");
			return -EINVAL;
		}
		h = s + 1;
		n = (size_t)(colon - h);
		colon++;
	} else {
		colon = strrchr(s, ':');
		if (!colon) {
			snprintf(why, whylen, "no port: expected HOST:PORT, such as 127.0.0.1:9100");
			return -EINVAL;
		}
		if (memchr(s, ':', (size_t)(colon - s))) {
			snprintf(why, whylen, "an IPv6 address goes in brackets: [ADDRESS]:PORT, "
				 "such as [::1]:9100");
			return -EINVAL;
		}
		n = (size_t)(colon - s);
	}
	if (n == 0) {
		snprintf(why, whylen, "no host: expected HOST:PORT, such as 127.0.0.1:9100 (or "
			 "0.0.0.0:9100 for every address)");
		return -EINVAL;
	}
	if (n >= hostlen) {
		snprintf(why, whylen, "the host is longer than %zu bytes", hostlen - 1);
		return -EINVAL;
	}
	for (p = colon + 1; *p >= '0' && *p <= '9' && v <= 65535; p++)
		v = v * 10 + (unsigned long)(*p - '0');
	if (p == colon + 1 || *p || v < 1 || v > 65535) {
		snprintf(why, whylen, "the port must be a number from 1 to 65535");
		return -EINVAL;
	}
	memcpy(host, h, n);
	host[n] = '\0';
	*port = (unsigned)v;
	return 0;
}

int str_has_prefix_ci(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

int time_parse_iso8601(const char *s, struct timespec *out)
{
	struct tm tm;
	const char *p;
	long nsec = 0;

	memset(&tm, 0, sizeof(tm));
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -EINVAL;
	if (*p == '.') {
		long scale = 100000000;

		for (p++; isdigit((unsigned char)*p); p++) {
			nsec += (*p - '0') * scale;
			scale /= 10;
		}
	}
	if (*p == 'Z')
		p++;
	else if (!strncmp(p, "+00:00", 6))
		p += 6;
	else
		return -EINVAL;
	if (*p)
		return -EINVAL;
	out->tv_sec = timegm(&tm);
	out->tv_nsec = nsec;
	return out->tv_sec == (time_t)-1 ? -EINVAL : 0;
}

int time_parse_rfc1123(const char *s, time_t *out)
{
	struct tm tm;
	const char *p;

	memset(&tm, 0, sizeof(tm));
	p = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!p || *p)
		return -EINVAL;
	*out = timegm(&tm);
	return 0;
}

void time_format_amz(time_t t, char out[17])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

void time_format_iso8601(time_t t, char out[21])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

size_t heap_bytes(size_t n)
{
	size_t c = (n + sizeof(size_t) + 15) & ~(size_t)15;

	return c < 32 ? 32 : c;
}

long long clock_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void clock_real_in_ms(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int file_read_small(const char *path, size_t max, char **out, size_t *len)
{
	struct buf b;
	struct stat st;
	char chunk[4096];
	ssize_t n;
	int fd, rc = 0;

	/*
	 * O_NONBLOCK: opening a FIFO for reading would wait for a writer for
	 * ever; O_NOCTTY: a terminal must not become ours. Only a regular file
	 * is read, and one that is already too large is refused unread.
	 */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return errno == ENXIO ? -ESPIPE : -errno;
	if (fstat(fd, &st) != 0)
		rc = -errno;
	else if (S_ISDIR(st.st_mode))
		rc = -EISDIR;
	else if (!S_ISREG(st.st_mode))
		rc = -ESPIPE;
	else if ((unsigned long long)st.st_size > max)
		rc = -EFBIG;
	if (rc) {
		close(fd);
		return rc;
	}
	buf_init(&b, max);
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		/* Still bounded when the file grows while we read it. */
		rc = buf_append(&b, chunk, (size_t)n);
		if (rc) {
			if (rc == -EMSGSIZE)
				rc = -EFBIG;
			break;
		}
	}
	close(fd);
	/* The file may be a token: leave no copy on the stack. */
	OPENSSL_cleanse(chunk, sizeof(chunk));
	if (rc) {
		buf_cleanse(&b);
		return rc;
	}
	if (len)
		*len = b.len;
	*out = buf_steal(&b);
	return 0;
}

int file_check_small(const char *path, size_t max)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (!S_ISREG(st.st_mode))
		return -ESPIPE;
	return (unsigned long long)st.st_size > max ? -EFBIG : 0;
}

const char *file_read_strerror(int rc)
{
	switch (rc) {
	case -EISDIR:
		return "it is a directory, not a file";
	case -ESPIPE:
		return "it is not a regular file (a FIFO, a socket or a device)";
	case -EFBIG:
		return "file too large";
	default:
		return strerror(-rc);
	}
}

/* Up to 18 digits at *p (no sign, no space), moving *p past them. 0 or -1. */
static int parse_decimal(const char **p, long long *out)
{
	const char *s = *p;
	long long v = 0;
	int n = 0;

	while (*s >= '0' && *s <= '9' && n < 18) {
		v = v * 10 + (*s++ - '0');
		n++;
	}
	if (!n || (*s >= '0' && *s <= '9'))
		return -1;
	*p = s;
	*out = v;
	return 0;
}

int content_range_parse(const char *s, long long *first, long long *last, long long *total)
{
	const char *p = s;

	*first = *last = *total = -1;
	if (strncmp(p, "bytes ", 6))
		return -EINVAL;
	p += 6;
	if (*p == '*') {
		/* A 416 names no range, only the size after the asterisk. */
		p++;
	} else if (parse_decimal(&p, first) || *p++ != '-' || parse_decimal(&p, last)) {
		return -EINVAL;
	}
	if (*p++ != '/' || parse_decimal(&p, total) || *p)
		return -EINVAL;
	if (*first >= 0 && (*last < *first || *total <= *last))
		return -EINVAL;
	return 0;
}

long long content_range_total(const char *s)
{
	long long first, last, total;

	if (content_range_parse(s, &first, &last, &total) || first != 0)
		return -1;
	return total;
}

int etag_valid(const char *s)
{
	size_t n;

	if (!strncmp(s, "W/", 2))
		s += 2;
	n = strlen(s);
	if (n < 2 || s[0] != '"' || s[n - 1] != '"')
		return 0;
	/* RFC 9110 etagc without obs-text: printable ASCII but the quote. */
	return strspn(s + 1, ETAG_CHARS) == n - 2;
}

int etag_sendable(const char *s)
{
	return *s && strspn(s, ETAG_CHARS "\"") == strlen(s);
}
