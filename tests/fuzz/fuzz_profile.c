/*
 * fuzz_profile: the shared config and credentials files' grammar
 * (profile_parse, auth/creds_profile.c). The input's first byte holds two
 * flags (bit 0: a config file, bit 1: later keys override), then the profile
 * name up to the first newline (at most 64 bytes), then the file's text.
 * Invariants: no crash or read past the text; a result of 1, 0 or one of the
 * three errors; at most 256 settings, each key and value trimmed, a key
 * without '='; an error is one of the four messages, built of the file's
 * path, a line number and the profile's name only: never of a line's text
 * (values may be secret keys).
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/creds.h"
#include "auth/creds_i.h"

#define PATH "/fuzz/credentials"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether why is one of profile_parse's messages, with nothing of the text in it. */
static int known_error(const char *why, const char *name)
{
	static const char *const line_msgs[] = {
		PATH ": a section header without ']' near line ",
		PATH ": expected 'key = value' near line ",
	};
	const char *p;
	size_t i;

	if (!strcmp(why, PATH ": too many settings in one profile") ||
	    !strcmp(why, PATH ": out of memory"))
		return 1;
	for (i = 0; i < 2; i++) {
		if (strncmp(why, line_msgs[i], strlen(line_msgs[i])))
			continue;
		p = why + strlen(line_msgs[i]);
		if (!isdigit((unsigned char)*p))
			return 0;
		while (isdigit((unsigned char)*p))
			p++;
		if (i == 0)
			return *p == '\0';
		return !strncmp(p, " of profile ", 12) && !strcmp(p + 12, name);
	}
	return 0;
}

static int trimmed(const char *s)
{
	size_t n = strlen(s);

	return !n || (!isspace((unsigned char)s[0]) && !isspace((unsigned char)s[n - 1]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[65], why[256] = "", *text;
	const char *key, *value;
	struct profile *p;
	size_t i, nlen;
	int rc;

	if (size < 1)
		return 0;
	for (nlen = 0; nlen < 64 && 1 + nlen < size && data[1 + nlen] != '\n'; nlen++)
		;
	memcpy(name, data + 1, nlen);
	name[nlen] = '\0';
	i = 1 + nlen + (1 + nlen < size);	/* past the newline */
	text = malloc(size - i + 1);
	p = profile_new(name);
	if (!text || !p) {
		free(text);
		profile_free(p);
		return 0;
	}
	memcpy(text, data + i, size - i);
	text[size - i] = '\0';
	rc = profile_parse(text, PATH, data[0] & 1, name, p, data[0] & 2, why, sizeof(why));
	if (rc != 0 && rc != 1 && rc != -EINVAL && rc != -E2BIG && rc != -ENOMEM)
		abort();
	if (rc < 0 && !known_error(why, name))
		abort();
	if (profile_count(p) > 256)
		abort();
	for (i = 0; i < profile_count(p); i++) {
		key = profile_key_at(p, i, &value);
		if (strchr(key, '=') || strchr(key, '\n') || strchr(value, '\n') || !trimmed(key) ||
		    !trimmed(value))
			abort();
	}
	profile_free(p);
	free(text);
	return 0;
}
