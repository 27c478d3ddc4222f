/*
 * fuzz_mountinfo: the mountinfo reader (what the mount point checks, the CSI
 * plugin and the kernel read-ahead tuning see of the mount table). The first
 * line of the input is the path looked for, the rest the table. Invariants:
 * no crash; an entry found or not is NUL-terminated within its fields.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mountinfo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	struct mountinfo_entry e;
	char path[256];
	size_t plen;
	FILE *f;

	if (!nl || size == 0)
		return 0;
	plen = (size_t)(nl - data);
	if (plen >= sizeof(path) || plen + 1 == size)
		return 0;
	memcpy(path, data, plen);
	path[plen] = '\0';
	f = fmemopen((void *)(uintptr_t)(nl + 1), size - plen - 1, "r");
	if (!f)
		return 0;
	(void)mountinfo_find(f, path, &e);
	fclose(f);
	if (!memchr(e.dev, 0, sizeof(e.dev)) || !memchr(e.fstype, 0, sizeof(e.fstype)) ||
	    !memchr(e.source, 0, sizeof(e.source)))
		abort();
	return 0;
}
