/*
 * fuzz_sigv4: SigV4 canonicalization on hostile requests.
 *
 * The input is a raw HTTP request, laid out like the AWS suite's .req files
 * (so those seed the corpus): "METHOD PATH[?QUERY] HTTP/1.1", header lines
 * "Name:value", a blank line, a body. The first byte, when it is not a
 * letter, picks the options (bit 0: normalize_path, bit 1: presigned form).
 * Invariants: no crash or sanitizer report, and the same input gives the
 * same canonical request and Authorization twice.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sigv4.h"
#include "core/buf.h"

#define MAX_HEADERS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *line_dup(const char **p, const char *end)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	const char *stop = nl ? nl : end;
	size_t n = (size_t)(stop - *p);
	char *s;

	if (n && stop[-1] == '\r')
		n--;
	s = strndup(*p, n);
	*p = nl ? nl + 1 : end;
	return s;
}

static int sign(const struct sigv4_input *in, int presign, struct buf *creq, struct buf *auth)
{
	int rc = sigv4_canonical_request(in, creq, NULL);

	if (rc)
		return rc;
	if (presign)
		return sigv4_presign_params(in, "AKIDEXAMPLE", "token", 3600, auth);
	return sigv4_authorization(in, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
				   auth);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	struct sigv4_header hdr[MAX_HEADERS];
	char *lines[MAX_HEADERS] = { 0 }, *reqline, *sp1, *sp2, *q, *path, *query = NULL;
	struct buf c1, a1, c2, a2;
	struct sigv4_input in;
	size_t nh = 0, i;
	int opts = 0, rc1, rc2;

	if (size > 64 * 1024)
		return 0;
	if (size && !((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))) {
		opts = (unsigned char)*p;
		p++;
	}
	reqline = line_dup(&p, end);
	if (!reqline)
		return 0;
	while (p < end && nh < MAX_HEADERS) {
		char *l = line_dup(&p, end), *colon;

		if (!l)
			break;
		if (!*l) {
			free(l);
			break;
		}
		colon = strchr(l, ':');
		if (!colon) {
			free(l);
			continue;
		}
		*colon = '\0';
		lines[nh] = l;
		hdr[nh].name = l;
		hdr[nh].value = colon + 1;
		nh++;
	}
	/* "METHOD target HTTP/1.1"; a missing part is the empty string. */
	sp1 = strchr(reqline, ' ');
	path = sp1 ? sp1 + 1 : reqline + strlen(reqline);
	if (sp1)
		*sp1 = '\0';
	sp2 = strrchr(path, ' ');
	if (sp2)
		*sp2 = '\0';
	q = strchr(path, '?');
	if (q) {
		*q = '\0';
		query = q + 1;
	}
	in = (struct sigv4_input){
		.method = reqline, .path = path, .query = query, .headers = hdr, .nheaders = nh,
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		.amz_date = "20150830T123600Z", .region = "us-east-1", .service = "service",
		.normalize_path = opts & 1,
	};
	buf_init(&c1, 1 << 20);
	buf_init(&a1, 1 << 20);
	buf_init(&c2, 1 << 20);
	buf_init(&a2, 1 << 20);
	rc1 = sign(&in, opts & 2, &c1, &a1);
	rc2 = sign(&in, opts & 2, &c2, &a2);
	if (rc1 != rc2)
		abort();
	if (!rc1 && (c1.len != c2.len || memcmp(c1.data, c2.data, c1.len) ||
		     a1.len != a2.len || memcmp(a1.data, a2.data, a1.len)))
		abort();
	buf_cleanup(&c1);
	buf_cleanup(&a1);
	buf_cleanup(&c2);
	buf_cleanup(&a2);
	for (i = 0; i < nh; i++)
		free(lines[i]);
	free(reqline);
	return 0;
}
