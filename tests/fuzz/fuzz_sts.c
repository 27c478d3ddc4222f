/*
 * fuzz_sts: sts_xml_parse_assume_role on arbitrary bytes.
 *
 * Invariants: no crash or leak; a refused document leaves the result zeroed;
 * an accepted one has all three credentials, each printable ASCII without
 * spaces (they go into headers and the signature), and a sane expiration.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sts_xml.h"
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

static int credential_ok(const char *s)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct sts_result zero;
	struct sts_result r;

	if (sts_xml_parse_assume_role((const char *)data, size, &r)) {
		if (memcmp(&r, &zero, sizeof(r)))
			abort();
		return 0;
	}
	if (!credential_ok(r.access_key_id) || !credential_ok(r.secret_access_key) ||
	    !credential_ok(r.session_token) || r.expiration.tv_nsec < 0 ||
	    r.expiration.tv_nsec >= 1000000000L)
		abort();
	sts_result_cleanup(&r);
	if (memcmp(&r, &zero, sizeof(r)))
		abort();
	return 0;
}
