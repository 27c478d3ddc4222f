/*
 * irsafs-csi's gRPC layer (csi/grpc.c), which runs as root on every node, on
 * what a client sends: the HTTP/2 client preface, then the input as frames,
 * written to a real unix socket that grpc_dispatch serves. nghttp2 parses
 * HTTP/2; what this target reaches is what grpc.c adds on top of it: the
 * headers it keeps, the body it collects up to its bound, the 5-byte message
 * prefix, the answers and the per-connection output queue.
 *
 * Invariants besides "no crash, no leak":
 * - the handler sees a path that begins with '/' and fits the 256 bytes a
 *   stream keeps, and an uncompressed message of at most GRPC_MAX_MESSAGE
 *   bytes that, with its 5-byte prefix, is the whole of what one stream of
 *   the input carried in DATA frames (less padding) up to END_STREAM: never
 *   a part of it, never two streams' bytes mixed (streams(), a frame walker
 *   of its own, finds those bodies);
 * - once the client has sent everything and shut its side, the server closes
 *   the connection within a bounded number of turns (no hang, no connection
 *   left behind).
 */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "csi/grpc.h"
#include "csi/pollset.h"

#define MAX_TURNS 2000
#define MAX_BODIES 64

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* What each stream of this input sent, by the input's own frames. */
static struct body {
	uint32_t id;
	int ended;			/* END_STREAM seen: complete */
	size_t len;
	uint8_t data[65536];
} bodies[MAX_BODIES];
static unsigned nbodies;
static int bodies_known;		/* 0: too many streams to check */

static struct body *body_of(uint32_t id)
{
	unsigned i;

	for (i = 0; i < nbodies; i++)
		if (bodies[i].id == id && !bodies[i].ended)
			return &bodies[i];
	if (nbodies == MAX_BODIES)
		return NULL;
	bodies[nbodies].id = id;
	bodies[nbodies].ended = 0;
	bodies[nbodies].len = 0;
	return &bodies[nbodies++];
}

/*
 * Walk the input's frames (9-byte header: 24-bit length, type, flags, 31-bit
 * stream) and collect each stream's DATA, less the padding, up to a DATA or
 * HEADERS frame with END_STREAM. Frames nghttp2 refuses are collected too:
 * a body here that never reaches the handler is no error, a message there
 * that is no body here is.
 */
static void streams(const uint8_t *d, size_t size)
{
	size_t pos = 0, len, pad;
	uint8_t type, flags;
	struct body *b;

	nbodies = 0;
	bodies_known = 1;
	while (size - pos >= 9) {
		len = (size_t)d[pos] << 16 | (size_t)d[pos + 1] << 8 | d[pos + 2];
		type = d[pos + 3];
		flags = d[pos + 4];
		b = NULL;
		if (type == 0 || type == 1) {
			b = body_of(((uint32_t)d[pos + 5] << 24 | (uint32_t)d[pos + 6] << 16 |
				     (uint32_t)d[pos + 7] << 8 | d[pos + 8]) & 0x7fffffff);
			if (!b) {
				bodies_known = 0;
				return;
			}
		}
		pos += 9;
		if (len > size - pos)
			return;		/* cut short: never delivered */
		if (type == 0) {
			pad = 0;
			if (flags & 0x8) {	/* PADDED: a length byte, then the padding */
				/*
				 * Too much padding: a connection error, or, on a
				 * stream nghttp2 has reset already, a frame it
				 * skips unread. Either way no byte of it counts.
				 */
				if (!len || d[pos] >= len) {
					pos += len;
					continue;
				}
				pad = (size_t)d[pos] + 1;
			}
			memcpy(b->data + b->len, d + pos + (pad ? 1 : 0), len - pad);
			b->len += len - pad;
		}
		if (b && (flags & 0x1))
			b->ended = 1;
		pos += len;
	}
}

static int handler(void *ctx, struct grpc_call *call)
{
	const uint8_t *msg = call->req - 5;	/* the prefix is in the same buffer */
	size_t i, sum = 0, plen = strlen(call->path);
	int found = 0;

	(void)ctx;
	if (call->path[0] != '/' || plen >= 256 || call->req_len > GRPC_MAX_MESSAGE)
		abort();
	if (msg[0] != 0 || ((size_t)msg[1] << 24 | (size_t)msg[2] << 16 | (size_t)msg[3] << 8 |
			    msg[4]) != call->req_len)
		abort();
	for (i = 0; i < nbodies && !found; i++)
		found = bodies[i].ended && bodies[i].len == call->req_len + 5 &&
			memcmp(bodies[i].data, msg, bodies[i].len) == 0;
	if (bodies_known && !found)
		abort();	/* a part of a stream's bytes, or more, or mixed */
	for (i = 0; i < call->req_len; i++)
		sum += call->req[i];
	/* Each kind of answer: a reply (an echo), an empty one, an error. */
	switch (sum % 3) {
	case 0:
		if (call->req_len) {
			call->reply = malloc(call->req_len);
			if (!call->reply)
				return GRPC_INTERNAL;
			memcpy(call->reply, call->req, call->req_len);
			call->reply_len = call->req_len;
		}
		return GRPC_OK;
	case 1:
		return GRPC_OK;
	default:
		/* Bytes grpc-message must percent-encode, and the path back. */
		snprintf(call->message, sizeof(call->message), "100%% \xc3\xa9\n%s", call->path);
		return GRPC_INVALID_ARGUMENT;
	}
}

static struct grpc_server *srv;
static struct sockaddr_un addr;
static socklen_t addr_len;

static void setup(void)
{
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (lfd < 0)
		abort();
	/* Abstract, named by the pid: targets run side by side. */
	addr.sun_family = AF_UNIX;
	snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1, "irsafs-fuzz-grpc-%d", (int)getpid());
	addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			       strlen(addr.sun_path + 1));
	if (bind(lfd, (struct sockaddr *)&addr, addr_len) != 0 || listen(lfd, 4) != 0)
		abort();
	srv = grpc_server_new(lfd, handler, NULL);
	if (!srv)
		abort();
}

/* One turn of irsafs-csi's loop, without waiting. */
static void turn(struct pollset *ps)
{
	pollset_clear(ps);
	if (grpc_poll_fds(srv, ps) != 0)
		abort();
	/* EINTR: libFuzzer's -timeout alarm; nothing is ready this turn. */
	if (poll(ps->fds, ps->n, 0) < 0 && errno != EINTR)
		abort();
	grpc_dispatch(srv, ps);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pollset ps;
	uint8_t *msg, sink[65536];
	size_t len = sizeof(preface) - 1 + size, off = 0;
	int cfd, shut = 0, closed = 0, turns;
	ssize_t n;

	if (!srv)
		setup();
	if (size > sizeof(bodies[0].data))
		return 0;
	streams(data, size);
	msg = malloc(len);
	if (!msg)
		return 0;
	memcpy(msg, preface, sizeof(preface) - 1);
	memcpy(msg + sizeof(preface) - 1, data, size);
	cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (cfd < 0 || connect(cfd, (struct sockaddr *)&addr, addr_len) != 0)
		abort();
	pollset_init(&ps);
	for (turns = 0; !closed && turns < MAX_TURNS; turns++) {
		if (off < len) {
			n = send(cfd, msg + off, len - off, MSG_NOSIGNAL);
			if (n > 0)
				off += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != EINTR)
				break;	/* the server closed first: a refusal */
		}
		if (off == len && !shut) {
			shutdown(cfd, SHUT_WR);
			shut = 1;
		}
		turn(&ps);
		/* Read what the server answers, as a client would, until it closes. */
		while ((n = recv(cfd, sink, sizeof(sink), 0)) > 0)
			;
		if (n == 0)
			closed = 1;
	}
	if (!closed && shut)
		abort();	/* everything sent and shut, and the server still holds on */
	close(cfd);
	/* A server that closed first still has to see this end go. */
	for (turns = 0; turns < 4; turns++)
		turn(&ps);
	pollset_cleanup(&ps);
	free(msg);
	return 0;
}
