/*
 * fuzz_jwt: the JWT claim decoder (what `irsafs doctor` shows of the
 * projected token). Invariants: no crash; a success gives NUL-terminated
 * claims and at most JWT_MAX_AUD audiences.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jwt_claims c;
	unsigned char out[512];
	char why[256];
	size_t i;

	if (jwt_decode_claims((const char *)data, size, &c, why, sizeof(why)) == 0) {
		if (c.naud > JWT_MAX_AUD || !memchr(c.iss, 0, sizeof(c.iss)) ||
		    !memchr(c.sub, 0, sizeof(c.sub)))
			abort();
		for (i = 0; i < c.naud; i++)
			if (!memchr(c.aud[i], 0, sizeof(c.aud[i])))
				abort();
		(void)jwt_has_audience(&c, "sts.amazonaws.com");
	}
	if (jwt_b64url_decode((const char *)data, size, out, sizeof(out)) > (long)sizeof(out))
		abort();
	return 0;
}
