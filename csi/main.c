/*
 * irsafs-csi: the CSI node plugin.
 *
 *   irsafs-csi --endpoint unix:///csi/csi.sock --node-id NODE [--kubelet-dir DIR]
 *
 * One thread, one poll loop: the gRPC socket the kubelet calls, and for each
 * published volume the socket its Pod's `irsafs serve` takes it from. The
 * plugin needs root, /dev/fuse and the host's mount namespace (it mounts);
 * it holds no AWS credentials and opens no network connection: the Pod's
 * own irsafs, with the Pod's own identity, talks to AWS.
 *
 * SIGTERM/SIGINT stop the loop; the volumes stay mounted (they belong to
 * their Pods), and their servers keep serving.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "core/log.h"
#include "core/unixsock.h"
#include "csi/grpc.h"
#include "csi/pollset.h"
#include "csi/service.h"
#include "csi/volume.h"

#define EXIT_USAGE 2

struct args {
	const char *endpoint;		/* the socket path, "unix://" removed */
	char *node_id;
	const char *kubelet_dir;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: irsafs-csi --endpoint unix:///PATH/csi.sock --node-id NODE [OPTIONS]\n"
		"\n"
		"The irsafs CSI node plugin: mounts irsafs volumes for Pods and hands them to\n"
		"the Pod's unprivileged `irsafs serve` (driver name %s).\n"
		"\n"
		"  --endpoint unix:///PATH  the unix socket to serve CSI on (the kubelet's\n"
		"                           plugin directory; $CSI_ENDPOINT in manifests)\n"
		"  --node-id NODE           this node's name, returned by NodeGetInfo\n"
		"  --kubelet-dir DIR        the kubelet's root directory (default /var/lib/kubelet)\n"
		"  --log-level L            error, warning, notice, info (default) or debug\n"
		"  --log-format F           text (default) or json\n"
		"  -h, --help               this text\n"
		"  -V, --version            the version\n", CSI_DRIVER_NAME);
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on stderr for a bad command line; returns the exit status. */
static int bad(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "irsafs-csi: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	return EXIT_USAGE;
}

/* Parse argv into a; 0, -1 after --help/--version, or EXIT_USAGE after one line. */
static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option longopts[] = {
		{ "endpoint", required_argument, NULL, 'e' },
		{ "node-id", required_argument, NULL, 'n' },
		{ "kubelet-dir", required_argument, NULL, 'k' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "log-format", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *ep = NULL;
	int c, lvl;

	a->kubelet_dir = "/var/lib/kubelet";
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'e':
			ep = optarg;
			break;
		case 'n':
			a->node_id = optarg;
			break;
		case 'k':
			a->kubelet_dir = optarg;
			break;
		case 'l':
			lvl = log_level_parse(optarg);
			if (lvl < 0)
				return bad("--log-level must be error, warning, notice, info or "
					   "debug: got \"%s\"", optarg);
			log_set_level(lvl);
			break;
		case 'f':
			if (!strcmp(optarg, "json"))
				log_set_format(LOG_FORMAT_JSON);
			else if (strcmp(optarg, "text") != 0)
				return bad("--log-format must be text or json: got \"%s\"", optarg);
			break;
		case 'h':
			usage(stdout);
			return -1;
		case 'V':
			printf("irsafs-csi %s\n", IRSAFS_VERSION);
			return -1;
		case ':':
			return bad("%s needs a value (see irsafs-csi --help)", argv[optind - 1]);
		default:
			return bad("unknown option %s (see irsafs-csi --help)", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad("unexpected argument \"%s\": irsafs-csi takes only options (see "
			   "irsafs-csi --help)", argv[optind]);
	if (!ep)
		return bad("%s", "--endpoint is missing: pass --endpoint unix:///PATH/csi.sock");
	if (!strncmp(ep, "unix://", 7))
		a->endpoint = ep + 7;
	else if (!strncmp(ep, "unix:", 5))
		a->endpoint = ep + 5;
	else
		a->endpoint = NULL;
	if (!a->endpoint || a->endpoint[0] != '/')
		return bad("--endpoint must be a unix socket, unix:///PATH/csi.sock: got \"%s\"",
			   ep);
	if (!a->node_id || !*a->node_id)
		return bad("%s", "--node-id is missing: pass the node's name (spec.nodeName, "
			   "from the downward API)");
	if (strlen(a->node_id) > 256)
		return bad("%s", "--node-id is longer than 256 bytes");
	if (a->kubelet_dir[0] != '/')
		return bad("--kubelet-dir must be an absolute path: got \"%s\"", a->kubelet_dir);
	return 0;
}

/* Block the stop signals and take them through a signalfd in the loop. */
static int stop_signals_fd(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return -1;
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int main(int argc, char **argv)
{
	struct csi_service svc = { 0 };
	struct grpc_server *srv = NULL;
	struct signalfd_siginfo si;
	struct pollset ps;
	struct args a = { 0 };
	int lfd = -1, sfd = -1, sslot, rc;

	log_set_tag("irsafs-csi");
	/* It holds FUSE connections: no core file, no ptrace by others. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	rc = parse_args(argc, argv, &a);
	if (rc)
		return rc < 0 ? 0 : rc;
	pollset_init(&ps);
	rc = 1;
	sfd = stop_signals_fd();
	if (sfd < 0) {
		log_msg(LOG_ERR, "cannot set up signal handling: %s", strerror(errno));
		goto out;
	}
	svc.node_id = a.node_id;
	svc.volumes = volumes_new(a.kubelet_dir);
	if (!svc.volumes) {
		log_msg(LOG_ERR, "out of memory");
		goto out;
	}
	/* Only root (the kubelet) may call: the socket is 0600. */
	lfd = unixsock_listen(a.endpoint, SOCK_STREAM, 0600);
	if (lfd < 0) {
		log_msg(LOG_ERR, "cannot listen on %s: %s (does its directory exist?)", a.endpoint,
			strerror(-lfd));
		goto out;
	}
	srv = grpc_server_new(lfd, csi_service_handle, &svc);
	if (!srv) {
		log_msg(LOG_ERR, "out of memory");
		goto out;
	}
	log_msg(LOG_NOTICE, "irsafs-csi %s (%s) serving CSI on unix://%s for node %s, kubelet "
		"directory %s", IRSAFS_VERSION, CSI_DRIVER_NAME, a.endpoint, a.node_id,
		a.kubelet_dir);
	for (;;) {
		pollset_clear(&ps);
		sslot = pollset_add(&ps, sfd, POLLIN);
		if (sslot < 0 || grpc_poll_fds(srv, &ps) != 0 ||
		    volumes_poll_fds(svc.volumes, &ps) != 0) {
			log_msg(LOG_ERR, "out of memory");
			goto out;
		}
		if (poll(ps.fds, ps.n, 1000) < 0 && errno != EINTR) {
			log_msg(LOG_ERR, "poll: %s", strerror(errno));
			goto out;
		}
		if (pollset_revents(&ps, sslot) & POLLIN &&
		    read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			log_msg(LOG_NOTICE, "%s: stopping; published volumes stay mounted",
				strsignal((int)si.ssi_signo));
			rc = 0;
			goto out;
		}
		grpc_dispatch(srv, &ps);
		volumes_dispatch(svc.volumes, &ps);
		volumes_tick(svc.volumes);
	}
out:
	grpc_server_free(srv);
	if (lfd >= 0) {
		close(lfd);
		unlink(a.endpoint);
	}
	volumes_free(svc.volumes);
	if (sfd >= 0)
		close(sfd);
	pollset_cleanup(&ps);
	return rc;
}
