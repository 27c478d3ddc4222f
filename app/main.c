/*
 * main: parse, build the stack, check, mount, serve, unwind.
 *
 * Everything that can fail for a reason a person can fix (bad flags, no
 * credentials, STS refusing the role, a missing bucket, an unreachable
 * endpoint) is checked before mounting, so a mount that fails says why and
 * exits non-zero. Without -f the process detaches only after the mount is in
 * place, so its exit status says whether mounting worked.
 */
#include "app/app.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "app/doctor.h"
#include "app/exec.h"
#include "app/lifecycle.h"
#include "app/metrics_http.h"
#include "app/mountpoint.h"
#include "app/opts.h"
#include "app/serve.h"
#include "app/stack.h"
#include "auth/creds.h"
#include "cache/listing.h"
#include "cache/metacache.h"
#include "config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/strutil.h"
#include "fs/inode.h"
#include "fs/nodetrim.h"
#include "fs/resume.h"
#include "http/http.h"
#include "http/xml.h"
#include "s3/s3.h"

/* A CA bundle larger than this is not one (Mozilla's is about 200 KiB). */
#define CA_BUNDLE_MAX (16 << 20)

static void fuse_log_to_ours(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	log_msg((int)level, "fuse: %s", line);
}

/*
 * List the mount prefix once. Returns 0 when mounting should go on (also on a
 * denial, which is a warning), with *root the root's listing when one page
 * held all of it (NULL otherwise), or 1 after printing why it must not.
 */
static int mount_check(struct app *app, const char *principal, const char *endpoint,
		       struct store_dir **root)
{
	struct irsafs *fs = &app->fs;
	const struct opts *o = app->opts;
	const char *what, *ids;
	struct store_page page;
	struct store_error e;
	struct log_fields f;
	int rc;

	rc = store_list_page(fs->store, o->prefix, NULL, o->list_page_size, &page, &e);
	if (rc == 0) {
		/*
		 * A whole first page is no slower than one key: when it is the
		 * whole root, it answers the first lookups (within the TTL).
		 */
		if (!page.truncated)
			*root = listing_of_page(o->prefix, &page);
		store_page_cleanup(&page);
		log_msg(LOG_INFO, "s3://%s/%s is listable by %s", o->bucket, o->prefix, principal);
		return 0;
	}
	/* Say which request failed: each line ends with its request ids. */
	what = e.what;
	ids = e.ids;
	store_error_log_fields(&e, &f);
	f.op = "LIST";
	f.bucket = o->bucket;
	f.key = o->prefix;
	switch (e.cls) {
	case ERR_NO_BUCKET:
		log_op(LOG_ERR, &f, "bucket %s does not exist at %s (%s): check the bucket name "
		       "and the endpoint%s", o->bucket, endpoint, what, ids);
		return 1;
	case ERR_DENIED:
		if (o->strict) {
			log_op(LOG_ERR, &f, "%s may not list s3://%s/%s (%s), and --strict makes "
			       "that fatal: add s3:ListBucket on arn:aws:s3:::%s%s%s%s to the role's "
			       "policy, or mount a prefix the role may list%s", principal, o->bucket,
			       o->prefix, what, o->bucket, *o->prefix ? " (condition s3:prefix "
			       : "", o->prefix, *o->prefix ? "*)" : "", ids);
			return 1;
		}
		log_op(LOG_WARNING, &f, "%s may not list s3://%s/%s (%s): mounting anyway; "
		       "listing that directory will fail with EACCES, paths the role may read stay "
		       "reachable by name%s", principal, o->bucket, o->prefix, what, ids);
		/* The root shows the denial (d--x--x--x) from the start. */
		fs_note_denial(fs, FUSE_ROOT_ID, o->prefix, &e);
		return 0;
	default:
		break;
	}
	if (rc == -EKEYEXPIRED)
		log_op(LOG_ERR, &f, "no valid credentials to list s3://%s/%s", o->bucket, o->prefix);
	else
		log_op(LOG_ERR, &f, "cannot list s3://%s/%s at %s: %s%s", o->bucket, o->prefix,
		       endpoint, what, ids);
	return 1;
}

/*
 * curl opens the CA bundle itself, at the first TLS handshake, and would wait
 * there for ever on a FIFO: check it is a plain file first. 0, or 1 after
 * saying what is wrong.
 */
static int check_ca_bundle(const char *path)
{
	int rc;

	if (!path)
		return 0;
	rc = file_check_small(path, CA_BUNDLE_MAX);
	if (rc == 0)
		return 0;
	log_msg(LOG_ERR, "cannot use the CA bundle %s (AWS_CA_BUNDLE): %s; point "
		"AWS_CA_BUNDLE at a PEM file of CA certificates (at most %d MiB), or unset it "
		"to use the system's", path, file_read_strerror(rc), CA_BUNDLE_MAX >> 20);
	return 1;
}

/*
 * S3 requests carry the access key id, the session token and a signature
 * anyone on the path could replay for a while: over plain HTTP to another
 * host, say so once. Decided from the URL alone, before any request.
 */
static void warn_cleartext(const char *endpoint)
{
	char host[64];

	if (url_is_cleartext_remote(endpoint, host, sizeof(host)))
		log_msg(LOG_WARNING, "S3 at %s is plain HTTP to %s, which is not loopback: "
			"the signed requests (access key id, session token) and the data cross "
			"the network unencrypted; use https://", endpoint, host);
}

/*
 * Secrets live in this process's memory: no core file may carry them, and
 * no other unprivileged process may ptrace it or read /proc/PID/mem.
 */
static void no_core_dumps(void)
{
	struct rlimit rl;

	/* The soft limit only: a command run with exec may raise its own again. */
	if (getrlimit(RLIMIT_CORE, &rl) == 0) {
		rl.rlim_cur = 0;
		setrlimit(RLIMIT_CORE, &rl);
	}
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/*
 * The region when neither --region nor AWS_REGION/AWS_DEFAULT_REGION gave
 * one: the shared profile, then (only with --allow-instance-role) IMDS.
 * Returns 0, or 1 after logging why mounting cannot go on.
 */
static int resolve_region(struct opts *o, struct http_client *http, char **buf)
{
	char why[CREDS_WHY_LEN] = "", r[64];
	const char *from = "the shared profile";

	if (o->region)
		return 0;
	*buf = creds_profile_region();
	if (!*buf && o->allow_instance_role &&
	    creds_imds_region(creds_imds_endpoint(), http, r, sizeof(r), why, sizeof(why)) == 0) {
		*buf = strdup(r);
		from = "the instance metadata";
	}
	if (*buf) {
		o->region = *buf;
		log_msg(LOG_INFO, "region %s from %s", *buf, from);
		return 0;
	}
	if (o->endpoint)
		return 0;
	log_msg(LOG_ERR, "no region: pass --region, set AWS_REGION (or AWS_DEFAULT_REGION), "
		"set region in the AWS profile, or give --endpoint-url%s%s",
		o->allow_instance_role ? "; the instance metadata did not say: " : " (the "
		"instance metadata is asked only with --allow-instance-role)",
		o->allow_instance_role ? why : "");
	return 1;
}

static int serve(struct app *app, const struct exec_cmd *cmd)
{
	struct irsafs *fs = &app->fs;
	const struct opts *o = app->opts;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *loop = NULL;
	struct fuse_session *se = NULL;
	char optbuf[512], counters[256];
	unsigned n;
	int rc = 1;

	/*
	 * Type fuse.irsafs (what probes and the dead-mount check look for); the
	 * source is the bucket, as an fstab line names it, so `mount -a` sees
	 * that line is mounted already.
	 */
	snprintf(optbuf, sizeof(optbuf), "ro,default_permissions,fsname=%s,subtype=irsafs%s",
		 o->bucket, o->allow_other ? ",allow_other" : "");
	if (fuse_opt_add_arg(&args, "irsafs") || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, optbuf) || (o->debug && fuse_opt_add_arg(&args, "-odebug")))
		goto out;
	se = fuse_session_new(&args, &irsafs_ops, sizeof(irsafs_ops), fs);
	if (!se)
		goto out;
	fs->se = se;
	/*
	 * Stop signals: until now the startup thread ended the process; from
	 * here they wait for the signal thread (mount form) or exec's handlers,
	 * which unmount. Before the mount, and before fuse_daemonize forks.
	 */
	lifecycle_startup_done();
	fs->mount_path = realpath(o->mountpoint, NULL);
	if (resume_session_mount(fs, se, o->mountpoint) != 0) {
		log_msg(LOG_ERR, "cannot mount on %s (does it exist, is it a directory, and is "
			"/dev/fuse available?)", o->mountpoint);
		goto out_session;
	}
	log_msg(LOG_NOTICE, "mounted s3://%s/%s on %s, read-only", o->bucket, o->prefix,
		o->mountpoint);
	if (!cmd && fuse_daemonize(o->foreground) != 0)
		goto out_unmount;
	/* Threads do not survive fork: background refreshes start only now. */
	creds_cache_background(app->creds);
	if (stack_start(&app->stack) != 0)
		goto out_unmount;
	app->trim = nodetrim_start(fs, o->metadata_cache_size, stack_listing_bytes, &app->stack);
	if (!o->foreground)
		log_use_syslog();
	loop = fuse_loop_cfg_create();
	if (!loop)
		goto out_unmount;
	fuse_loop_cfg_set_clone_fd(loop, 0);
	fuse_loop_cfg_set_max_threads(loop, 64);
	fuse_loop_cfg_set_idle_threads(loop, 8);
	if (lifecycle_signals_start(app, se, !cmd) != 0) {
		log_msg(LOG_ERR, "cannot start the signal thread");
		goto out_loop;
	}
	/* Its thread reads fs: started once the mount is up, stopped before fs goes. */
	if (app->metrics && metrics_http_start(app->metrics, app) != 0) {
		lifecycle_signals_stop();
		goto out_loop;
	}
	if (cmd) {
		rc = exec_run(app, se, loop, cmd);
	} else {
		rc = lifecycle_loop_failed(fuse_session_loop_mt(se, loop)) ? IRSAFS_EXIT_FAIL
									    : IRSAFS_EXIT_OK;
		lifecycle_counters(fs, counters, sizeof(counters));
		log_msg(LOG_NOTICE, "unmounting %s (%s)", o->mountpoint, counters);
	}
	lifecycle_signals_stop();
	/* They read the stack's books (the listing fetches among them): first. */
	metrics_http_stop(app->metrics);
	nodetrim_stop(app->trim);
	app->trim = NULL;
	/* Listing threads answer FUSE requests: stop them before the fd goes. */
	stack_stop(&app->stack);
	/* The loop is over: what the kernel never released is closed now. */
	n = fs_handles_close(fs);
	if (n)
		log_msg(LOG_INFO, "closed %u open file%s or director%s whose release the "
			"kernel dropped when the connection ended", n, n == 1 ? "" : "s",
			n == 1 ? "y" : "ies");
out_loop:
	fuse_loop_cfg_destroy(loop);
out_unmount:
	/* Usually done already, by the signal thread or by exec: then this only reports. */
	if (lifecycle_unmount(se, o->mountpoint) == UNMOUNT_LAZY) {
		if (!cmd && rc == IRSAFS_EXIT_OK)
			rc = IRSAFS_EXIT_LAZY;
		lifecycle_release(se);
	}
out_session:
	fuse_session_destroy(se);
	free(fs->mount_path);
	fs->mount_path = NULL;
out:
	fuse_opt_free_args(&args);
	return rc;
}

int main(int argc, char **argv)
{
	char why[CREDS_WHY_LEN], ua[64];
	struct http_client *http = NULL;
	struct creds_provider *prov;
	struct creds_chain_config chain;
	struct creds *cr = NULL;
	char *region_buf = NULL;
	struct http_config hc;
	struct app app;
	struct irsafs *fs = &app.fs;
	struct opts o;
	struct exec_cmd cmd = { 0 };
	struct store_dir *root = NULL;
	char *principal = NULL;
	int rc = 1;

	log_set_tag("irsafs");
	no_core_dumps();
	if (argc > 1 && !strcmp(argv[1], "doctor"))
		return doctor_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "serve"))
		return serve_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "probe"))
		return mountpoint_probe_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "exec") && exec_split(&argc, &argv, &cmd) != 0)
		return IRSAFS_EXIT_USAGE;
	/* Before any thread starts, so that every thread inherits the mask. */
	lifecycle_signals_block();
	if (opts_parse(argc, argv, &o) != 0) {
		opts_cleanup(&o);
		return 2;
	}
	if (o.show_help) {
		opts_usage(stdout);
		opts_cleanup(&o);
		return 0;
	}
	if (o.show_version) {
		printf("irsafs %s\n", IRSAFS_VERSION);
		opts_cleanup(&o);
		return 0;
	}
	if (o.debug)
		log_set_level(LOG_DEBUG);
	if (o.log_level >= 0)
		log_set_level(o.log_level);
	if (o.log_json)
		log_set_format(LOG_FORMAT_JSON);
	if (cmd.argv)
		o.foreground = 1;	/* exec never detaches: it waits for its command */
	fuse_set_log_func(fuse_log_to_ours);
	/* Before STS and S3: a dead mount to clear, or a live one already there. */
	if (mountpoint_prepare(o.mountpoint) != 0)
		goto out_opts;
	/* From here main may wait on the network: a stop signal ends it at once. */
	if (lifecycle_startup_start(cmd.argv != NULL) != 0) {
		log_msg(LOG_ERR, "cannot start the signal thread");
		goto out_opts;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_msg(LOG_ERR, "cannot initialise libcurl");
		goto out_opts;
	}
	xml_global_init();

	memset(&app, 0, sizeof(app));
	app.opts = &o;
	fs->cfg = (struct fs_config){
		.bucket = o.bucket,
		.uid = o.uid,
		.gid = o.gid,
		.file_mode = o.file_mode,
		.dir_mode = o.dir_mode,
		.negative_ttl = o.negative_ttl,
		.kernel_readahead = o.kernel_readahead,
		.direct_io_size = o.direct_io_size,
		.direct_io_given = o.direct_io_given,
	};
	fs_handles_init(fs);
	fs->ttl = o.metadata_ttl;
	fs->ttl_ms = (long long)(o.metadata_ttl * 1000);
	clock_gettime(CLOCK_REALTIME, &fs->mount_time);
	/* Bound now: a taken port fails the start before STS is asked anything. */
	if (o.metrics_addr && !(app.metrics = metrics_http_listen(o.metrics_addr)))
		goto out_curl;

	snprintf(ua, sizeof(ua), "irsafs/%s", IRSAFS_VERSION);
	hc = (struct http_config){
		.connect_timeout_ms = 5000,
		.stall_timeout_ms = 10000,
		.user_agent = ua,
		.ca_bundle = getenv("AWS_CA_BUNDLE") && *getenv("AWS_CA_BUNDLE")
				     ? getenv("AWS_CA_BUNDLE") : NULL,
		.pool_max = 64,
	};
	if (check_ca_bundle(hc.ca_bundle))
		goto out_curl;
	http = http_client_new(&hc);
	if (!http) {
		log_msg(LOG_ERR, "out of memory");
		goto out_curl;
	}
	if (resolve_region(&o, http, &region_buf))
		goto out_http;
	fs->cfg.region = o.region;
	chain = (struct creds_chain_config){
		.region = o.region,
		.duration_seconds = o.credential_duration,
		.allow_instance_role = o.allow_instance_role,
	};
	prov = creds_provider_from_env(http, &chain, why, sizeof(why));
	if (!prov) {
		log_msg(LOG_ERR, "%s", why);
		goto out_http;
	}
	app.creds = creds_cache_new(prov);
	if (!app.creds) {
		prov->destroy(prov);
		log_msg(LOG_ERR, "out of memory");
		goto out_http;
	}
	lifecycle_startup_phase("while getting credentials");
	if (creds_cache_acquire(app.creds, &cr, why, sizeof(why)) != 0) {
		struct log_fields f;

		creds_cache_failure_fields(app.creds, &f);
		log_op(LOG_ERR, &f, "cannot get credentials from %s: %s",
		       creds_cache_source(app.creds), why);
		goto out_creds;
	}
	/* Only the name is kept: the cache holds the secrets, and refreshes them. */
	principal = strdup(cr->principal_arn ? cr->principal_arn : "unknown");
	creds_release(cr);
	cr = NULL;
	if (!principal) {
		log_msg(LOG_ERR, "out of memory");
		goto out_creds;
	}
	log_msg(LOG_NOTICE, "identity: %s (credentials from %s)", principal,
		creds_cache_source(app.creds));

	if (stack_open_s3(&app.stack, &o, http, app.creds, &fs->counters.s3_requests, why,
			  sizeof(why)) != 0) {
		log_msg(LOG_ERR, "%s", why);
		goto out_creds;
	}
	fs->store = app.stack.top;
	warn_cleartext(s3_store_endpoint(app.stack.s3));
	fs->inodes = inode_table_new(o.prefix);
	if (!fs->inodes) {
		log_msg(LOG_ERR, "out of memory");
		goto out_store;
	}
	inode_table_set_ttl(fs->inodes, fs->ttl_ms);
	lifecycle_startup_phase("while listing the bucket");
	if (mount_check(&app, principal, s3_store_endpoint(app.stack.s3), &root))
		goto out_inodes;
	if (stack_open_caches(&app.stack, &o, why, sizeof(why)) != 0) {
		log_msg(LOG_ERR, "%s", why);
		goto out_inodes;
	}
	if (root)
		metacache_set_dir(app.stack.meta, o.prefix, root);
	fs->store = app.stack.top;
	rc = serve(&app, cmd.argv ? &cmd : NULL);
out_inodes:
	store_dir_release(root);
	inode_table_free(fs->inodes);
out_store:
	stack_free(&app.stack);
out_creds:
	creds_release(cr);
	free(principal);
	creds_cache_free(app.creds);
out_http:
	http_client_free(http);
	free(region_buf);
out_curl:
	metrics_http_free(app.metrics);
	curl_global_cleanup();
out_opts:
	/* Before the mount (a failed start) the startup thread still runs. */
	lifecycle_startup_done();
	opts_cleanup(&o);
	return rc;
}
