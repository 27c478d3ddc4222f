/*
 * Redaction by content: the caller names the secrets, the text is searched
 * for them whole and in pieces. The piece rule (any REDACT_MIN_RUN bytes of a
 * secret) costs a memmem per position of the text, over each secret: a
 * few milliseconds for a 1 KiB message and a 64 KiB token, and it runs only
 * when a server's error text is about to be shown.
 */
#include "core/redact.h"

#include <stdlib.h>
#include <string.h>

static int is_b64url(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

/* Mark [i, i + n) in mark; text is len bytes. */
static void mark_run(char *mark, size_t i, size_t n)
{
	memset(mark + i, 1, n);
}

static int mark_secret(const char *text, size_t len, char *mark, const char *secret)
{
	size_t slen = strlen(secret), i;
	const char *p, *hit;
	int found = 0;

	if (slen < REDACT_MIN_SECRET)
		return 0;
	for (p = text; (size_t)(p - text) + slen <= len;) {
		hit = memmem(p, len - (size_t)(p - text), secret, slen);
		if (!hit)
			break;
		mark_run(mark, (size_t)(hit - text), slen);
		found = 1;
		p = hit + 1;
	}
	if (slen < REDACT_MIN_RUN || len < REDACT_MIN_RUN)
		return found;
	for (i = 0; i + REDACT_MIN_RUN <= len; i++) {
		if (memmem(secret, slen, text + i, REDACT_MIN_RUN)) {
			mark_run(mark, i, REDACT_MIN_RUN);
			found = 1;
		}
	}
	return found;
}

/* Copy text with each marked run as one REDACT_MARK, cut to cap. */
static int rewrite(char *text, size_t len, size_t cap, const char *mark)
{
	static const char m[] = REDACT_MARK;
	char *out = malloc(cap);
	size_t i = 0, n = 0, w;
	int marks = 0;

	if (!out)
		return -1;
	while (i < len) {
		const char *src = text + i;

		if (mark[i]) {
			while (i < len && mark[i])
				i++;
			src = m;
			w = sizeof(m) - 1;
			marks++;
		} else {
			w = 1;
			i++;
		}
		if (n + w >= cap)
			break;
		memcpy(out + n, src, w);
		n += w;
	}
	out[n] = '\0';
	memcpy(text, out, n + 1);
	free(out);
	return marks;
}

int redact_text(char *text, size_t cap, const char *const *secrets, size_t nsecrets)
{
	size_t len, i;
	char *mark;
	int found = 0, marks;

	if (!text || cap == 0)
		return 0;
	len = strlen(text);
	if (len == 0)
		return 0;
	mark = calloc(len, 1);
	if (!mark)
		goto whole;
	for (i = 0; i < nsecrets; i++)
		if (secrets[i])
			found |= mark_secret(text, len, mark, secrets[i]);
	if (!found) {
		free(mark);
		return 0;
	}
	marks = rewrite(text, len, cap, mark);
	free(mark);
	if (marks >= 0)
		return marks;
whole:
	/* No memory to be precise: say nothing rather than risk the secret. */
	if (cap > sizeof(REDACT_MARK) - 1) {
		memcpy(text, REDACT_MARK, sizeof(REDACT_MARK));
		return 1;
	}
	text[0] = '\0';
	return 1;
}

int redact_jwt(char *text)
{
	static const char m[] = REDACT_MARK;
	char *p = text, *q, *end;
	int marks = 0, dots;

	while ((p = strstr(p, "eyJ")) != NULL) {
		for (q = p; is_b64url((unsigned char)*q); q++)
			;
		if (q - p < 16 || *q != '.' || !is_b64url((unsigned char)q[1])) {
			p += 3;
			continue;
		}
		/* The payload, the signature: at most two more parts (JWE has four dots). */
		for (end = q, dots = 0; *end == '.' && dots < 4; dots++) {
			for (end++; is_b64url((unsigned char)*end); end++)
				;
		}
		/* end - p > 16 + 2 > sizeof(m) - 1: the text only shrinks. */
		memcpy(p, m, sizeof(m) - 1);
		memmove(p + sizeof(m) - 1, end, strlen(end) + 1);
		p += sizeof(m) - 1;
		marks++;
	}
	return marks;
}
