/*
 * Unary gRPC over nghttp2's server session.
 *
 * nghttp2 does HTTP/2 (the preface, SETTINGS, flow control, HPACK, PING);
 * this file does what gRPC adds. A stream's request headers and DATA are
 * collected into a bounded buffer; when the client ends the stream, the
 * buffer must hold exactly one uncompressed length-prefixed message, which
 * goes to the handler. The reply is either HEADERS + DATA + trailers
 * (grpc-status 0), or, for an error, one HEADERS frame carrying
 * grpc-status and grpc-message that ends the stream.
 *
 * I/O is nghttp2's "mem" interface: bytes read from the socket are fed to
 * nghttp2_session_mem_recv, and what nghttp2_session_mem_send produces is
 * written out; what the socket does not take at once waits in a bounded
 * per-connection queue until poll says POLLOUT.
 */
#include "csi/grpc.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"

#define MAX_CONNS 64			/* the kubelet and two sidecars use a few */
#define MAX_STREAMS 16			/* concurrent calls per connection */
#define MAX_OUTQ (4u << 20)		/* bytes waiting for a slow reader */
#define MAX_PATH_LEN 256

struct stream {
	int32_t id;
	char path[MAX_PATH_LEN];
	int post;			/* :method POST */
	int grpc;			/* content-type application/grpc[+...|;...] */
	int bad_path;			/* :path too long */
	int too_big;			/* body over GRPC_MAX_MESSAGE */
	int answered;
	struct buf body;		/* the length-prefixed request */
	uint8_t *out;			/* the length-prefixed reply */
	size_t out_len, out_off;
	struct stream *prev, *next;	/* the connection's open streams */
};

struct conn {
	int fd;
	int slot;			/* in this turn's pollset, or -1 */
	nghttp2_session *h2;
	struct grpc_server *srv;
	uint8_t *outq;			/* written later: bytes the socket did not take */
	size_t outq_len, outq_off;
	/*
	 * Streams not closed yet: nghttp2_session_del does not call
	 * on_stream_close, so a connection that ends mid-call frees them here.
	 */
	struct stream *streams;
	struct conn *next;
};

struct grpc_server {
	int listen_fd;
	int listen_slot;
	grpc_handler_fn fn;
	void *ctx;
	struct conn *conns;
	int nconns;
	nghttp2_session_callbacks *cbs;
};

void grpc_percent_encode(const char *s, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	unsigned char c;

	/* The gRPC rule: bytes outside 0x20-0x7E, and '%' itself, become %XX. */
	for (; *s && o + 4 <= outlen; s++) {
		c = (unsigned char)*s;
		if (c >= 0x20 && c <= 0x7e && c != '%') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (outlen)
		out[o < outlen ? o : outlen - 1] = '\0';
}

/* A header field; nghttp2 copies the value, and takes the name as it is. */
static nghttp2_nv nv(const char *name, const char *value)
{
	nghttp2_nv h = {
		.name = (uint8_t *)(uintptr_t)name,
		.value = (uint8_t *)(uintptr_t)value,
		.namelen = strlen(name),
		.valuelen = strlen(value),
		.flags = NGHTTP2_NV_FLAG_NO_COPY_NAME,
	};

	return h;
}

static ssize_t read_reply(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len,
			  uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	struct stream *st = src->ptr;
	size_t n = st->out_len - st->out_off;
	nghttp2_nv trailer[1];

	if (n > len)
		n = len;
	memcpy(buf, st->out + st->out_off, n);
	st->out_off += n;
	if (st->out_off == st->out_len) {
		/* The stream ends with the trailers, not with this DATA frame. */
		*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		trailer[0] = nv("grpc-status", "0");
		if (nghttp2_submit_trailer(h2, id, trailer, 1) != 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	return (ssize_t)n;
}

/* The Trailers-Only answer: status and message in the one HEADERS frame. */
static int answer_error(nghttp2_session *h2, struct stream *st, int code, const char *msg)
{
	char status[12], enc[1024];
	nghttp2_nv hdrs[4];

	snprintf(status, sizeof(status), "%d", code);
	grpc_percent_encode(msg, enc, sizeof(enc));
	hdrs[0] = nv(":status", "200");
	hdrs[1] = nv("content-type", "application/grpc");
	hdrs[2] = nv("grpc-status", status);
	hdrs[3] = nv("grpc-message", enc);
	return nghttp2_submit_response(h2, st->id, hdrs, 4, NULL);
}

static int answer_ok(nghttp2_session *h2, struct stream *st, const uint8_t *reply, size_t len)
{
	nghttp2_nv hdrs[2];
	nghttp2_data_provider prd;

	st->out = malloc(len + 5);
	if (!st->out)
		return answer_error(h2, st, GRPC_RESOURCE_EXHAUSTED, "out of memory");
	st->out[0] = 0;		/* not compressed */
	st->out[1] = (uint8_t)(len >> 24);
	st->out[2] = (uint8_t)(len >> 16);
	st->out[3] = (uint8_t)(len >> 8);
	st->out[4] = (uint8_t)len;
	if (len)
		memcpy(st->out + 5, reply, len);
	st->out_len = len + 5;
	st->out_off = 0;
	prd.source.ptr = st;
	prd.read_callback = read_reply;
	hdrs[0] = nv(":status", "200");
	hdrs[1] = nv("content-type", "application/grpc");
	return nghttp2_submit_response(h2, st->id, hdrs, 2, &prd);
}

/* The client has sent everything: check the framing, call, answer. */
static int answer(struct conn *c, struct stream *st)
{
	nghttp2_nv not_grpc = nv(":status", "415");
	struct grpc_call call;
	const uint8_t *b = (const uint8_t *)st->body.data;
	size_t len = st->body.len;
	uint32_t mlen;
	int code, rc;

	st->answered = 1;
	if (!st->grpc)
		return nghttp2_submit_response(c->h2, st->id, &not_grpc, 1, NULL);
	if (!st->post || st->bad_path || st->path[0] != '/')
		return answer_error(c->h2, st, GRPC_UNIMPLEMENTED, "not a gRPC method call");
	if (st->too_big)
		return answer_error(c->h2, st, GRPC_RESOURCE_EXHAUSTED,
				    "request larger than 1 MiB");
	if (len < 5)
		return answer_error(c->h2, st, GRPC_INTERNAL, "request without a message");
	mlen = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4];
	if (b[0] != 0)
		return answer_error(c->h2, st, GRPC_UNIMPLEMENTED,
				    "compressed messages are not supported: send them uncompressed");
	if (mlen != len - 5)
		return answer_error(c->h2, st, GRPC_INTERNAL,
				    "malformed request: not exactly one length-prefixed message");
	memset(&call, 0, sizeof(call));
	call.path = st->path;
	call.req = b + 5;
	call.req_len = mlen;
	code = c->srv->fn(c->srv->ctx, &call);
	if (code == GRPC_OK)
		rc = answer_ok(c->h2, st, call.reply, call.reply_len);
	else
		rc = answer_error(c->h2, st, code, call.message[0] ? call.message : "failed");
	free(call.reply);
	return rc;
}

static void stream_free(struct stream *st)
{
	buf_cleanup(&st->body);
	free(st->out);
	free(st);
}

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame, void *ud)
{
	struct conn *c = ud;
	struct stream *st;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	st = calloc(1, sizeof(*st));
	if (!st)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;	/* resets the stream */
	st->id = frame->hd.stream_id;
	buf_init(&st->body, GRPC_MAX_MESSAGE + 5);
	if (nghttp2_session_set_stream_user_data(h2, st->id, st) != 0) {
		free(st);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	st->next = c->streams;
	if (c->streams)
		c->streams->prev = st;
	c->streams = st;
	return 0;
}

static int header_is(const uint8_t *name, size_t len, const char *want)
{
	return len == strlen(want) && memcmp(name, want, len) == 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *ud)
{
	struct stream *st;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	st = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
	if (!st)
		return 0;
	if (header_is(name, namelen, ":path")) {
		if (valuelen >= sizeof(st->path)) {
			st->bad_path = 1;
		} else {
			memcpy(st->path, value, valuelen);
			st->path[valuelen] = '\0';
		}
	} else if (header_is(name, namelen, ":method")) {
		st->post = valuelen == 4 && memcmp(value, "POST", 4) == 0;
	} else if (header_is(name, namelen, "content-type")) {
		/* application/grpc, application/grpc+proto, application/grpc;... */
		st->grpc = valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
			   (valuelen == 16 || value[16] == '+' || value[16] == ';');
	}
	return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data,
			 size_t len, void *ud)
{
	struct stream *st = nghttp2_session_get_stream_user_data(h2, id);

	/* Past the bound the rest is dropped: the answer says why. */
	if (st && !st->too_big && buf_append(&st->body, data, len) != 0)
		st->too_big = 1;
	return 0;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame, void *ud)
{
	struct stream *st;

	if ((frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS) ||
	    !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	st = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
	if (!st || st->answered)
		return 0;
	if (answer(ud, st) != 0)
		nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
	return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t error_code, void *ud)
{
	struct stream *st = nghttp2_session_get_stream_user_data(h2, id);
	struct conn *c = ud;

	if (!st)
		return 0;
	nghttp2_session_set_stream_user_data(h2, id, NULL);
	if (st->prev)
		st->prev->next = st->next;
	else
		c->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	stream_free(st);
	return 0;
}

struct grpc_server *grpc_server_new(int listen_fd, grpc_handler_fn fn, void *ctx)
{
	struct grpc_server *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	if (nghttp2_session_callbacks_new(&s->cbs) != 0) {
		free(s);
		return NULL;
	}
	nghttp2_session_callbacks_set_on_begin_headers_callback(s->cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(s->cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(s->cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(s->cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(s->cbs, on_stream_close);
	s->listen_fd = listen_fd;
	s->listen_slot = -1;
	s->fn = fn;
	s->ctx = ctx;
	return s;
}

static void conn_free(struct conn *c)
{
	struct stream *st, *next;

	nghttp2_session_del(c->h2);
	for (st = c->streams; st; st = next) {
		next = st->next;
		stream_free(st);
	}
	close(c->fd);
	free(c->outq);
	free(c);
}

void grpc_server_free(struct grpc_server *s)
{
	struct conn *c, *next;

	if (!s)
		return;
	for (c = s->conns; c; c = next) {
		next = c->next;
		conn_free(c);
	}
	nghttp2_session_callbacks_del(s->cbs);
	free(s);
}

/* Keep what the socket did not take; -1 when the reader is too far behind. */
static int queue_rest(struct conn *c, const uint8_t *p, size_t n)
{
	uint8_t *q;
	size_t have = c->outq_len - c->outq_off;

	if (have + n > MAX_OUTQ)
		return -1;
	q = malloc(have + n);
	if (!q)
		return -1;
	if (have)
		memcpy(q, c->outq + c->outq_off, have);
	memcpy(q + have, p, n);
	free(c->outq);
	c->outq = q;
	c->outq_len = have + n;
	c->outq_off = 0;
	return 0;
}

/* Write what is queued, then what nghttp2 has to send. 0, or -1 to close. */
static int conn_flush(struct conn *c)
{
	const uint8_t *data;
	ssize_t n, w;

	while (c->outq_off < c->outq_len) {
		w = send(c->fd, c->outq + c->outq_off, c->outq_len - c->outq_off, MSG_NOSIGNAL);
		if (w < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		c->outq_off += (size_t)w;
	}
	for (;;) {
		n = nghttp2_session_mem_send(c->h2, &data);
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		w = send(c->fd, data, (size_t)n, MSG_NOSIGNAL);
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		if (w < 0)
			w = 0;
		if (w < n)
			return queue_rest(c, data + w, (size_t)(n - w));
	}
}

static void conn_accept(struct grpc_server *s)
{
	nghttp2_settings_entry settings[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS },
	};
	struct conn *c;
	int fd;

	fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (s->nconns >= MAX_CONNS) {
		log_once(LOG_WARNING, "more than %d gRPC connections at once: refusing more",
			 MAX_CONNS);
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->srv = s;
	c->slot = -1;
	if (nghttp2_session_server_new(&c->h2, s->cbs, c) != 0) {
		free(c);
		close(fd);
		return;
	}
	if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, settings, 1) != 0 ||
	    conn_flush(c) != 0) {
		conn_free(c);
		return;
	}
	c->next = s->conns;
	s->conns = c;
	s->nconns++;
}

/* Read what is there and answer it. 0, or -1 to close. */
static int conn_read(struct conn *c)
{
	uint8_t buf[16384];
	ssize_t n;

	for (;;) {
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n == 0)
			return -1;
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		if (nghttp2_session_mem_recv(c->h2, buf, (size_t)n) < 0)
			return -1;
		if (conn_flush(c) != 0)
			return -1;
	}
}

int grpc_poll_fds(struct grpc_server *s, struct pollset *ps)
{
	struct conn *c;
	short ev;

	s->listen_slot = pollset_add(ps, s->listen_fd, POLLIN);
	if (s->listen_slot < 0)
		return -ENOMEM;
	for (c = s->conns; c; c = c->next) {
		ev = POLLIN;
		if (c->outq_off < c->outq_len || nghttp2_session_want_write(c->h2))
			ev |= POLLOUT;
		c->slot = pollset_add(ps, c->fd, ev);
		if (c->slot < 0)
			return -ENOMEM;
	}
	return 0;
}

void grpc_dispatch(struct grpc_server *s, const struct pollset *ps)
{
	struct conn **pp, *c;
	short re;
	int bad;

	for (pp = &s->conns; (c = *pp);) {
		re = pollset_revents(ps, c->slot);
		c->slot = -1;
		bad = 0;
		if (re & (POLLIN | POLLHUP | POLLERR))
			bad = conn_read(c) != 0;
		if (!bad && (re & POLLOUT))
			bad = conn_flush(c) != 0;
		if (!bad && !nghttp2_session_want_read(c->h2) &&
		    !nghttp2_session_want_write(c->h2) && c->outq_off == c->outq_len)
			bad = 1;	/* GOAWAY exchanged: done */
		if (bad) {
			*pp = c->next;
			s->nconns--;
			conn_free(c);
			continue;
		}
		pp = &c->next;
	}
	if (pollset_revents(ps, s->listen_slot) & POLLIN)
		conn_accept(s);
	s->listen_slot = -1;
}
