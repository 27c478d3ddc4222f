/*
 * lifecycle: how a mount ends, and what it says while it runs.
 *
 * The exit statuses irsafs documents, the unmount that is clean when it can
 * be and lazy when the mount is busy, and the counters: one line on SIGUSR1
 * and one summary when the mount ends. (The removal of a dead mount left by
 * an earlier irsafs is in app/mountpoint.c.)
 *
 * SIGUSR1, SIGTERM, SIGINT and SIGHUP are blocked in every thread
 * (lifecycle_signals_block, called from main before any thread starts, so
 * threads inherit the mask) and taken by one thread with sigwait, which may
 * log and unmount safely: before the mount is up the startup thread, which
 * ends the process; after it the signal thread (mount form), or exec's
 * handlers, which unblock them in the threads that serve the command. lifecycle_unmount may be called from
 * that thread and from main: the first call does the work. Otherwise not
 * thread-safe, except lifecycle_counters, which reads atomically.
 */
#ifndef IRSAFS_APP_LIFECYCLE_H
#define IRSAFS_APP_LIFECYCLE_H

#include <stddef.h>

#include "app/app.h"

/* Exit statuses of the mount form (irsafs exec exits with the command's). */
enum {
	IRSAFS_EXIT_OK = 0,		/* unmounted cleanly (also after SIGTERM/SIGINT) */
	IRSAFS_EXIT_FAIL = 1,		/* could not mount, or the FUSE session failed */
	IRSAFS_EXIT_USAGE = 2,		/* bad command line */
	IRSAFS_EXIT_LAZY = 3,		/* stopped while busy: detached lazily */
};

enum lifecycle_unmount_result {
	UNMOUNT_GONE,			/* already unmounted by someone else, or fd-passed */
	UNMOUNT_CLEAN,
	UNMOUNT_LAZY,			/* busy: detached, files still open; se still connected */
};

/*
 * Block SIGUSR1, SIGTERM, SIGINT and SIGHUP in the calling thread and so in
 * every thread started later (both forms: exec unblocks the stop signals in
 * its own threads once its handlers are in place).
 */
void lifecycle_signals_block(void);

/*
 * Before the mount is up: a thread that takes the stop signals (SIGTERM,
 * SIGINT, SIGHUP, blocked by lifecycle_signals_block(1) before) while main
 * waits on STS or the first listing, and on the first one logs why and exits
 * at once: status IRSAFS_EXIT_FAIL (mount form) or 128 + the signal (exec
 * form). lifecycle_startup_phase names what main waits for, for that line
 * ("while getting credentials"; a string literal). lifecycle_startup_done,
 * called before mounting (and before fuse_daemonize forks), stops the thread;
 * a stop signal from then on stays pending for the signal thread or exec.
 * Done is idempotent. 0 or -errno.
 */
int lifecycle_startup_start(int exec_form);
void lifecycle_startup_phase(const char *what);
void lifecycle_startup_done(void);

/*
 * Start the signal thread once se is mounted (after fuse_daemonize: threads
 * do not survive fork), from the thread that will run the loop. It logs the
 * counters on SIGUSR1. With stop_signals it also takes SIGTERM, SIGINT and
 * SIGHUP: the first unmounts while the loop still runs (lazily when busy, the
 * open files then served until closed), so the loop ends by itself; a second
 * stops the loop at once. 0 or -errno. Stop it after the loop has returned.
 */
int lifecycle_signals_start(struct app *app, struct fuse_session *se, int stop_signals);
void lifecycle_signals_stop(void);

/*
 * Unmount se's mountpoint: a normal unmount first;
 * when that fails because the mount is busy, a lazy detach (logged as a
 * warning). After GONE or CLEAN se is released (fuse_session_unmount was
 * called). After LAZY the connection stays up for the files still open: the
 * caller may serve them until the kernel ends it (the loop then returns by
 * itself), and must call lifecycle_release. Never call fuse_session_unmount
 * besides these two.
 */
/*
 * Did the FUSE loop that returned rc fail? Not when it only saw the
 * connection end after we had unmounted: once the last file closes after a
 * lazy detach, the kernel may end it as aborted (ECONNABORTED) rather than
 * gone (which libfuse takes as the normal end).
 */
int lifecycle_loop_failed(int rc);

enum lifecycle_unmount_result lifecycle_unmount(struct fuse_session *se, const char *mountpoint);
void lifecycle_release(struct fuse_session *se);

/* "objects opened N, bytes read N, S3 requests N, listings N" into buf. */
void lifecycle_counters(const struct irsafs *fs, char *buf, size_t len);

/* Seconds since start (CLOCK_MONOTONIC). */
double lifecycle_elapsed(const struct timespec *start);

#endif
