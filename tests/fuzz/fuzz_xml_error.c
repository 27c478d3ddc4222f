/*
 * fuzz_xml_error: xml_parse_error on arbitrary bytes.
 *
 * Invariants: no crash or leak; a refused document leaves the struct exactly
 * as it was; an accepted one leaves every field terminated within its size,
 * free of control characters (they reach log lines), and a region made only
 * of the characters a region name has (it may reach a host name).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "http/xml.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	xml_global_init();
	return 0;
}

static int field_ok(const char *s, size_t size)
{
	if (!memchr(s, '\0', size))
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct s3_error e, before;

	memset(&e, 0, sizeof(e));
	e.http_status = 403;
	before = e;
	if (xml_parse_error((const char *)data, size, &e)) {
		if (memcmp(&e, &before, sizeof(e)))
			abort();
		return 0;
	}
	if (e.http_status != 403 || e.curl_code != 0 || !field_ok(e.code, sizeof(e.code)) ||
	    !field_ok(e.message, sizeof(e.message)) ||
	    !field_ok(e.request_id, sizeof(e.request_id)) || !field_ok(e.region, sizeof(e.region)))
		abort();
	if (strspn(e.region, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") !=
	    strlen(e.region))
		abort();
	return 0;
}
