/*
 * Ending a mount: clean unmount, lazy fallback, counters.
 *
 * A Pod is stopped with SIGTERM (then SIGKILL after the grace period), so a
 * stop must leave no mount behind. libfuse's own unmount is always lazy; we
 * try a normal one first (umount2 as root, `fusermount3 -u` otherwise) and
 * fall back to the lazy one only when that fails, so the exit status can say
 * whether something still had the mount in use.
 */
#include "app/lifecycle.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache/membudget.h"
#include "cache/metacache.h"
#include "core/log.h"
#include "fs/inode.h"
#include "fs/nodetrim.h"

/*
 * The signal thread and the unmount state. stopping and stops are atomics;
 * the unmount itself runs under lock so that the signal thread and main
 * never both unmount (the first result is kept and returned again).
 */
static struct {
	pthread_t thread;
	pthread_t main;
	int running;
	int stopping;
	int stop_signals;
	int stops;
	struct app *app;
	struct fuse_session *se;
	pthread_mutex_t lock;
	int unmounted;
	enum lifecycle_unmount_result result;
} lc = { .lock = PTHREAD_MUTEX_INITIALIZER };

void lifecycle_signals_block(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/*
 * Before the mount is up. main may wait long on the network while it starts
 * (STS, the first listing) and cannot be interrupted there, so this thread
 * takes the stop signals meanwhile: the first one ends the process at once
 * (nothing is mounted yet, nothing needs undoing). Once main is about to
 * mount, `done` is set under the lock; a stop signal taken after that is
 * sent again to the process, where it stays pending (blocked everywhere)
 * for the signal thread (mount form) or exec's handler (exec form).
 */
static struct {
	pthread_t thread;
	pthread_mutex_t lock;
	int running;
	int done;
	int exec_form;
	const char *phase;		/* what main is waiting for; atomic */
} su = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* A helper thread that takes no signal: they are the signal thread's, or the FUSE threads'. */
static int thread_start_masked(pthread_t *t, void *(*fn)(void *))
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(t, NULL, fn, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

static void *startup_main(void *arg)
{
	const char *phase;
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		pthread_mutex_lock(&su.lock);
		if (su.done) {
			pthread_mutex_unlock(&su.lock);
			if (sig != SIGUSR1)
				kill(getpid(), sig);
			return NULL;
		}
		if (sig == SIGUSR1) {
			/* No counters before the mount. */
			pthread_mutex_unlock(&su.lock);
			continue;
		}
		phase = __atomic_load_n(&su.phase, __ATOMIC_ACQUIRE);
		log_msg(LOG_ERR, "stopped by SIG%s %s, before the mount was up: exiting without "
			"mounting", sigabbrev_np(sig), phase ? phase : "while starting");
		/* main may be deep in a network wait: no unwinding, nothing to undo. */
		_exit(su.exec_form ? 128 + sig : IRSAFS_EXIT_FAIL);
	}
}

int lifecycle_startup_start(int exec_form)
{
	int rc;

	su.exec_form = exec_form;
	rc = thread_start_masked(&su.thread, startup_main);
	if (rc)
		return -rc;
	su.running = 1;
	return 0;
}

void lifecycle_startup_phase(const char *what)
{
	__atomic_store_n(&su.phase, what, __ATOMIC_RELEASE);
}

void lifecycle_startup_done(void)
{
	if (!su.running)
		return;
	pthread_mutex_lock(&su.lock);
	su.done = 1;
	pthread_mutex_unlock(&su.lock);
	pthread_kill(su.thread, SIGUSR1);
	pthread_join(su.thread, NULL);
	su.running = 0;
}

static unsigned long long load(const unsigned long long *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

void lifecycle_counters(const struct irsafs *fs, char *buf, size_t len)
{
	snprintf(buf, len, "objects opened %llu, bytes read %llu, S3 requests %llu, listings %llu",
		 load(&fs->counters.opens), load(&fs->counters.bytes_read),
		 load(&fs->counters.s3_requests), load(&fs->counters.listings));
}

double lifecycle_elapsed(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (now.tv_nsec - start->tv_nsec) / 1e9;
}

static void kick(int sig)
{
}

static int is_stopping(void)
{
	return __atomic_load_n(&lc.stopping, __ATOMIC_ACQUIRE);
}

/*
 * The first stop signal unmounts while the loop still runs: the requests the
 * kernel has already queued (a last RELEASE) are served, and the loop ends by
 * itself when the kernel ends the connection. When the mount is busy it is
 * detached and the open files are served until they are closed. A second
 * signal (or an fd-passed mount, which we cannot unmount) stops the loop now.
 */
static void on_stop(int sig)
{
	enum lifecycle_unmount_result r;
	struct timespec ts = { 0, 100 * 1000 * 1000 };

	lc.stops++;
	if (lc.stops == 1) {
		log_msg(LOG_NOTICE, "%s: unmounting %s", strsignal(sig), lc.app->opts->mountpoint);
		r = lifecycle_unmount(lc.se, lc.app->opts->mountpoint);
		if (r == UNMOUNT_LAZY)
			log_msg(LOG_NOTICE, "serving the files still open on %s until they are "
				"closed (signal again to stop now)", lc.app->opts->mountpoint);
		if (r != UNMOUNT_GONE || strncmp(lc.app->opts->mountpoint, "/dev/fd/", 8) != 0)
			return;
	}
	/* libfuse's loop sleeps in sem_wait: interrupt it until main takes over. */
	fuse_session_exit(lc.se);
	while (!is_stopping()) {
		pthread_kill(lc.main, SIGUSR2);
		nanosleep(&ts, NULL);
	}
}

static void *signal_main(void *arg)
{
	sigset_t set;
	char line[256];
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (lc.stop_signals) {
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGHUP);
	}
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (is_stopping())
			break;
		if (sig != SIGUSR1) {
			on_stop(sig);
			continue;
		}
		lifecycle_counters(&lc.app->fs, line, sizeof(line));
		log_msg(LOG_NOTICE, "counters: %s", line);
		if (lc.app->stack.mem)
			log_msg(LOG_NOTICE, "memory: read buffers %zu bytes reserved, %zu kept for "
				"reuse, peak %zu, ceiling %zu (--max-memory)",
				membudget_used(lc.app->stack.mem), membudget_pooled(lc.app->stack.mem),
				membudget_peak(lc.app->stack.mem), membudget_limit(lc.app->stack.mem));
		if (lc.app->stack.meta) {
			struct metacache_stats ms;

			metacache_stats(lc.app->stack.meta, &ms);
			log_msg(LOG_NOTICE, "memory: listings %zu bytes cached, %zu held by %u being "
				"read, the most one held %zu (--metadata-cache-size %zu); %lu names "
				"known to the kernel in %zu bytes, %llu let go; %llu forgotten in %llu "
				"FORGET messages", ms.listing_bytes,
				ms.listing_held, ms.listings_live, ms.listing_held_peak,
				lc.app->opts->metadata_cache_size, inode_count(lc.app->fs.inodes),
				inode_bytes(lc.app->fs.inodes, NULL), nodetrim_let_go(lc.app->trim),
				load(&lc.app->fs.counters.forgotten),
				load(&lc.app->fs.counters.forget_messages));
		}
	}
	return NULL;
}

int lifecycle_signals_start(struct app *app, struct fuse_session *se, int stop_signals)
{
	struct sigaction sa;
	int rc;

	lc.app = app;
	lc.se = se;
	lc.main = pthread_self();
	lc.stop_signals = stop_signals;
	__atomic_store_n(&lc.stopping, 0, __ATOMIC_RELEASE);
	if (stop_signals) {
		/* Blocked since main started (lifecycle_signals_block): only we take them. */
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = kick;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGUSR2, &sa, NULL);
		signal(SIGPIPE, SIG_IGN);
	}
	rc = thread_start_masked(&lc.thread, signal_main);
	if (rc)
		return -rc;
	lc.running = 1;
	return 0;
}

void lifecycle_signals_stop(void)
{
	if (!lc.running)
		return;
	__atomic_store_n(&lc.stopping, 1, __ATOMIC_RELEASE);
	pthread_kill(lc.thread, SIGUSR1);
	pthread_join(lc.thread, NULL);
	lc.running = 0;
}

/*
 * `fusermount3 -u -q [-z] -- dir`: unmounting as a non-root user. Started
 * with posix_spawn, not fork: the daemon has many threads by now, and a
 * forked child of a threaded process may touch only async-signal-safe
 * functions before exec (a lock another thread held at the fork stays held).
 * The child gets an empty signal mask and default SIGPIPE, not ours.
 */
static int fusermount_unmount(const char *dir, int lazy)
{
	char prog[] = "fusermount3", u[] = "-u", q[] = "-q", z[] = "-z", end[] = "--";
	char *path = strdup(dir);
	char *argv_lazy[] = { prog, u, q, z, end, path, NULL };
	char *argv_clean[] = { prog, u, q, end, path, NULL };
	posix_spawnattr_t attr;
	sigset_t none, pipe;
	int status, rc;
	pid_t pid;

	if (!path)
		return -ENOMEM;
	sigemptyset(&none);
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	rc = posix_spawnattr_init(&attr);
	if (rc) {
		free(path);
		return -rc;
	}
	rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	if (!rc)
		rc = posix_spawnattr_setsigmask(&attr, &none);
	if (!rc)
		rc = posix_spawnattr_setsigdefault(&attr, &pipe);
	if (!rc)
		rc = posix_spawnp(&pid, "fusermount3", NULL, &attr,
				  lazy ? argv_lazy : argv_clean, environ);
	posix_spawnattr_destroy(&attr);
	free(path);
	if (rc)
		return -rc;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EBUSY;
}

static enum lifecycle_unmount_result unmount_once(struct fuse_session *se, const char *mountpoint)
{
	struct pollfd pfd = { .fd = fuse_session_fd(se), .events = 0 };
	int rc;

	/* fd-passed (/dev/fd/N): whoever mounted unmounts; libfuse does nothing here. */
	if (strncmp(mountpoint, "/dev/fd/", 8) == 0) {
		fuse_session_unmount(se);
		return UNMOUNT_GONE;
	}
	/*
	 * POLLERR: the kernel ended the connection (unmounted from outside, or
	 * aborted). Unmounting the path now could hit whatever lies beneath.
	 */
	if (pfd.fd < 0 || (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR))) {
		fuse_session_unmount(se);
		return UNMOUNT_GONE;
	}
	if (geteuid() == 0)
		rc = umount2(mountpoint, UMOUNT_NOFOLLOW) == 0 ? 0 : -errno;
	else
		rc = fusermount_unmount(mountpoint, 0);
	if (rc == 0) {
		/* The connection is gone: this only closes and frees. */
		fuse_session_unmount(se);
		return UNMOUNT_CLEAN;
	}
	/*
	 * Busy. Detach it ourselves (libfuse's unmount would also close the
	 * device, and the caller may still serve the files that are open).
	 */
	if (geteuid() == 0)
		umount2(mountpoint, MNT_DETACH | UMOUNT_NOFOLLOW);
	else
		fusermount_unmount(mountpoint, 1);
	log_msg(LOG_WARNING, "%s is busy (%s): detached it lazily", mountpoint, strerror(-rc));
	return UNMOUNT_LAZY;
}

enum lifecycle_unmount_result lifecycle_unmount(struct fuse_session *se, const char *mountpoint)
{
	enum lifecycle_unmount_result r;

	pthread_mutex_lock(&lc.lock);
	if (!lc.unmounted) {
		lc.result = unmount_once(se, mountpoint);
		lc.unmounted = 1;
	}
	r = lc.result;
	pthread_mutex_unlock(&lc.lock);
	return r;
}

int lifecycle_loop_failed(int rc)
{
	int unmounted;

	if (rc >= 0)
		return 0;
	pthread_mutex_lock(&lc.lock);
	unmounted = lc.unmounted;
	pthread_mutex_unlock(&lc.lock);
	return !(unmounted && (rc == -ECONNABORTED || rc == -ENODEV));
}

void lifecycle_release(struct fuse_session *se)
{
	struct pollfd pfd = { .fd = fuse_session_fd(se), .events = 0 };

	/*
	 * Only once the kernel has ended the connection: otherwise libfuse would
	 * unmount the path again, and after our lazy detach that path may be
	 * another mount. fuse_session_destroy closes the device either way.
	 */
	if (pfd.fd >= 0 && poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR))
		fuse_session_unmount(se);
}
