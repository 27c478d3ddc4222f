/*
 * exec: `irsafs exec [OPTIONS] BUCKET MOUNTPOINT -- COMMAND [ARGS...]`.
 *
 * The init-container form: mount, wait until the mount answers, run the
 * command with the mount in place, stop serving, unmount, and exit with the
 * command's status. Everything before the command (flags, credentials, the
 * bucket check, the mount itself) is main's usual path, so a mount that fails
 * exits 1 before the command runs. One summary line ends the run (files,
 * bytes, requests, seconds, MB/s); while the command runs, a progress line
 * is kept up to date on stderr when it is a terminal.
 *
 * While the command runs, SIGTERM, SIGINT, SIGHUP and SIGQUIT are passed on
 * to it (kubelet stops an init container with SIGTERM); irsafs unmounts once
 * the command has exited. Not thread-safe: called once from main.
 */
#ifndef IRSAFS_APP_EXEC_H
#define IRSAFS_APP_EXEC_H

#include "app/app.h"

struct exec_cmd {
	char **argv;			/* NULL-terminated, points into main's argv */
};

/*
 * argv is `irsafs exec [OPTIONS] BUCKET MOUNTPOINT -- COMMAND...`. On success
 * *argc and *argv describe the mount part, with "exec" as argv[0] (so
 * opts_parse reads it as usual), and cmd the command. Returns -1 after one
 * line on stderr when "--" or the command is missing (the caller exits 2).
 */
int exec_split(int *argc, char ***argv, struct exec_cmd *cmd);

/*
 * se is mounted on app->opts->mountpoint and nothing serves it yet. Serves it
 * on a thread (fuse_session_loop_mt with loop), runs the command once the root answers, then stops serving.
 * Returns the command's exit status (128 + N when killed by signal N, 126 or
 * 127 when it could not be run, as the shell does), or IRSAFS_EXIT_FAIL when
 * the mount never answered and the command did not run. The mount is gone on
 * return (lifecycle_unmount; the caller's own call then only reports).
 */
int exec_run(struct app *app, struct fuse_session *se, struct fuse_loop_config *loop,
	     const struct exec_cmd *cmd);

#endif
