/*
 * fs/resume: the root directory handles of a server that took a volume over,
 * driven through the real custom I/O hooks, with a SOCK_SEQPACKET socketpair
 * standing in for /dev/fuse and this program playing the kernel. Servers 1
 * and 2 are forked children whose FUSE operations give every opendir the same
 * fh, as two runs of irsafs do when their heaps are laid out alike (ASan's
 * allocator, no ASLR): the kernel's handle from server 1 must neither read
 * nor release server 2's. A damaged state file (slots whose lengths do not
 * hold together, an INIT cut short) must not crash the successor or be
 * replayed.
 */
#include "fs/resume.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/handoff.h"
#include "fs/inode.h"
#include "fs/resume_i.h"
#include "harness.h"

#define STUB_FH 0x5555deadbe00ULL	/* what every server's opendir gives out */

static int stub_open;			/* the stub's root handles open */

static void stub_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	stub_open++;
	fi->fh = STUB_FH;
	fuse_reply_open(req, fi);
}

/* EBADF for a handle the stub did not give out or that is closed. */
static void stub_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			 struct fuse_file_info *fi)
{
	struct stat st = { .st_ino = 1, .st_mode = S_IFDIR };
	char buf[256];
	size_t n = 0;

	if (fi->fh != STUB_FH || stub_open <= 0) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (off == 0)
		n = fuse_add_direntry(req, buf, sizeof(buf), ".", &st, 1);
	fuse_reply_buf(req, buf, n);
}

/*
 * EXDEV, which the hooks never answer: a release that reached the stub says
 * so (the kernel ignores a release's error anyway).
 */
static void stub_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (fi->fh != STUB_FH || stub_open <= 0) {
		fuse_reply_err(req, EBADF);
		return;
	}
	stub_open--;
	fuse_reply_err(req, EXDEV);
}

static const struct fuse_lowlevel_ops stub_ops = {
	.opendir = stub_opendir,
	.readdir = stub_readdir,
	.releasedir = stub_releasedir,
};

/* Fork a server of generation gen on the connection conn; its pid. */
static pid_t serve(int conn, int state, unsigned gen)
{
	static char name[] = "test_resume";
	char *argv[] = { name, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(1, argv);
	char env[128], mountpoint[32];
	struct irsafs fs = { 0 };
	struct fuse_session *se;
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	snprintf(env, sizeof(env), "state=%d,generation=%u", state, gen);
	snprintf(mountpoint, sizeof(mountpoint), "/dev/fd/%d", conn);
	setenv(RESUME_ENV, env, 1);
	fs.inodes = inode_table_new("");
	se = fuse_session_new(&args, &stub_ops, sizeof(stub_ops), NULL);
	if (!fs.inodes || !se || resume_session_mount(&fs, se, mountpoint) != 0)
		_exit(2);
	fuse_session_loop(se);
	_exit(0);
}

static void stop(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* Send one request with its argument (the kernel's side). */
static void send_req(int fd, uint32_t opcode, uint64_t unique, uint64_t nodeid,
		     const void *arg, size_t len)
{
	uint8_t buf[256];
	struct fuse_in_header in = {
		.len = (uint32_t)(sizeof(in) + len),
		.opcode = opcode,
		.unique = unique,
		.nodeid = nodeid,
	};

	memcpy(buf, &in, sizeof(in));
	memcpy(buf + sizeof(in), arg, len);
	CHECK(write(fd, buf, in.len) == (ssize_t)in.len);
}

/*
 * Wait (10 s at most each: "did not hang") for the answer to unique; its
 * error (0 or -errno), with its argument's first bytes in *arg. 1 when none
 * came. Answers to earlier requests are dropped, as the kernel drops them: a
 * server killed between answering and freeing the request's slot leaves it
 * for its successor to replay (fs/resume.c).
 */
static int answer_of(int fd, uint64_t unique, void *arg, size_t len, size_t *got)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct fuse_out_header out = { 0 };
	uint8_t buf[4096];
	ssize_t n;

	do {
		if (poll(&p, 1, 10000) != 1 ||
		    (n = read(fd, buf, sizeof(buf))) < (ssize_t)sizeof(out))
			return 1;
		memcpy(&out, buf, sizeof(out));
	} while (out.unique < unique);
	CHECK_INT(out.unique, unique);
	n -= (ssize_t)sizeof(out);
	if (got)
		*got = (size_t)n;
	if (arg)
		memcpy(arg, buf + sizeof(out), (size_t)n < len ? (size_t)n : len);
	return out.error;
}

static uint64_t opendir_root(int fd, uint64_t unique)
{
	struct fuse_open_in o = { .flags = O_RDONLY | O_DIRECTORY };
	struct fuse_open_out r = { 0 };

	send_req(fd, FUSE_OPENDIR, unique, FUSE_ROOT_ID, &o, sizeof(o));
	CHECK_INT(answer_of(fd, unique, &r, sizeof(r), NULL), 0);
	return r.fh;
}

/* READDIR of the root on handle fh: its error; *entries: bytes of entries. */
static int readdir_root(int fd, uint64_t unique, uint64_t fh, size_t *entries)
{
	struct fuse_read_in r = { .fh = fh, .size = 4096 };

	send_req(fd, FUSE_READDIR, unique, FUSE_ROOT_ID, &r, sizeof(r));
	return answer_of(fd, unique, NULL, 0, entries);
}

static int releasedir_root(int fd, uint64_t unique, uint64_t fh)
{
	struct fuse_release_in r = { .fh = fh };

	send_req(fd, FUSE_RELEASEDIR, unique, FUSE_ROOT_ID, &r, sizeof(r));
	return answer_of(fd, unique, NULL, 0, NULL);
}

TEST(successor_root_handles_are_its_own)
{
	struct fuse_init_in init = { .major = 7, .minor = 31, .max_readahead = 65536 };
	uint64_t old, a, b;
	size_t entries = 0;
	pid_t pid;
	int sv[2], state;

	state = memfd_create("irsafs-state", MFD_CLOEXEC);
	CHECK(state >= 0 && ftruncate(state, HANDOFF_STATE_SIZE) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	fcntl(state, F_SETFD, 0);	/* the servers inherit both, as from irsafs serve */

	/* Server 1 answers the kernel's INIT and gives out a root handle. */
	pid = serve(sv[1], state, 1);
	send_req(sv[0], FUSE_INIT, 1, 0, &init, sizeof(init));
	CHECK_INT(answer_of(sv[0], 1, NULL, 0, NULL), 0);
	old = opendir_root(sv[0], 2);
	CHECK(old == STUB_FH);
	stop(pid);

	/* Server 2 takes over (swallowing the replayed INIT's answer). */
	pid = serve(sv[1], state, 2);
	a = opendir_root(sv[0], 3);
	b = opendir_root(sv[0], 4);
	CHECK(a != old && b != old && a != b);
	/* The handle from before: ESTALE to read; its close succeeds, answered by the hooks. */
	CHECK_INT(readdir_root(sv[0], 5, old, NULL), -ESTALE);
	CHECK_INT(releasedir_root(sv[0], 6, old), 0);
	/* Server 2's handles: read and closed through to its operations' fh. */
	CHECK_INT(readdir_root(sv[0], 7, a, &entries), 0);
	CHECK(entries > 0);
	CHECK_INT(releasedir_root(sv[0], 8, a), -EXDEV);
	CHECK_INT(readdir_root(sv[0], 9, a, NULL), -ESTALE);
	CHECK_INT(readdir_root(sv[0], 10, b, &entries), 0);
	CHECK(entries > 0);
	CHECK_INT(releasedir_root(sv[0], 11, b), -EXDEV);
	stop(pid);

	/* Server 3 knows neither server 2's handles nor server 1's. */
	pid = serve(sv[1], state, 3);
	a = opendir_root(sv[0], 12);
	CHECK(a != old && a != b);
	CHECK_INT(readdir_root(sv[0], 13, b, NULL), -ESTALE);
	CHECK_INT(releasedir_root(sv[0], 14, b), 0);
	CHECK_INT(readdir_root(sv[0], 15, a, &entries), 0);
	CHECK_INT(releasedir_root(sv[0], 16, a), -EXDEV);
	stop(pid);
	close(sv[0]);
	close(sv[1]);
	close(state);
}

/* Put a request into a FULL slot of the state file, as a server that read it would. */
static void slot_put(struct slot *s, uint32_t opcode, uint64_t unique, uint32_t hdr_len,
		     uint32_t len)
{
	struct fuse_in_header in = {
		.len = hdr_len,
		.opcode = opcode,
		.unique = unique,
		.nodeid = FUSE_ROOT_ID,
	};
	struct fuse_open_in o = { .flags = O_RDONLY | O_DIRECTORY };

	memset(s->data, 0, sizeof(s->data));
	memcpy(s->data, &in, sizeof(in));
	memcpy(s->data + sizeof(in), &o, sizeof(o));
	s->len = len;
	s->total = len;
	s->replays = 0;
	s->unique = unique;
	s->state = SLOT_FULL;
}

/*
 * A volume whose server 1 answered the kernel's INIT and was killed: its
 * connection in sv, its state file (returned mapped) in *state, for a test to
 * damage before server 2 takes over.
 */
static struct state *after_first_server(int sv[2], int *state)
{
	struct fuse_init_in init = { .major = 7, .minor = 31, .max_readahead = 65536 };
	struct state *st;
	pid_t pid;

	*state = memfd_create("irsafs-state", MFD_CLOEXEC);
	CHECK(*state >= 0 && ftruncate(*state, HANDOFF_STATE_SIZE) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	fcntl(*state, F_SETFD, 0);
	pid = serve(sv[1], *state, 1);
	send_req(sv[0], FUSE_INIT, 1, 0, &init, sizeof(init));
	CHECK_INT(answer_of(sv[0], 1, NULL, 0, NULL), 0);
	stop(pid);
	st = mmap(NULL, sizeof(*st), PROT_READ | PROT_WRITE, MAP_SHARED, *state, 0);
	CHECK(st != MAP_FAILED);
	CHECK(st->magic == STATE_MAGIC && st->init_len > 0);
	return st;
}

TEST(damaged_slots_are_answered_eio_not_replayed)
{
	const uint32_t whole = sizeof(struct fuse_in_header) + sizeof(struct fuse_open_in);
	struct state *st;
	pid_t pid;
	int sv[2], state, status;

	st = after_first_server(sv, &state);
	/* Not known answered: the successor replays the slots itself, no kernel resend. */
	st->init_replied = 0;
	/* The header says 10 bytes fewer than the slot holds. */
	slot_put(&st->slots[0], FUSE_OPENDIR, 77, whole, whole + 10);
	/* A whole OPENDIR: replayed, and answered by the successor's operations. */
	slot_put(&st->slots[1], FUSE_OPENDIR, 79, whole, whole);
	/* A length past the slot, and past the end of the file. */
	slot_put(&st->slots[SLOTS - 1], FUSE_OPENDIR, 78, 65536, 65536);
	/* Not a state at all: freed, so the slot is not lost for good. */
	st->slots[2].state = 7;

	pid = serve(sv[1], state, 2);
	CHECK_INT(answer_of(sv[0], 77, NULL, 0, NULL), -EIO);
	CHECK_INT(answer_of(sv[0], 78, NULL, 0, NULL), -EIO);
	CHECK_INT(answer_of(sv[0], 79, NULL, 0, NULL), 0);
	CHECK(opendir_root(sv[0], 80) != 0);
	CHECK_INT(waitpid(pid, &status, WNOHANG), 0);	/* still serving */
	CHECK_INT(st->slots[2].state, SLOT_FREE);
	stop(pid);
	munmap(st, sizeof(*st));
	close(sv[0]);
	close(sv[1]);
	close(state);
}

/*
 * An INIT cut short in the state file (libfuse would take the fields it lacks
 * from whatever its buffer held) is not replayed: one line says so and what
 * to do, and every request is answered EIO, as libfuse answers before an INIT.
 */
TEST(a_damaged_init_is_refused_with_one_line)
{
	struct fuse_in_header in;
	char path[] = "/tmp/test_resume.XXXXXX", text[4096] = "";
	struct state *st;
	pid_t pid;
	int sv[2], state, log, saved;
	ssize_t n;

	st = after_first_server(sv, &state);
	st->init_replied = 1;	/* answered (server 1 may have died before it noted so) */
	/* Its header and length agree, but only 8 bytes of fuse_init_in are left. */
	st->init_len = (uint32_t)(sizeof(in) + 8);
	memcpy(&in, st->init, sizeof(in));
	in.len = st->init_len;
	memcpy(st->init, &in, sizeof(in));

	log = mkstemp(path);
	CHECK(log >= 0);
	unlink(path);
	fflush(stderr);
	saved = dup(2);
	dup2(log, 2);
	pid = serve(sv[1], state, 2);
	dup2(saved, 2);
	close(saved);
	{
		struct fuse_open_in o = { .flags = O_RDONLY | O_DIRECTORY };

		send_req(sv[0], FUSE_OPENDIR, 90, FUSE_ROOT_ID, &o, sizeof(o));
		CHECK_INT(answer_of(sv[0], 90, NULL, 0, NULL), -EIO);
	}
	stop(pid);
	n = pread(log, text, sizeof(text) - 1, 0);
	CHECK(n > 0);
	CHECK(strstr(text, "the takeover state's INIT is damaged (48 bytes)") != NULL);
	CHECK(strstr(text, "publish it again") != NULL);
	munmap(st, sizeof(*st));
	close(log);
	close(sv[0]);
	close(sv[1]);
	close(state);
}

int main(void)
{
	RUN(successor_root_handles_are_its_own);
	RUN(damaged_slots_are_answered_eio_not_replayed);
	RUN(a_damaged_init_is_refused_with_one_line);
	return harness_done();
}
