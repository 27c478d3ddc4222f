#include "core/mountinfo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/*
 * One line: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE
 * SOURCE SUPEROPTIONS". 1 when it is a mount at path (e filled), else 0.
 */
static int parse_line(char *line, const char *path, struct mountinfo_entry *e)
{
	char *save = NULL, *tok, *dev = NULL, *type, *source;
	int i;

	tok = strtok_r(line, " \n", &save);
	for (i = 0; tok && i < 4; i++) {
		if (i == 2)
			dev = tok;
		tok = strtok_r(NULL, " \n", &save);
	}
	if (!tok || !dev)
		return 0;
	unescape(tok);
	if (strcmp(tok, path) != 0)
		return 0;
	while ((tok = strtok_r(NULL, " \n", &save)) && strcmp(tok, "-") != 0)
		;
	type = tok ? strtok_r(NULL, " \n", &save) : NULL;
	source = type ? strtok_r(NULL, " \n", &save) : NULL;
	if (!source)
		return 0;
	unescape(type);
	unescape(source);
	snprintf(e->dev, sizeof(e->dev), "%s", dev);
	snprintf(e->fstype, sizeof(e->fstype), "%s", type);
	snprintf(e->source, sizeof(e->source), "%s", source);
	return 1;
}

int mountinfo_find(FILE *f, const char *path, struct mountinfo_entry *e)
{
	struct mountinfo_entry cur;
	char *line = NULL;
	size_t cap = 0;
	int found = -ENOENT;

	memset(e, 0, sizeof(*e));
	while (getline(&line, &cap, f) > 0) {
		if (parse_line(line, path, &cur)) {
			*e = cur;
			found = 0;
		}
	}
	free(line);
	return found;
}

int mountinfo_find_self(const char *path, struct mountinfo_entry *e)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	int rc;

	if (!f) {
		memset(e, 0, sizeof(*e));
		return -errno;
	}
	rc = mountinfo_find(f, path, e);
	fclose(f);
	return rc;
}
