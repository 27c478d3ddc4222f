/*
 * The custom I/O hooks that make a FUSE connection survive its server.
 *
 * The state file (a memfd the node plugin keeps, mapped shared) holds the
 * kernel's INIT request and one slot per request in flight. Slot states go
 * FREE -> FILLING (claimed by the reading thread) -> FULL (a complete copy)
 * -> FREE (after the answer was written). A server that dies leaves FULL
 * slots for exactly the requests the kernel still waits on (and, in a window
 * of a few instructions, one answered request whose slot was not freed yet:
 * replaying it costs an answer the kernel discards). FILLING slots of a dead
 * server are dropped.
 *
 * On Linux 6.9 or later a successor does not replay the slots: it has the
 * kernel send every unanswered request again (FUSE_NOTIFY_RESEND, which sets
 * bit 63 of the request's unique), which also covers a request a thread of
 * the dead server read after it was killed, before it could copy it. The
 * slots still count replays: a request handed to a server before is answered
 * EIO instead of resent, so a request that kills its server kills one more
 * at most.
 *
 * The root's directory handles: the FUSE operations' fh is a pointer, and a
 * successor's pointers can equal its predecessor's (ASan's allocator, or a
 * process without ASLR, lays the heap out the same way in every run). Were
 * they handed to the kernel as they are, the RELEASEDIR of a handle opened
 * before the restart would release the new server's equal handle, and the
 * next READDIR on that one would get ESTALE. So a successor gives the kernel
 * handles of its own, which no other server can have given out (bit 63, never
 * set in a user-space pointer like the first server's; the generation in
 * bits 32-55; a count below), and maps them back to the operations' fh.
 *
 * Invariants: a successor hands libfuse nothing before the replayed INIT has
 * been answered (libfuse refuses every other request until then); an inode
 * number below this server's base is never passed to the FUSE operations,
 * and neither is a root directory handle this server did not give out.
 */
#include "fs/resume.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/handoff.h"
#include "core/log.h"
#include "fs/initext.h"
#include "fs/inode.h"
#include "fs/readgate.h"
#include "fs/resume_i.h"

#define GENERATION_SHIFT 40		/* 2^40 inode numbers per server */
#define ROOT_FH_TAG (1ULL << 63)	/* a successor's root handle, never a pointer */
/* Linux 6.9's FUSE_NOTIFY_RESEND and the bit it sets in a resent request's unique. */
#define NOTIFY_RESEND 7
#define UNIQUE_RESEND (1ULL << 63)

_Static_assert(sizeof(struct state) <= HANDOFF_STATE_SIZE, "state file too small");

struct replay {
	uint8_t *data;
	size_t len;
};

/* A request the kernel resends, and how often a server was handed it before. */
struct resent {
	uint64_t unique;		/* as resent: UNIQUE_RESEND set */
	uint32_t replays;
};

/* A root directory handle of this server: the kernel's and the FUSE operations'. */
struct root_handle {
	uint64_t id;
	uint64_t fh;
};

/* One volume per process (irsafs serve runs one irsafs per volume). */
static struct {
	struct state *st;
	int fd;				/* the FUSE connection */
	int conn;			/* to the node plugin, held while we serve */
	size_t readahead_kb;		/* --kernel-readahead, for the plugin to set */
	uint64_t base;			/* this server's first inode number; 0: first server */
	uint32_t generation;		/* of this server */
	struct resent *resent;		/* set before the workers start, read-only after */
	size_t nresent;
	pthread_mutex_t lock;		/* guards the fields below */
	pthread_cond_t init_done;
	struct replay *queue;		/* replayed before reading the kernel */
	size_t nqueue, qhead;
	int init_gate;			/* a replayed INIT is queued or not answered yet */
	int init_handed;		/* a worker has the replayed INIT */
	int fake_init;			/* the INIT's answer is to be swallowed */
	uint64_t init_unique;
	struct root_handle *roots;	/* root directory handles this server gave out */
	size_t nroot, caproot;
	uint32_t root_count;		/* the last one's count */
	uint64_t *opendirs;		/* uniques of OPENDIRs of the root in flight */
	size_t nopen, capopen;
	int stale_logged;
} rs = { .lock = PTHREAD_MUTEX_INITIALIZER, .init_done = PTHREAD_COND_INITIALIZER, .fd = -1,
	.conn = -1 };

static __thread unsigned slot_hint;

/* How often a request the kernel resends was handed to a server before. */
static uint32_t resent_replays(uint64_t unique)
{
	size_t i;

	if (!(unique & UNIQUE_RESEND))
		return 0;
	for (i = 0; i < rs.nresent; i++)
		if (rs.resent[i].unique == unique)
			return rs.resent[i].replays;
	return 0;
}

static int load32(const uint32_t *p)
{
	return (int)__atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/* Keep a copy of a request just read; requests without an answer are not kept. */
static void slot_track(const uint8_t *buf, size_t n)
{
	struct fuse_in_header in;
	struct slot *s;
	uint32_t want;
	unsigned i, k;

	if (n < sizeof(in))
		return;
	memcpy(&in, buf, sizeof(in));
	if (in.opcode == FUSE_FORGET || in.opcode == FUSE_BATCH_FORGET || in.opcode == FUSE_INTERRUPT)
		return;
	if (in.opcode == FUSE_INIT) {
		/* The kernel sends nothing else until INIT is answered: no race here. */
		rs.init_unique = in.unique;
		if (n <= INIT_MAX) {
			memcpy(rs.st->init, buf, n);
			rs.st->init_replied = 0;
			__atomic_store_n(&rs.st->init_len, (uint32_t)n, __ATOMIC_RELEASE);
		}
		return;
	}
	for (k = 0; k < SLOTS; k++) {
		i = (slot_hint + k) % SLOTS;
		s = &rs.st->slots[i];
		want = SLOT_FREE;
		if (!__atomic_compare_exchange_n(&s->state, &want, SLOT_FILLING, 0, __ATOMIC_ACQUIRE,
						 __ATOMIC_RELAXED))
			continue;
		s->unique = in.unique;
		s->total = (uint32_t)n;
		s->len = (uint32_t)(n < SLOT_DATA ? n : SLOT_DATA);
		s->replays = resent_replays(in.unique);
		memcpy(s->data, buf, s->len);
		__atomic_store_n(&s->state, SLOT_FULL, __ATOMIC_RELEASE);
		slot_hint = i;
		return;
	}
	log_once(LOG_NOTICE, "more than %d requests in flight: the ones over are not kept for a "
		 "restart", SLOTS);
}

/* The answer to unique is out: free its slot. */
static void slot_release(uint64_t unique)
{
	struct slot *s;
	unsigned i, k;

	for (k = 0; k < SLOTS; k++) {
		i = (slot_hint + k) % SLOTS;
		s = &rs.st->slots[i];
		if (load32(&s->state) == SLOT_FULL && s->unique == unique) {
			__atomic_store_n(&s->state, SLOT_FREE, __ATOMIC_RELEASE);
			return;
		}
	}
}

/*
 * INIT is answered (and has reset the mount's read-ahead): ask the plugin to
 * set --kernel-readahead, which this unprivileged process may not write to
 * /sys itself.
 */
static void ask_readahead(void)
{
	char msg[64];
	int n;

	if (rs.conn < 0 || !rs.readahead_kb)
		return;
	n = snprintf(msg, sizeof(msg), "readahead_kb=%zu\n", rs.readahead_kb);
	if (send(rs.conn, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n)
		log_msg(LOG_INFO, "cannot ask irsafs-csi to set the kernel read-ahead: %s",
			strerror(errno));
}

/* Answer a request ourselves (the FUSE operations never see it). */
static void answer(uint64_t unique, int err)
{
	struct fuse_out_header out = {
		.len = sizeof(out),
		.error = -err,
		.unique = unique,
	};

	/* ENOENT: the request was interrupted meanwhile; nothing to do. */
	if (write(rs.fd, &out, sizeof(out)) < 0 && errno != ENOENT)
		log_once(LOG_WARNING, "cannot answer a request on the FUSE connection: %s",
			 strerror(errno));
	slot_release(unique);
}

static int is_old(uint64_t nodeid)
{
	return resume_is_old(nodeid, rs.base);
}

static int push(uint64_t **a, size_t *n, size_t *cap, uint64_t v)
{
	uint64_t *p;

	if (*n == *cap) {
		p = realloc(*a, (*cap ? *cap * 2 : 16) * sizeof(*p));
		if (!p)
			return -1;
		*a = p;
		*cap = *cap ? *cap * 2 : 16;
	}
	(*a)[(*n)++] = v;
	return 0;
}

/* Remove v from a; 1 if it was there. */
static int take(uint64_t *a, size_t *n, uint64_t v)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (a[i] == v) {
			a[i] = a[--*n];
			return 1;
		}
	return 0;
}

/* Record a root directory handle with fh for the kernel; its id, or 0 (out of memory). */
static uint64_t root_add_locked(uint64_t fh)
{
	struct root_handle *p;
	size_t cap;

	if (rs.nroot == rs.caproot) {
		cap = rs.caproot ? rs.caproot * 2 : 16;
		p = realloc(rs.roots, cap * sizeof(*p));
		if (!p)
			return 0;
		rs.roots = p;
		rs.caproot = cap;
	}
	rs.roots[rs.nroot].id = ROOT_FH_TAG | (uint64_t)rs.generation << 32 | ++rs.root_count;
	rs.roots[rs.nroot].fh = fh;
	return rs.roots[rs.nroot++].id;
}

/* The operations' fh of the root handle id into *fh (and forget it when drop); 0 if unknown. */
static int root_find_locked(uint64_t id, uint64_t *fh, int drop)
{
	size_t i;

	for (i = 0; i < rs.nroot; i++)
		if (rs.roots[i].id == id) {
			*fh = rs.roots[i].fh;
			if (drop)
				rs.roots[i] = rs.roots[--rs.nroot];
			return 1;
		}
	return 0;
}

/*
 * Closing, flushing and syncing have nothing to do on a read-only file
 * system: for a predecessor's file they succeed, so close(2) does not fail.
 */
static int is_letting_go(uint32_t opcode)
{
	return opcode == FUSE_RELEASE || opcode == FUSE_RELEASEDIR || opcode == FUSE_FLUSH ||
	       opcode == FUSE_FSYNC || opcode == FUSE_FSYNCDIR;
}

static void note_stale(void)
{
	if (__atomic_exchange_n(&rs.stale_logged, 1, __ATOMIC_RELAXED))
		return;
	log_msg(LOG_NOTICE, "a file or directory opened before the restart was used: answered "
		"ESTALE (open it again; paths resolve afresh)");
}

/*
 * Decide about one request before libfuse sees it: 1 to pass it on, 0 when
 * it was answered or dropped here. *n may shrink (BATCH_FORGET).
 */
static int filter(uint8_t *buf, size_t *n)
{
	struct fuse_in_header in;
	uint64_t id, fh;
	int pass;

	if (!rs.base || *n < sizeof(in))
		return 1;
	memcpy(&in, buf, sizeof(in));
	switch (in.opcode) {
	case FUSE_INIT:
	case FUSE_INTERRUPT:
	case FUSE_DESTROY:
	case FUSE_NOTIFY_REPLY:
		return 1;
	case FUSE_FORGET:
		return !is_old(in.nodeid);
	case FUSE_BATCH_FORGET:
		*n = resume_forget_filter(buf, *n, rs.base);
		return *n != 0;
	default:
		break;
	}
	if (is_old(in.nodeid)) {
		if (!is_letting_go(in.opcode))
			note_stale();
		answer(in.unique, is_letting_go(in.opcode) ? 0 : ESTALE);
		return 0;
	}
	if (in.nodeid != FUSE_ROOT_ID)
		return 1;
	if (in.opcode == FUSE_OPENDIR) {
		pthread_mutex_lock(&rs.lock);
		push(&rs.opendirs, &rs.nopen, &rs.capopen, in.unique);
		pthread_mutex_unlock(&rs.lock);
		return 1;
	}
	if (in.opcode != FUSE_READDIR && in.opcode != FUSE_READDIRPLUS &&
	    in.opcode != FUSE_RELEASEDIR && in.opcode != FUSE_FSYNCDIR)
		return 1;
	if (*n < sizeof(in) + sizeof(fh))
		return 1;
	/* fuse_read_in, fuse_release_in and fuse_fsync_in all start with fh. */
	memcpy(&id, buf + sizeof(in), sizeof(id));
	pthread_mutex_lock(&rs.lock);
	pass = root_find_locked(id, &fh, in.opcode == FUSE_RELEASEDIR);
	pthread_mutex_unlock(&rs.lock);
	if (pass) {
		memcpy(buf + sizeof(in), &fh, sizeof(fh));
		return 1;
	}
	if (!is_letting_go(in.opcode))
		note_stale();
	answer(in.unique, is_letting_go(in.opcode) ? 0 : ESTALE);
	return 0;
}

/* The next request to replay into buf, or 0 when there is none (read the kernel). */
static ssize_t next_replay(uint8_t *buf, size_t len)
{
	struct replay *r;
	ssize_t n = 0;

	pthread_mutex_lock(&rs.lock);
	/* Nothing but the INIT until libfuse has answered it. */
	while (rs.init_gate && rs.init_handed)
		pthread_cond_wait(&rs.init_done, &rs.lock);
	if (rs.qhead < rs.nqueue) {
		r = &rs.queue[rs.qhead++];
		if (r->len <= len) {
			memcpy(buf, r->data, r->len);
			n = (ssize_t)r->len;
		}
		if (rs.init_gate && rs.qhead == 1)
			rs.init_handed = 1;
		free(r->data);
		r->data = NULL;
	}
	pthread_mutex_unlock(&rs.lock);
	return n;
}

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	size_t n;
	ssize_t r;

	for (;;) {
		r = next_replay(buf, len);
		if (r == 0) {
			readgate_pass();
			r = read(fd, buf, len);
			if (r < 0)
				return -1;
			slot_track(buf, (size_t)r);
		}
		n = (size_t)r;
		initext_request(buf, n);
		if (filter(buf, &n))
			return (ssize_t)n;
	}
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct initext_copy init;
	const struct fuse_out_header *out;
	uint64_t unique, fh, id = 0;
	struct iovec mine[2];
	uint8_t arg[64];		/* a copy of fuse_open_out, with our id */
	ssize_t n;
	int err, i, opendir = 0, fake;
	size_t total = 0;

	iov = initext_reply(iov, count, &init);	/* first: a replayed INIT's answer too */
	out = iov[0].iov_base;
	unique = out->unique;
	/* Set before any worker runs; cleared once, here, under the lock. */
	if (unique && unique == rs.init_unique && __atomic_load_n(&rs.init_gate, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&rs.lock);
		fake = rs.fake_init;
		rs.fake_init = 0;
		__atomic_store_n(&rs.init_gate, 0, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&rs.init_done);
		pthread_mutex_unlock(&rs.lock);
		if (out->error)
			log_msg(LOG_ERR, "cannot resume: libfuse refused the saved INIT (%s)",
				strerror(-out->error));
		else if (fake)
			ask_readahead();
		if (fake) {
			/* The kernel had its answer from the first server: swallow this one. */
			for (i = 0; i < count; i++)
				total += iov[i].iov_len;
			return (ssize_t)total;
		}
	}
	if (rs.base && unique && rs.nopen) {
		pthread_mutex_lock(&rs.lock);
		opendir = take(rs.opendirs, &rs.nopen, unique);
		/* Recorded before the kernel has it: its READDIR may come at once. */
		if (opendir && out->error == 0 && count == 2 && iov[1].iov_len >= sizeof(fh) &&
		    iov[1].iov_len <= sizeof(arg)) {
			memcpy(arg, iov[1].iov_base, iov[1].iov_len);
			memcpy(&fh, arg, sizeof(fh));	/* fuse_open_out.fh */
			id = root_add_locked(fh);
		}
		pthread_mutex_unlock(&rs.lock);
		/* Unrecorded (out of memory, a reply unlike libfuse's): unknown, so ESTALE. */
		if (id) {
			memcpy(arg, &id, sizeof(id));
			mine[0] = iov[0];
			mine[1].iov_base = arg;
			mine[1].iov_len = iov[1].iov_len;
			iov = mine;
		}
	}
	n = writev(fd, iov, count);
	err = errno;
	if (n < 0 && id) {
		/* The kernel never got it (an interrupted OPENDIR): no RELEASEDIR will come. */
		pthread_mutex_lock(&rs.lock);
		root_find_locked(id, &fh, 1);
		pthread_mutex_unlock(&rs.lock);
	}
	if (unique) {
		if (unique == rs.init_unique && n >= 0 && !rs.st->init_replied) {
			rs.st->init_replied = 1;
			ask_readahead();
		}
		slot_release(unique);
	}
	errno = err;
	return n;
}

static int queue_add(const uint8_t *data, size_t len)
{
	struct replay *q;
	uint8_t *copy = malloc(len);

	q = copy ? realloc(rs.queue, (rs.nqueue + 1) * sizeof(*q)) : NULL;
	if (!q) {
		free(copy);
		return -1;
	}
	memcpy(copy, data, len);
	rs.queue = q;
	rs.queue[rs.nqueue].data = copy;
	rs.queue[rs.nqueue].len = len;
	rs.nqueue++;
	return 0;
}

/*
 * Ask the kernel to send again every request a server read and did not
 * answer (Linux 6.9 or later; older kernels refuse the notification): those
 * in slots, and those a thread of a dying server read after the SIGKILL, when
 * it cannot copy them any more. 1 when the kernel does.
 */
static int kernel_resend(void)
{
	struct fuse_out_header out = {
		.len = sizeof(out),
		.error = NOTIFY_RESEND,
	};

	return write(rs.fd, &out, sizeof(out)) == (ssize_t)sizeof(out);
}

/*
 * Read the predecessor's state: replay its INIT, and have the requests it
 * left unanswered sent again, by the kernel where it can, else from the
 * slots. A request handed to a server once already is answered EIO instead.
 * Runs before any worker thread exists.
 */
static void take_over(unsigned generation)
{
	struct state *st = rs.st;
	unsigned i, replayed = 0, failed = 0;
	uint32_t init_len = st->init_len;
	int asked = 0, resend = 0, init_ok = init_len && resume_init_usable(st->init, init_len);

	/* Answered before the kernel requeues what is in flight, so it is not resent. */
	for (i = 0; i < SLOTS; i++) {
		struct slot *s = &st->slots[i];

		if (s->state != SLOT_FULL)
			s->state = SLOT_FREE;	/* FILLING, or not a state at all */
		if (s->state == SLOT_FULL && (s->replays >= 1 || s->len < sizeof(struct fuse_in_header))) {
			failed++;
			answer(s->unique, EIO);
		}
	}
	/*
	 * Not while an INIT is saved but not known answered: the kernel may have had
	 * its answer (the server died between writing it and noting it), and would
	 * then resend nothing, leaving libfuse without an INIT. The saved one is
	 * replayed instead, answered either way, and no other request can be in
	 * flight before the kernel has its answer.
	 */
	if (!init_len || st->init_replied) {
		asked = 1;
		resend = kernel_resend();
	}
	if (resend)
		rs.resent = calloc(SLOTS, sizeof(*rs.resent));
	if (init_len && !init_ok)
		log_msg(LOG_ERR, "the takeover state's INIT is damaged (%u bytes): the kernel's "
			"requests are refused with EIO; unmount the volume and publish it again",
			init_len);
	if (init_ok) {
		struct fuse_in_header ih;

		memcpy(&ih, st->init, sizeof(ih));
		rs.init_unique = ih.unique;
		rs.fake_init = st->init_replied != 0;
		rs.init_gate = 1;
		if (queue_add(st->init, init_len) != 0) {
			log_msg(LOG_ERR, "out of memory");
			rs.fake_init = rs.init_gate = 0;
		}
	}
	for (i = 0; i < SLOTS; i++) {
		struct slot *s = &st->slots[i];

		if (s->state != SLOT_FULL)
			continue;
		if (resend) {
			/* Its copy comes back from the kernel, counted by slot_track. */
			if (rs.resent) {
				rs.resent[rs.nresent].unique = s->unique | UNIQUE_RESEND;
				rs.resent[rs.nresent++].replays = s->replays + 1;
			}
			__atomic_store_n(&s->state, SLOT_FREE, __ATOMIC_RELEASE);
			replayed++;
			continue;
		}
		if (!resume_slot_replayable(s) || queue_add(s->data, s->len) != 0) {
			failed++;
			answer(s->unique, EIO);
			continue;
		}
		s->replays++;
		replayed++;
	}
	log_msg(LOG_NOTICE, "taking over from server %u of this volume: %s; %u request%s in "
		"flight replayed%s, %u answered EIO; files opened before now answer ESTALE",
		st->generation, rs.fake_init ? "the kernel's INIT replayed" :
		rs.init_gate ? "the kernel's unanswered INIT answered" :
		"no INIT yet", replayed, replayed == 1 ? "" : "s",
		resend ? " by the kernel (and any a dying thread read)" : "", failed);
	if (asked && !resend)
		log_msg(LOG_INFO, "this kernel cannot resend requests (FUSE_NOTIFY_RESEND, Linux "
			"6.9): a request a thread of the dead server read as it died is lost");
	st->generation = generation;
}

/* "key=N" in a comma-separated list; -1 when absent or not a number. */
static long env_num(const char *env, const char *key)
{
	size_t klen = strlen(key);
	const char *p = env;
	char *end;
	long v;

	while (p && *p) {
		if (!strncmp(p, key, klen) && p[klen] == '=') {
			v = strtol(p + klen + 1, &end, 10);
			return end != p + klen + 1 && (*end == ',' || !*end) && v >= 0 ? v : -1;
		}
		p = strchr(p, ',');
		if (p)
			p++;
	}
	return -1;
}

int resume_session_mount(struct irsafs *fs, struct fuse_session *se, const char *mountpoint)
{
	static const struct fuse_custom_io io = { .read = io_read, .writev = io_writev };
	const char *env = getenv(RESUME_ENV);
	long state_fd, conn_fd, ready_fd, generation;
	char *end, copy[128];
	struct stat sb;
	void *map;
	long fd;

	if (!env)
		return initext_session_mount(se, mountpoint);
	snprintf(copy, sizeof(copy), "%s", env);
	unsetenv(RESUME_ENV);	/* for no command this process may start */
	state_fd = env_num(copy, "state");
	conn_fd = env_num(copy, "conn");
	ready_fd = env_num(copy, "ready");
	generation = env_num(copy, "generation");
	fd = strncmp(mountpoint, "/dev/fd/", 8) ? -1 : strtol(mountpoint + 8, &end, 10);
	if (fd < 0 || *end || state_fd < 0 || generation < 1 || generation > 0xffffff ||
	    fcntl((int)fd, F_GETFD) < 0) {
		log_msg(LOG_ERR, "%s is malformed (\"%s\", mountpoint %s): it is set by irsafs "
			"serve, not by hand", RESUME_ENV, copy, mountpoint);
		return -1;
	}
	if (fstat((int)state_fd, &sb) != 0 || (size_t)sb.st_size < sizeof(struct state)) {
		log_msg(LOG_ERR, "the volume's state file is missing or too small");
		return -1;
	}
	map = mmap(NULL, sizeof(struct state), PROT_READ | PROT_WRITE, MAP_SHARED, (int)state_fd, 0);
	close((int)state_fd);
	if (map == MAP_FAILED) {
		log_msg(LOG_ERR, "cannot map the volume's state file: %s", strerror(errno));
		return -1;
	}
	rs.st = map;
	rs.fd = (int)fd;
	if (conn_fd >= 0)
		fcntl((int)conn_fd, F_SETFD, FD_CLOEXEC);	/* held until we exit */
	rs.conn = (int)conn_fd;
	rs.readahead_kb = fs->cfg.kernel_readahead >> 10;
	/* The plugin sets it (ask_readahead): fs_tune_readahead has nothing to do. */
	fs->readahead_tuned = 1;
	if (rs.st->magic != STATE_MAGIC) {
		memset(rs.st, 0, sizeof(*rs.st));
		rs.st->magic = STATE_MAGIC;
		rs.st->generation = (uint32_t)generation;
	} else if (generation > 1) {
		rs.base = (uint64_t)(generation - 1) << GENERATION_SHIFT;
		rs.generation = (uint32_t)generation;
		inode_table_set_first_ino(fs->inodes, rs.base + 2);
		take_over((unsigned)generation);
	}
	if (fuse_session_custom_io(se, &io, (int)fd) != 0) {
		log_msg(LOG_ERR, "cannot attach to the FUSE connection");
		return -1;
	}
	if (ready_fd >= 0) {
		if (write((int)ready_fd, "r", 1) < 0)
			log_msg(LOG_DEBUG, "cannot tell irsafs serve we are ready: %s",
				strerror(errno));
		close((int)ready_fd);
	}
	return 0;
}
