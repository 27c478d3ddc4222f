/*
 * irsafs exec: mount, run one command, unmount, exit with its status.
 *
 * The FUSE loop runs on its own thread while the main thread runs the
 * command and waits for it. The root is stat'ed first: that request goes
 * through the kernel to our loop, so when it returns the mount serves, and
 * the command never races the mount. When the command has exited, the mount
 * is unmounted with the loop still running, and the loop ends by itself.
 * While it runs, a terminal on stderr shows a progress line (files, bytes,
 * rate); the summary line at the end is always printed.
 */
#include "app/exec.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "app/lifecycle.h"
#include "core/log.h"
#include "core/strutil.h"

static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT };
#define NFORWARDED (sizeof(forwarded) / sizeof(forwarded[0]))

static volatile sig_atomic_t child_pid;	/* > 0 while the command runs */
static volatile sig_atomic_t pending_sig;	/* a stop signal that came before it */
static struct timespec started;

struct loop_thread {
	struct fuse_session *se;
	struct fuse_loop_config *loop;
	int rc;
};

/* Async-signal-safe: kill(2) and stores to sig_atomic_t only. */
static void forward(int sig)
{
	pid_t pid = (pid_t)child_pid;

	if (pid > 0)
		kill(pid, sig);
	else if (!pending_sig)
		pending_sig = sig;
}

int exec_split(int *argc, char ***argv, struct exec_cmd *cmd)
{
	int i;

	clock_gettime(CLOCK_MONOTONIC, &started);
	for (i = 2; i < *argc; i++)
		if (strcmp((*argv)[i], "--") == 0)
			break;
	if (i >= *argc || i + 1 >= *argc) {
		fprintf(stderr, "irsafs: exec: expected `-- COMMAND [ARGS...]` after BUCKET and "
			"MOUNTPOINT (usage: irsafs exec [OPTIONS] BUCKET MOUNTPOINT -- COMMAND)\n");
		return -1;
	}
	cmd->argv = *argv + i + 1;
	/* argv[i] was "--": NULL ends the mount part for getopt. */
	(*argv)[i] = NULL;
	*argc = i - 1;
	*argv += 1;
	return 0;
}

/*
 * The progress line: while the command runs and stderr is a terminal,
 * "irsafs: N files, X MB, Y MB/s" from the mount's counters, rewritten in
 * place about once a second, and erased when the command exits (the summary
 * line says it all then). Off a terminal (a Pod's log) it would only be
 * noise: the summary alone is printed.
 */
struct progress {
	const struct irsafs *fs;
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* stop, on the monotonic clock */
	int stop;
	int shown;
	pthread_t th;
};

static void *progress_main(void *arg)
{
	struct progress *p = arg;
	struct timespec ts;
	double secs;

	pthread_mutex_lock(&p->lock);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	while (!p->stop) {
		ts.tv_sec++;
		if (pthread_cond_timedwait(&p->cond, &p->lock, &ts) == 0 || p->stop)
			continue;
		secs = lifecycle_elapsed(&started);
		fprintf(stderr, "\rirsafs: %llu files, %.1f MB, %.1f MB/s\033[K",
			__atomic_load_n(&p->fs->counters.opens, __ATOMIC_RELAXED),
			__atomic_load_n(&p->fs->counters.bytes_read, __ATOMIC_RELAXED) / 1e6,
			secs > 0 ? __atomic_load_n(&p->fs->counters.bytes_read,
						   __ATOMIC_RELAXED) / 1e6 / secs : 0.0);
		p->shown = 1;
	}
	if (p->shown)
		fprintf(stderr, "\r\033[K");
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Start the progress line when stderr is a terminal: 1 when it runs. */
static int progress_start(struct progress *p, const struct irsafs *fs)
{
	pthread_condattr_t ca;

	memset(p, 0, sizeof(*p));
	if (!isatty(STDERR_FILENO))
		return 0;
	p->fs = fs;
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&p->th, NULL, progress_main, p) != 0) {
		pthread_cond_destroy(&p->cond);
		pthread_mutex_destroy(&p->lock);
		return 0;
	}
	return 1;
}

static void progress_stop(struct progress *p)
{
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->th, NULL);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
}

static void *loop_main(void *arg)
{
	struct loop_thread *t = arg;

	t->rc = fuse_session_loop_mt(t->se, t->loop);
	return NULL;
}

/*
 * Unmount while the loop still runs, so that the command's last RELEASEs are
 * served and the loop ends by itself when the kernel ends the connection.
 * When something else still holds the mount (a background process the
 * command left), it is detached and the loop is stopped: those processes get
 * ENOTCONN. The signal only interrupts the loop's sem_wait.
 */
static void loop_stop(struct fuse_session *se, const char *mnt, pthread_t th)
{
	struct timespec ts;

	if (lifecycle_unmount(se, mnt) != UNMOUNT_LAZY) {
		pthread_join(th, NULL);
		return;
	}
	fuse_session_exit(se);
	for (;;) {
		pthread_kill(th, SIGHUP);
		clock_real_in_ms(&ts, 100);
		if (pthread_timedjoin_np(th, NULL, &ts) == 0)
			return;
	}
}

/*
 * The file execvp would run for name: name itself when it has a slash, else
 * the first executable regular file of that name on PATH. 0 or an errno.
 */
static int find_program(const char *name, char *path, size_t len)
{
	const char *dirs = getenv("PATH"), *p, *end;
	struct stat st;

	if (strchr(name, '/'))
		return snprintf(path, len, "%s", name) < (int)len ? 0 : ENAMETOOLONG;
	if (!dirs)
		dirs = "/usr/local/bin:/usr/bin:/bin";
	for (p = dirs; ; p = end + 1) {
		end = strchrnul(p, ':');
		if (snprintf(path, len, "%.*s%s%s", (int)(end - p), p, end > p ? "/" : "",
			     name) < (int)len &&
		    stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0)
			return 0;
		if (!*end)
			return ENOENT;
	}
}

/*
 * An executable without "#!" that the kernel will not run (ENOEXEC) is a
 * shell script, as execvp and every shell have it; posix_spawnp no longer
 * falls back to /bin/sh, so irsafs does.
 */
static int spawn_script(char **argv, const posix_spawnattr_t *attr, pid_t *pid)
{
	static char sh[] = "/bin/sh";
	char path[PATH_MAX], **args;
	size_t n = 0;
	int rc;

	rc = find_program(argv[0], path, sizeof(path));
	if (rc)
		return ENOEXEC;
	while (argv[n])
		n++;
	args = calloc(n + 2, sizeof(*args));
	if (!args)
		return ENOMEM;
	args[0] = sh;
	args[1] = path;
	memcpy(args + 2, argv + 1, n * sizeof(*args));	/* argv[1..n-1] and its NULL */
	rc = posix_spawn(pid, sh, NULL, attr, args, environ);
	free(args);
	return rc;
}

/*
 * Start the command with posix_spawn: irsafs has many threads by now, and a
 * forked child of a threaded process may call only async-signal-safe
 * functions before exec. The command gets the given mask and default
 * dispositions for the signals we forward (and SIGPIPE). Returns 0 with *pid
 * set, or an errno value: exec errors come back here too (glibc's
 * posix_spawn reports them), so the parent says what failed.
 */
static int spawn(char **argv, const sigset_t *child_mask, pid_t *pid)
{
	posix_spawnattr_t attr;
	sigset_t dfl;
	size_t i;
	int rc;

	sigemptyset(&dfl);
	for (i = 0; i < NFORWARDED; i++)
		sigaddset(&dfl, forwarded[i]);
	sigaddset(&dfl, SIGPIPE);
	rc = posix_spawnattr_init(&attr);
	if (rc)
		return rc;
	rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	if (!rc)
		rc = posix_spawnattr_setsigmask(&attr, child_mask);
	if (!rc)
		rc = posix_spawnattr_setsigdefault(&attr, &dfl);
	if (!rc)
		rc = posix_spawnp(pid, argv[0], NULL, &attr, argv, environ);
	if (rc == ENOEXEC)
		rc = spawn_script(argv, &attr, pid);
	posix_spawnattr_destroy(&attr);
	return rc;
}

int exec_run(struct app *app, struct fuse_session *se, struct fuse_loop_config *loop,
	     const struct exec_cmd *cmd)
{
	const char *mnt = app->opts->mountpoint;
	struct sigaction sa, old[NFORWARDED];
	struct loop_thread t = { .se = se, .loop = loop };
	sigset_t stops, saved, child_mask;
	char line[256];
	int status, rc, started_cmd = 0, showing = 0;
	struct progress prog;
	double secs;
	struct stat st;
	pthread_t th;
	pid_t pid;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&stops);
	for (i = 0; i < NFORWARDED; i++) {
		sigaction(forwarded[i], &sa, &old[i]);
		sigaddset(&stops, forwarded[i]);
	}
	/*
	 * main blocked the stop signals for startup (app/lifecycle.c): with the
	 * handlers in place, this thread and the loop's threads take them now.
	 * The command gets irsafs's mask without what main added.
	 */
	pthread_sigmask(SIG_UNBLOCK, &stops, NULL);
	pthread_sigmask(SIG_SETMASK, NULL, &child_mask);
	sigdelset(&child_mask, SIGUSR1);

	rc = pthread_create(&th, NULL, loop_main, &t);
	if (rc) {
		log_msg(LOG_ERR, "exec: cannot start the FUSE loop: %s", strerror(rc));
		status = IRSAFS_EXIT_FAIL;
		goto out_signals;
	}
	if (stat(mnt, &st) != 0) {
		log_msg(LOG_ERR, "exec: %s does not answer (%s): not running %s", mnt,
			strerror(errno), cmd->argv[0]);
		status = IRSAFS_EXIT_FAIL;
		goto out_loop;
	}

	pthread_sigmask(SIG_BLOCK, &stops, &saved);
	if (pending_sig) {
		status = 128 + pending_sig;
		log_msg(LOG_NOTICE, "exec: stopped by signal %d before %s started",
			(int)pending_sig, cmd->argv[0]);
		pthread_sigmask(SIG_SETMASK, &saved, NULL);
		goto out_loop;
	}
	rc = spawn(cmd->argv, &child_mask, &pid);
	if (rc) {
		/* Like a shell: 127 when not found, 126 when found but not runnable. */
		log_msg(LOG_ERR, "exec: cannot run %s: %s", cmd->argv[0], strerror(rc));
		status = rc == ENOENT ? 127 : 126;
		pthread_sigmask(SIG_SETMASK, &saved, NULL);
		goto out_loop;
	}
	child_pid = pid;
	started_cmd = 1;
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	log_msg(LOG_INFO, "exec: running %s (pid %d) with s3://%s/%s on %s", cmd->argv[0],
		(int)pid, app->opts->bucket, app->opts->prefix, mnt);

	showing = progress_start(&prog, &app->fs);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			log_msg(LOG_ERR, "exec: waiting for %s: %s", cmd->argv[0], strerror(errno));
			status = 1 << 8;	/* as if it had exited 1 */
			break;
		}
	}
	child_pid = 0;
	if (showing)
		progress_stop(&prog);
	if (WIFSIGNALED(status))
		status = 128 + WTERMSIG(status);
	else
		status = WEXITSTATUS(status);

out_loop:
	loop_stop(se, mnt, th);
	if (lifecycle_loop_failed(t.rc))
		log_msg(LOG_ERR, "exec: the FUSE loop failed: %s", strerror(-t.rc));
out_signals:
	for (i = 0; i < NFORWARDED; i++)
		sigaction(forwarded[i], &old[i], NULL);
	lifecycle_counters(&app->fs, line, sizeof(line));
	secs = lifecycle_elapsed(&started);
	if (started_cmd)
		log_msg(LOG_NOTICE, "summary: %s, time %.2f s, %.1f MB/s, %s exited %d", line, secs,
			secs > 0 ? __atomic_load_n(&app->fs.counters.bytes_read, __ATOMIC_RELAXED) /
					   1e6 / secs : 0.0, cmd->argv[0], status);
	return status;
}
