/*
 * The supervisor behind `irsafs serve DIR`.
 *
 * One loop watches DIR (inotify, and a rescan every second in case inotify
 * is unavailable or missed something), the signals (a signalfd) and each
 * volume's "ready" pipe. For every NAME.sock in DIR there is one entry:
 *
 *   IDLE --connect + receive--> RUNNING (a child irsafs serves it)
 *   RUNNING --child exits--> IDLE, retried after a delay while the socket exists
 *
 * The delay starts at 100 ms and doubles (to 30 s) while children keep dying
 * young; a child that ran for a minute resets it. The child holds the
 * connection to the plugin's socket for as long as it runs: that is how the
 * plugin knows the volume is free for the next one. Children die with this
 * process (PR_SET_PDEATHSIG), so a killed `irsafs serve` leaves no server
 * behind that could compete with its successor.
 */
#include "app/serve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "app/opts.h"
#include "config.h"
#include "core/handoff.h"
#include "core/log.h"
#include "core/unixsock.h"
#include "fs/resume.h"

#define DELAY_MIN 0.1
#define DELAY_MAX 30.0
#define RAN_LONG 60.0			/* seconds: a child that lived this long was healthy */
#define HANDOFF_WAIT_MS 5000

struct volume_server {
	char name[256];			/* NAME.sock in DIR */
	char volume_id[256];
	pid_t pid;			/* 0: not running */
	int ready_fd;			/* read end of the child's ready pipe, or -1 */
	int ready_slot;
	int ready;
	int present;			/* the socket was there at the last scan */
	double started;
	double next_try;
	double delay;
	int complained;			/* a failure to connect was logged in this streak */
	int unmounted;			/* its irsafs exited 0: the plugin removes the socket */
	struct volume_server *next;
};

struct serve {
	const char *dir;
	int dirfd;
	const char *ready_file;
	char **pass;			/* the irsafs options for every volume */
	int npass;
	sigset_t orig_mask;
	struct volume_server *list;
	int stopping;
	int is_ready;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: irsafs serve [OPTIONS] DIR\n"
		"\n"
		"Serve the volumes irsafs-csi mounted for this Pod: DIR is where the Pod's\n"
		"emptyDir irsafs-socket is mounted. For each volume it runs irsafs with the\n"
		"volume's bucket and prefix and OPTIONS (any of irsafs --help, except --prefix),\n"
		"and restarts it if it dies; the mount stays up meanwhile.\n"
		"\n"
		"  --ready-file FILE   create FILE once every volume is being served (for a\n"
		"                      startup probe); removed at start\n"
		"  -h, --help          this text\n");
}

/* Check the options every volume will get, as irsafs itself would. */
static int check_options(struct serve *s)
{
	static char arg0[] = "irsafs", bucket[] = "bucket-name", mnt[] = "/dev/fd/0";
	char **argv = calloc((size_t)s->npass + 4, sizeof(*argv));
	struct opts o;
	int i, rc;

	if (!argv)
		return -1;
	argv[0] = arg0;
	for (i = 0; i < s->npass; i++)
		argv[i + 1] = s->pass[i];
	argv[s->npass + 1] = bucket;
	argv[s->npass + 2] = mnt;
	rc = opts_parse(s->npass + 3, argv, &o);
	if (rc == 0 && (o.show_help || o.show_version)) {
		fprintf(stderr, "irsafs: serve: --help and --version go alone\n");
		rc = -1;
	} else if (rc == 0 && *o.prefix) {
		fprintf(stderr, "irsafs: serve: --prefix comes from each volume's attributes "
			"(volumeAttributes.prefix), not from the command line\n");
		rc = -1;
	}
	opts_cleanup(&o);
	free(argv);
	return rc;
}

static int parse(struct serve *s, int argc, char **argv)
{
	int i;

	s->pass = calloc((size_t)argc, sizeof(*s->pass));
	if (!s->pass)
		return -1;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(argv[i], "--ready-file") && i + 1 < argc) {
			s->ready_file = argv[++i];
		} else if (!strncmp(argv[i], "--ready-file=", 13)) {
			s->ready_file = argv[i] + 13;
		} else {
			s->pass[s->npass++] = argv[i];
		}
	}
	if (s->npass == 0 || s->pass[s->npass - 1][0] == '-') {
		fprintf(stderr, "irsafs: serve: expected DIR, the directory of the emptyDir "
			"irsafs-socket (usage: irsafs serve [OPTIONS] DIR)\n");
		return -1;
	}
	s->dir = s->pass[--s->npass];
	return check_options(s);
}

static struct volume_server *find(struct serve *s, const char *name)
{
	struct volume_server *v;

	for (v = s->list; v; v = v->next)
		if (!strcmp(v->name, name))
			return v;
	return NULL;
}

/* Note every NAME.sock in DIR; forget idle entries whose socket is gone. */
static void scan(struct serve *s)
{
	struct volume_server *v, **pp;
	struct dirent *de;
	struct stat st;
	size_t len;
	DIR *d;
	int fd;

	for (v = s->list; v; v = v->next)
		v->present = 0;
	fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		log_once(LOG_WARNING, "cannot read %s: %s", s->dir, strerror(errno));
		return;
	}
	while ((de = readdir(d))) {
		len = strlen(de->d_name);
		if (len <= 5 || len >= sizeof(v->name) || strcmp(de->d_name + len - 5, ".sock") ||
		    fstatat(s->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISSOCK(st.st_mode))
			continue;
		v = find(s, de->d_name);
		if (!v) {
			v = calloc(1, sizeof(*v));
			if (!v)
				continue;
			snprintf(v->name, sizeof(v->name), "%s", de->d_name);
			v->ready_fd = v->ready_slot = -1;
			v->delay = DELAY_MIN;
			v->next_try = now();
			v->next = s->list;
			s->list = v;
			log_msg(LOG_INFO, "found volume socket %s/%s", s->dir, v->name);
		}
		v->present = 1;
	}
	closedir(d);
	for (pp = &s->list; (v = *pp);) {
		if (!v->present && !v->pid) {
			*pp = v->next;
			if (v->ready_fd >= 0)
				close(v->ready_fd);
			free(v);
			continue;
		}
		pp = &v->next;
	}
}

/* Start irsafs for the volume h describes, on connection conn. */
static int spawn(struct serve *s, struct volume_server *v, struct handoff *h, int conn)
{
	static char arg0[] = "irsafs", fg[] = "-f";
	char env[160], fdpath[32], prefix[1100], **argv;
	int pfd[2], i, n = 0;
	pid_t parent = getpid(), pid;

	argv = calloc((size_t)s->npass + 6, sizeof(*argv));
	if (!argv || pipe2(pfd, O_CLOEXEC) != 0) {
		free(argv);
		return -1;
	}
	snprintf(fdpath, sizeof(fdpath), "/dev/fd/%d", h->fuse_fd);
	snprintf(prefix, sizeof(prefix), "--prefix=%s", h->prefix);
	snprintf(env, sizeof(env), "%s=state=%d,conn=%d,ready=%d,generation=%u", RESUME_ENV,
		 h->state_fd, conn, pfd[1], h->generation);
	argv[n++] = arg0;
	argv[n++] = fg;
	for (i = 0; i < s->npass; i++)
		argv[n++] = s->pass[i];
	if (h->prefix[0])
		argv[n++] = prefix;
	argv[n++] = h->bucket;
	argv[n++] = fdpath;
	pid = fork();
	if (pid == 0) {
		/* Die with serve: a server left behind would keep its successor out. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		sigprocmask(SIG_SETMASK, &s->orig_mask, NULL);
		fcntl(h->fuse_fd, F_SETFD, 0);
		fcntl(h->state_fd, F_SETFD, 0);
		fcntl(conn, F_SETFD, 0);
		fcntl(pfd[1], F_SETFD, 0);
		putenv(env);
		execv("/proc/self/exe", argv);
		fprintf(stderr, "irsafs: error: serve: cannot run /proc/self/exe: %s\n",
			strerror(errno));
		_exit(127);
	}
	free(argv);
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		return -1;
	}
	v->pid = pid;
	v->ready_fd = pfd[0];
	v->ready = 0;
	v->started = now();
	return 0;
}

static void retry_later(struct volume_server *v)
{
	v->next_try = now() + v->delay;
	v->delay = v->delay * 2 > DELAY_MAX ? DELAY_MAX : v->delay * 2;
}

/* Connect to the volume's socket, take the volume, start its irsafs. */
static void start(struct serve *s, struct volume_server *v)
{
	struct handoff h;
	int conn, rc, level;

	/*
	 * Once its volume was unmounted, irsafs-csi removes the socket right
	 * after the unmount that ended our irsafs: a failure until then is no news.
	 */
	level = v->unmounted ? LOG_INFO : LOG_WARNING;
	conn = unixsock_connect_at(s->dirfd, v->name, SOCK_SEQPACKET);
	if (conn < 0) {
		if (!v->complained++)
			log_msg(level, "cannot connect to %s/%s: %s (%s); retrying", s->dir,
				v->name, strerror(-conn), v->unmounted ?
				"its volume was unmounted: irsafs-csi removes it" :
				conn == -ECONNREFUSED ?
				"nobody listens: the irsafs-csi that made it has stopped" :
				conn == -EACCES ? "this user may not use it: check the emptyDir's "
				"permissions" : "is irsafs-csi running on this node?");
		retry_later(v);
		return;
	}
	rc = handoff_recv(conn, &h, HANDOFF_WAIT_MS);
	if (rc != 0 || h.error[0]) {
		if (!v->complained++)
			log_msg(level, "%s/%s: no volume received: %s; retrying", s->dir,
				v->name, rc ? strerror(-rc) : h.error);
		handoff_close(&h);
		close(conn);
		retry_later(v);
		return;
	}
	snprintf(v->volume_id, sizeof(v->volume_id), "%s", h.volume_id);
	rc = spawn(s, v, &h, conn);
	if (rc != 0)
		log_msg(LOG_ERR, "volume %s: cannot start irsafs: %s", v->volume_id,
			strerror(errno));
	else
		log_msg(LOG_NOTICE, "volume %s: serving s3://%s/%s with irsafs pid %d%s",
			v->volume_id, h.bucket, h.prefix, (int)v->pid,
			h.generation > 1 ? " (taking over the mount)" : "");
	v->complained = v->unmounted = 0;
	handoff_close(&h);
	close(conn);
	if (rc != 0)
		retry_later(v);
}

static void reap(struct serve *s)
{
	struct volume_server *v;
	char how[64];
	double ran;
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (v = s->list; v && v->pid != pid; v = v->next)
			;
		if (!v)
			continue;
		ran = now() - v->started;
		v->pid = 0;
		if (v->ready_fd >= 0)
			close(v->ready_fd);
		v->ready_fd = -1;
		v->ready = 0;
		if (WIFSIGNALED(status))
			snprintf(how, sizeof(how), "was killed by signal %d", WTERMSIG(status));
		else
			snprintf(how, sizeof(how), "exited %d", WEXITSTATUS(status));
		if (ran >= RAN_LONG)
			v->delay = DELAY_MIN;
		if (s->stopping) {
			log_msg(LOG_INFO, "volume %s: irsafs %s", v->volume_id, how);
			continue;
		}
		v->unmounted = WIFEXITED(status) && WEXITSTATUS(status) == 0;
		if (v->unmounted)
			log_msg(LOG_NOTICE, "volume %s: irsafs %s (the volume was unmounted)",
				v->volume_id, how);
		else
			log_msg(LOG_WARNING, "volume %s: irsafs %s after %.1f s; starting another "
				"in %.1f s (the mount waits)", v->volume_id, how, ran, v->delay);
		retry_later(v);
	}
}

/* Create or remove the ready file as "every volume is served" changes. */
static void update_ready(struct serve *s)
{
	struct volume_server *v;
	int ready = s->list != NULL, fd;

	for (v = s->list; v; v = v->next)
		if (v->present && !v->ready)
			ready = 0;
	if (!s->ready_file || ready == s->is_ready)
		return;
	s->is_ready = ready;
	if (!ready) {
		unlink(s->ready_file);
		return;
	}
	fd = open(s->ready_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		log_once(LOG_WARNING, "cannot create the ready file %s: %s", s->ready_file,
			 strerror(errno));
	else
		close(fd);
}

static void signal_children(struct serve *s, int sig)
{
	struct volume_server *v;

	for (v = s->list; v; v = v->next)
		if (v->pid)
			kill(v->pid, sig);
}

static int running(const struct serve *s)
{
	const struct volume_server *v;

	for (v = s->list; v; v = v->next)
		if (v->pid)
			return 1;
	return 0;
}

static int loop(struct serve *s, int sfd, int ifd)
{
	struct pollfd pfd[64];
	struct signalfd_siginfo si;
	struct volume_server *v;
	char buf[4096];
	double t, wait;
	int n, timeout;

	for (;;) {
		scan(s);
		t = now();
		wait = 1.0;
		for (v = s->list; v; v = v->next) {
			if (s->stopping || v->pid || !v->present)
				continue;
			if (v->next_try <= t)
				start(s, v);
			if (!v->pid && v->next_try - t < wait)
				wait = v->next_try - t;
		}
		update_ready(s);
		if (s->stopping && !running(s))
			return 0;
		n = 0;
		pfd[n++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = ifd, .events = POLLIN };
		for (v = s->list; v; v = v->next) {
			v->ready_slot = -1;
			if (v->ready_fd >= 0 && n < (int)(sizeof(pfd) / sizeof(pfd[0]))) {
				v->ready_slot = n;
				pfd[n++] = (struct pollfd){ .fd = v->ready_fd, .events = POLLIN };
			}
		}
		timeout = wait <= 0 ? 0 : (int)(wait * 1000) + 1;
		if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR)
			return 1;
		if (pfd[1].revents & POLLIN)
			while (read(ifd, buf, sizeof(buf)) > 0)
				;
		for (v = s->list; v; v = v->next)
			if (v->ready_slot >= 0 && pfd[v->ready_slot].revents) {
				v->ready = read(v->ready_fd, buf, 1) == 1;
				close(v->ready_fd);
				v->ready_fd = -1;
			}
		while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			switch (si.ssi_signo) {
			case SIGCHLD:
				reap(s);
				break;
			case SIGUSR1:
				signal_children(s, SIGUSR1);
				break;
			default:
				log_msg(LOG_NOTICE, "%s: stopping the volumes' irsafs%s",
					strsignal((int)si.ssi_signo), s->stopping ? " at once" : "");
				signal_children(s, s->stopping ? SIGKILL : SIGTERM);
				s->stopping = 1;
			}
		}
	}
}

int serve_main(int argc, char **argv)
{
	struct serve s;
	struct volume_server *v;
	sigset_t set;
	int sfd = -1, ifd = -1, rc = 2;

	memset(&s, 0, sizeof(s));
	s.dirfd = -1;
	if (parse(&s, argc, argv) != 0)
		goto out;
	rc = 1;
	s.dirfd = open(s.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s.dirfd < 0) {
		log_msg(LOG_ERR, "cannot open %s: %s (mount the Pod's emptyDir irsafs-socket there)",
			s.dir, strerror(errno));
		goto out;
	}
	if (s.ready_file)
		unlink(s.ready_file);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, &s.orig_mask);
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		log_msg(LOG_ERR, "cannot set up signal handling: %s", strerror(errno));
		goto out;
	}
	ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ifd < 0 || inotify_add_watch(ifd, s.dir, IN_CREATE | IN_DELETE | IN_MOVED_TO |
					 IN_MOVED_FROM | IN_ATTRIB) < 0)
		log_msg(LOG_INFO, "not watching %s (inotify: %s): looking every second instead",
			s.dir, strerror(errno));
	log_msg(LOG_NOTICE, "irsafs %s serving the volumes in %s (uid %d)", IRSAFS_VERSION, s.dir,
		(int)geteuid());
	rc = loop(&s, sfd, ifd);
out:
	while ((v = s.list)) {
		s.list = v->next;
		if (v->ready_fd >= 0)
			close(v->ready_fd);
		free(v);
	}
	if (s.ready_file && s.is_ready)
		unlink(s.ready_file);
	if (ifd >= 0)
		close(ifd);
	if (sfd >= 0)
		close(sfd);
	if (s.dirfd >= 0)
		close(s.dirfd);
	free(s.pass);
	return rc;
}
