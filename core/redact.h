/*
 * redact: take secrets out of text that came from a server.
 *
 * A server's words reach people: STS's <Message>, S3's, a credentials
 * endpoint's Code end up in error messages and log lines. A hostile, buggy
 * or merely verbose server may echo what it was sent: the web identity token,
 * the session token, the access key id. Whoever holds the secrets a request
 * carried passes them here with the server's text before the text goes
 * anywhere; the log sink adds redact_jwt for every line as a last guard.
 *
 * Everything here is pure and thread-safe (no state, no locks).
 */
#ifndef IRSAFS_CORE_REDACT_H
#define IRSAFS_CORE_REDACT_H

#include <stddef.h>

/* What a redacted run becomes. */
#define REDACT_MARK "[redacted]"

/*
 * Shorter secrets are not looked for (they would match ordinary words);
 * a run of at least REDACT_MIN_RUN bytes that also occurs inside a secret is
 * redacted even when the rest of the secret is not there (a truncated echo).
 */
#define REDACT_MIN_SECRET 8
#define REDACT_MIN_RUN 16

/*
 * In the NUL-terminated text (a buffer of cap bytes), replace every
 * occurrence of each secret, and every run of REDACT_MIN_RUN or more bytes
 * that also occurs in a secret, with REDACT_MARK (overlapping and adjacent
 * matches become one mark). NULL and short secrets are skipped. The result
 * is cut to fit cap. Returns the number of marks written. When memory is
 * short and a secret may be present, the whole text becomes one mark.
 */
int redact_text(char *text, size_t cap, const char *const *secrets, size_t nsecrets);

/*
 * Replace, in place, anything shaped like a JWT ("eyJ" and at least 16
 * base64url characters, a dot, then more base64url and dots) with
 * REDACT_MARK. Returns the number of marks written. Cheap enough for every
 * log line: it looks no further than each "eyJ".
 */
int redact_jwt(char *text);

#endif
