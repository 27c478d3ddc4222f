#include "fakesrv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_REQUESTS 256
#define MAX_CONNS 64
#define REQ_MAX (64 * 1024)

struct answer {
	char *raw;
	size_t len;
	struct fakesrv_opts o;
	struct answer *next;
};

struct fakesrv {
	int lfd;
	char url[64];
	pthread_t thread;
	pthread_t conns[MAX_CONNS];	/* one thread per connection (keep-alive) */
	int nconns;			/* server thread only */
	pthread_mutex_t lock;	/* guards everything below */
	int stop;
	struct answer *head, *tail;
	char *requests[MAX_REQUESTS];
	int nrequests;
};

static int stopping(struct fakesrv *fs)
{
	int s;

	pthread_mutex_lock(&fs->lock);
	s = fs->stop;
	pthread_mutex_unlock(&fs->lock);
	return s;
}

/* Sleep ms in small steps; 0, or -1 when the server is stopping. */
static int nap(struct fakesrv *fs, long ms)
{
	while (ms > 0) {
		long step = ms < 20 ? ms : 20;
		struct timespec ts = { 0, step * 1000000L };

		if (stopping(fs))
			return -1;
		nanosleep(&ts, NULL);
		ms -= step;
	}
	return stopping(fs) ? -1 : 0;
}

/* Wait until fd is readable; 1, or 0 when the server is stopping. */
static int wait_readable(struct fakesrv *fs, int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (!stopping(fs)) {
		if (poll(&p, 1, 50) > 0)
			return 1;
	}
	return 0;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Write one answer as its options say. 0, or -1 when the peer went away. */
static int write_answer(struct fakesrv *fs, int fd, const struct answer *a)
{
	size_t off = 0, chunk;

	if (a->o.delay_ms && nap(fs, a->o.delay_ms))
		return -1;
	while (off < a->len) {
		chunk = a->len - off;
		if (a->o.stall_ms && off < a->o.stall_after && chunk > a->o.stall_after - off)
			chunk = a->o.stall_after - off;
		/* A trickle: 20 writes a second. */
		if (a->o.rate > 0 && chunk > (size_t)(a->o.rate / 20 ? a->o.rate / 20 : 1))
			chunk = (size_t)(a->o.rate / 20 ? a->o.rate / 20 : 1);
		if (send_all(fd, a->raw + off, chunk))
			return -1;
		off += chunk;
		if (a->o.stall_ms && off == a->o.stall_after && nap(fs, a->o.stall_ms))
			return -1;
		if (a->o.rate > 0 && off < a->len && nap(fs, 50))
			return -1;
	}
	return 0;
}

/* Read one request; returns its header block (malloc'd), or NULL at EOF. */
static char *read_request(struct fakesrv *fs, int fd)
{
	char *buf = malloc(REQ_MAX + 1), *end;
	size_t n = 0, body = 0, need;
	const char *cl;

	if (!buf)
		return NULL;
	for (;;) {
		ssize_t r;

		buf[n] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end)
			break;
		if (n == REQ_MAX || !wait_readable(fs, fd))
			goto fail;
		r = recv(fd, buf + n, REQ_MAX - n, 0);
		if (r <= 0)
			goto fail;
		n += (size_t)r;
	}
	end += 4;
	for (cl = buf; (cl = strcasestr(cl, "\r\ncontent-length:")) && cl < end; cl++)
		body = strtoul(cl + 17, NULL, 10);
	/* Read (and drop) the body. */
	need = (size_t)(end - buf) + body;
	while (n < need) {
		char sink[4096];
		size_t want = need - n < sizeof(sink) ? need - n : sizeof(sink);
		ssize_t r;

		if (!wait_readable(fs, fd))
			goto fail;
		r = recv(fd, sink, want, 0);
		if (r <= 0)
			goto fail;
		n += (size_t)r;
	}
	*end = '\0';
	return buf;
fail:
	free(buf);
	return NULL;
}

static void serve(struct fakesrv *fs, int fd)
{
	static const char none[] = "HTTP/1.1 500 Internal Server Error\r\n"
				   "Content-Length: 0\r\n\r\n";
	struct answer *a;
	char *req;
	int close_after;

	while ((req = read_request(fs, fd))) {
		pthread_mutex_lock(&fs->lock);
		if (fs->nrequests < MAX_REQUESTS)
			fs->requests[fs->nrequests++] = req;
		else
			free(req);
		a = fs->head;
		if (a) {
			fs->head = a->next;
			if (!fs->head)
				fs->tail = NULL;
		}
		pthread_mutex_unlock(&fs->lock);
		if (a) {
			int rc = write_answer(fs, fd, a);

			close_after = a->o.close || rc;
			free(a->raw);
			free(a);
		} else {
			close_after = send_all(fd, none, sizeof(none) - 1) != 0;
		}
		if (close_after)
			return;
	}
}

struct conn {
	struct fakesrv *fs;
	int fd;
};

static void *conn_main(void *arg)
{
	struct conn *c = arg;

	serve(c->fs, c->fd);
	close(c->fd);
	free(c);
	return NULL;
}

static void *server_main(void *arg)
{
	struct fakesrv *fs = arg;
	int i;

	while (wait_readable(fs, fs->lfd)) {
		int fd = accept(fs->lfd, NULL, NULL);
		struct conn *c;

		if (fd < 0)
			continue;
		c = malloc(sizeof(*c));
		if (!c || fs->nconns == MAX_CONNS) {
			free(c);
			close(fd);
			continue;
		}
		c->fs = fs;
		c->fd = fd;
		if (pthread_create(&fs->conns[fs->nconns], NULL, conn_main, c) != 0) {
			free(c);
			close(fd);
			continue;
		}
		fs->nconns++;
	}
	for (i = 0; i < fs->nconns; i++)
		pthread_join(fs->conns[i], NULL);
	return NULL;
}

struct fakesrv *fakesrv_start(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
	socklen_t sl = sizeof(sa);
	struct fakesrv *fs = calloc(1, sizeof(*fs));

	if (!fs)
		return NULL;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fs->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fs->lfd < 0 || bind(fs->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fs->lfd, 16) != 0 || getsockname(fs->lfd, (struct sockaddr *)&sa, &sl) != 0) {
		fprintf(stderr, "fakesrv: cannot listen on 127.0.0.1: %s\n", strerror(errno));
		if (fs->lfd >= 0)
			close(fs->lfd);
		free(fs);
		return NULL;
	}
	snprintf(fs->url, sizeof(fs->url), "http://127.0.0.1:%u", ntohs(sa.sin_port));
	pthread_mutex_init(&fs->lock, NULL);
	if (pthread_create(&fs->thread, NULL, server_main, fs) != 0) {
		close(fs->lfd);
		pthread_mutex_destroy(&fs->lock);
		free(fs);
		return NULL;
	}
	return fs;
}

const char *fakesrv_url(const struct fakesrv *fs)
{
	return fs->url;
}

void fakesrv_push(struct fakesrv *fs, const char *raw, long len, const struct fakesrv_opts *o)
{
	struct answer *a = calloc(1, sizeof(*a));

	if (!a)
		abort();
	a->len = len < 0 ? strlen(raw) : (size_t)len;
	a->raw = malloc(a->len ? a->len : 1);
	if (!a->raw)
		abort();
	memcpy(a->raw, raw, a->len);
	if (o)
		a->o = *o;
	pthread_mutex_lock(&fs->lock);
	if (fs->tail)
		fs->tail->next = a;
	else
		fs->head = a;
	fs->tail = a;
	pthread_mutex_unlock(&fs->lock);
}

void fakesrv_pushf(struct fakesrv *fs, const struct fakesrv_opts *o, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	fakesrv_push(fs, s, n, o);
	free(s);
}

int fakesrv_nrequests(struct fakesrv *fs)
{
	int n;

	pthread_mutex_lock(&fs->lock);
	n = fs->nrequests;
	pthread_mutex_unlock(&fs->lock);
	return n;
}

char *fakesrv_request(struct fakesrv *fs, int i)
{
	char *r = NULL;

	pthread_mutex_lock(&fs->lock);
	if (i >= 0 && i < fs->nrequests)
		r = strdup(fs->requests[i]);
	pthread_mutex_unlock(&fs->lock);
	return r;
}

void fakesrv_clear(struct fakesrv *fs)
{
	struct answer *a, *next;

	pthread_mutex_lock(&fs->lock);
	a = fs->head;
	fs->head = fs->tail = NULL;
	pthread_mutex_unlock(&fs->lock);
	for (; a; a = next) {
		next = a->next;
		free(a->raw);
		free(a);
	}
}

void fakesrv_stop(struct fakesrv *fs)
{
	int i;

	if (!fs)
		return;
	pthread_mutex_lock(&fs->lock);
	fs->stop = 1;
	pthread_mutex_unlock(&fs->lock);
	pthread_join(fs->thread, NULL);
	close(fs->lfd);
	fakesrv_clear(fs);
	for (i = 0; i < fs->nrequests; i++)
		free(fs->requests[i]);
	pthread_mutex_destroy(&fs->lock);
	free(fs);
}
