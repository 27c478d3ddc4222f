/*
 * grpc: the server side of unary gRPC calls over HTTP/2 (nghttp2), on
 * connections the caller accepts from a unix socket.
 *
 * gRPC on the wire is HTTP/2 with three conventions, done here: a request is
 * a POST to /PACKAGE.SERVICE/METHOD with content-type application/grpc; the
 * message travels in DATA frames behind a 5-byte prefix (a compressed flag and
 * a big-endian length); and the outcome is in trailers, grpc-status and a
 * percent-encoded grpc-message (or, for an error, in a single HEADERS frame,
 * the "Trailers-Only" form). Only unary calls, no compression, at most
 * GRPC_MAX_MESSAGE bytes per request.
 *
 * One thread drives everything: the caller polls the fds grpc_poll_fds lists
 * and passes the results to grpc_dispatch, which reads, calls the handler
 * synchronously, and writes. Not thread-safe.
 */
#ifndef IRSAFS_CSI_GRPC_H
#define IRSAFS_CSI_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include "csi/pollset.h"

/* Requests larger than this are refused with RESOURCE_EXHAUSTED. */
#define GRPC_MAX_MESSAGE (1u << 20)

/* gRPC status codes (the ones irsafs-csi answers with). */
enum grpc_code {
	GRPC_OK = 0,
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_NOT_FOUND = 5,
	GRPC_ALREADY_EXISTS = 6,
	GRPC_RESOURCE_EXHAUSTED = 8,
	GRPC_FAILED_PRECONDITION = 9,
	GRPC_UNIMPLEMENTED = 12,
	GRPC_INTERNAL = 13,
	GRPC_UNAVAILABLE = 14,
};

/* One call, as the handler sees it. */
struct grpc_call {
	const char *path;		/* "/csi.v1.Node/NodeGetInfo" */
	const uint8_t *req;		/* the request message, still encoded */
	size_t req_len;
	uint8_t *reply;			/* out, on GRPC_OK: the encoded reply, malloc'd */
	size_t reply_len;
	char message[512];		/* out, on an error: why, for grpc-message */
};

/* Answer one call: return a grpc_code, filling reply (OK) or message (else). */
typedef int (*grpc_handler_fn)(void *ctx, struct grpc_call *call);

struct grpc_server;

/* Serve connections accepted from listen_fd (non-blocking). NULL on ENOMEM. */
struct grpc_server *grpc_server_new(int listen_fd, grpc_handler_fn fn, void *ctx);
/* Close every connection (not the listening socket) and free. */
void grpc_server_free(struct grpc_server *s);

/* Add the listening socket and every connection to ps. 0 or -ENOMEM. */
int grpc_poll_fds(struct grpc_server *s, struct pollset *ps);
/* Accept, read, answer and write what ps says is ready. */
void grpc_dispatch(struct grpc_server *s, const struct pollset *ps);

/* Render s as a grpc-message value (percent-encoded, RFC 3986 unreserved kept). */
void grpc_percent_encode(const char *s, char *out, size_t outlen);

#endif
