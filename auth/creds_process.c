/*
 * credential_process: run the profile's command and read credentials from
 * its standard output (the Version 1 JSON the AWS CLI documents).
 *
 * The command runs through /bin/sh -c with posix_spawn (safe in a threaded
 * daemon, unlike fork), standard input from /dev/null, standard output and
 * standard error captured under caps, and a deadline after which it is
 * killed. Its standard error is quoted (one line, shortened) when it fails,
 * so a person sees the tool's own message; its standard output may hold
 * secrets and is never quoted.
 */
#include "auth/creds.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth/creds_i.h"
#include "core/buf.h"
#include "core/strutil.h"

#define PROCESS_TIMEOUT_MS 30000
#define STDERR_MAX 4096

extern char **environ;

struct process {
	struct creds_provider base;	/* first: the provider is cast back */
	char *command;
	char *profile;
};

int creds_process_parse(const char *json, size_t len, struct creds **out, char *why,
			size_t whylen)
{
	static const struct creds_json_keys keys = { .token = "SessionToken", .need_version = 1 };

	return creds_json_parse(json, len, &keys, "credential_process output", out, why, whylen);
}

/* Read both pipes until EOF, the caps, or the deadline. 0, -ETIMEDOUT or -EMSGSIZE. */
static int drain(int outfd, int errfd, struct buf *out, struct buf *err)
{
	long long deadline = clock_mono_ms() + PROCESS_TIMEOUT_MS;
	struct pollfd pf[2] = { { outfd, POLLIN, 0 }, { errfd, POLLIN, 0 } };
	char chunk[4096];
	int open_fds = 2, rc = 0;

	while (open_fds) {
		long long left = deadline - clock_mono_ms();
		int i, n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(pf, 2, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		for (i = 0; i < 2; i++) {
			ssize_t r;

			if (pf[i].fd < 0 || !pf[i].revents)
				continue;
			r = read(pf[i].fd, chunk, sizeof(chunk));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				pf[i].fd = -1;
				open_fds--;
				continue;
			}
			if (i == 0) {
				if (buf_append(out, chunk, (size_t)r))
					rc = -EMSGSIZE;
			} else {
				/* Keep only the start of standard error. */
				buf_append(err, chunk, (size_t)r);
			}
		}
		if (rc)
			break;
	}
	OPENSSL_cleanse(chunk, sizeof(chunk));
	return rc;
}

/* The first non-empty line of a tool's standard error, shortened. */
static void first_line(struct buf *err, char *out, size_t len)
{
	char *s = err->data, *nl;

	if (!s) {
		out[0] = '\0';
		return;
	}
	while (*s == '\n' || *s == '\r' || *s == ' ')
		s++;
	nl = s + strcspn(s, "\r\n");
	*nl = '\0';
	if (*s)
		snprintf(out, len, ": %.200s", s);
	else
		out[0] = '\0';
}

static int process_fetch(struct creds_provider *p, struct creds **out, char *why, size_t whylen)
{
	struct process *pr = (struct process *)p;
	char sh[] = "sh", dash_c[] = "-c";
	char *argv[] = { sh, dash_c, pr->command, NULL };
	int outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, status = 0, rc;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, pipe_dfl;
	struct buf sout, serr;
	char tail[220];
	pid_t pid;

	buf_init(&sout, CREDS_JSON_MAX);
	buf_init(&serr, STDERR_MAX);
	if (pipe2(outp, O_CLOEXEC) || pipe2(errp, O_CLOEXEC)) {
		rc = -errno;
		snprintf(why, whylen, "credential_process for profile %s: pipe: %s", pr->profile,
			 strerror(-rc));
		goto out_pipes;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
	posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
	/* Not irsafs's signal mask (stop signals are blocked in every thread). */
	sigemptyset(&none);
	sigemptyset(&pipe_dfl);
	sigaddset(&pipe_dfl, SIGPIPE);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &pipe_dfl);
	rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	close(outp[1]);
	close(errp[1]);
	outp[1] = errp[1] = -1;
	if (rc) {
		snprintf(why, whylen, "credential_process for profile %s: cannot start /bin/sh: %s",
			 pr->profile, strerror(rc));
		rc = -rc;
		goto out_pipes;
	}
	rc = drain(outp[0], errp[0], &sout, &serr);
	if (rc)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	first_line(&serr, tail, sizeof(tail));
	if (rc == -ETIMEDOUT) {
		snprintf(why, whylen, "credential_process for profile %s did not finish within "
			 "%d s and was killed", pr->profile, PROCESS_TIMEOUT_MS / 1000);
	} else if (rc == -EMSGSIZE) {
		snprintf(why, whylen, "credential_process for profile %s wrote more than %d bytes",
			 pr->profile, CREDS_JSON_MAX);
		rc = -EPROTO;
	} else if (rc) {
		snprintf(why, whylen, "credential_process for profile %s: %s", pr->profile,
			 strerror(-rc));
	} else if (WIFSIGNALED(status)) {
		snprintf(why, whylen, "credential_process for profile %s was killed by signal %d%s",
			 pr->profile, WTERMSIG(status), tail);
		rc = -EIO;
	} else if (WEXITSTATUS(status) != 0) {
		snprintf(why, whylen, "credential_process for profile %s exited with status %d%s",
			 pr->profile, WEXITSTATUS(status), tail);
		rc = WEXITSTATUS(status) == 127 ? -ENOENT : -EIO;
	} else {
		char inner[CREDS_WHY_LEN];

		rc = creds_process_parse(sout.data ? sout.data : "", sout.len, out, inner,
					 sizeof(inner));
		if (rc)
			snprintf(why, whylen, "credential_process for profile %s: %s", pr->profile,
				 inner);
	}
out_pipes:
	if (outp[0] >= 0)
		close(outp[0]);
	if (outp[1] >= 0)
		close(outp[1]);
	if (errp[0] >= 0)
		close(errp[0]);
	if (errp[1] >= 0)
		close(errp[1]);
	buf_cleanse(&sout);
	/* A failing tool may have printed what it should not have. */
	buf_cleanse(&serr);
	OPENSSL_cleanse(tail, sizeof(tail));
	return rc;
}

static void process_destroy(struct creds_provider *p)
{
	struct process *pr = (struct process *)p;

	/* The command line may carry a secret of its own (a password flag). */
	if (pr->command)
		OPENSSL_cleanse(pr->command, strlen(pr->command));
	free(pr->command);
	free(pr->profile);
	free(pr);
}

struct creds_provider *creds_process_new(const char *command, const char *profile_name)
{
	struct process *pr = calloc(1, sizeof(*pr));

	if (!pr)
		return NULL;
	pr->base.name = "credential_process";
	pr->base.fetch = process_fetch;
	pr->base.destroy = process_destroy;
	pr->command = strdup(command);
	pr->profile = strdup(profile_name);
	if (!pr->command || !pr->profile) {
		process_destroy(&pr->base);
		return NULL;
	}
	return &pr->base;
}
