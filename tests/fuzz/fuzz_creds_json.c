/*
 * fuzz_creds_json: the credentials JSON of container agents (EKS Pod
 * Identity, ECS), IMDS and credential_process. The first byte picks which
 * shape is expected; the rest is the document. Invariant: no crash, and a
 * success always yields both keys.
 */
#include <stdint.h>
#include <stdlib.h>

#include "auth/creds.h"
#include "auth/creds_i.h"
#include "core/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct creds_json_keys shapes[4] = {
		{ "Token", 0, 1 },		/* container agent */
		{ "Token", 0, 0 },		/* IMDS-like, no expiry required */
		{ "SessionToken", 1, 0 },	/* credential_process */
		{ "SessionToken", 1, 1 },
	};
	struct creds *c = NULL;
	char why[256];
	int rc;

	if (size < 1)
		return 0;
	log_set_level(LOG_EMERG);
	rc = creds_json_parse((const char *)data + 1, size - 1, &shapes[data[0] & 3], "fuzz", &c,
			      why, sizeof(why));
	if (rc == 0 && (!c || !c->access_key_id || !c->secret_access_key))
		abort();
	creds_release(c);
	return 0;
}
