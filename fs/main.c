/*
 * main: parse, build the stack, check, mount, serve, unwind.
 *
 * Everything that can fail for a reason a person can fix (bad flags, no
 * credentials, STS refusing the role, a missing bucket, an unreachable
 * endpoint) is checked before mounting, so a mount that fails says why and
 * exits non-zero. Without -f the process detaches only after the mount is in
 * place, so its exit status says whether mounting worked.
 */
#include "fs/irsafs.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "auth/creds.h"
#include "cache/diskcache.h"
#include "cache/headcache.h"
#include "cache/membudget.h"
#include "cache/readahead.h"
#include "config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/strutil.h"
#include "core/workq.h"
#include "fs/doctor.h"
#include "fs/exec.h"
#include "fs/fs_i.h"
#include "fs/inode.h"
#include "fs/listing.h"
#include "fs/lifecycle.h"
#include "fs/metrics_http.h"
#include "fs/mountpoint.h"
#include "fs/opts.h"
#include "fs/resume.h"
#include "fs/serve.h"
#include "http/http.h"
#include "http/xml.h"
#include "s3/s3.h"

/* Cold lookups that can probe in parallel at once; more take two round trips. */
#define LOOKUP_HELPERS 8
/* A CA bundle larger than this is not one (Mozilla's is about 200 KiB). */
#define CA_BUNDLE_MAX (16 << 20)

static void fuse_log_to_ours(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	log_msg((int)level, "fuse: %s", line);
}

/*
 * List the mount prefix once (and keep the listing when one page holds it). Returns 0 when mounting should go on (also on a
 * denial, which is a warning), or 1 after printing why it must not.
 */
static int mount_check(struct irsafs *fs, const char *principal, const char *endpoint)
{
	const struct opts *o = fs->opts;
	struct log_fields f = { .op = "LIST", .bucket = o->bucket, .key = o->prefix };
	struct s3_list_page page;
	struct s3_error e;
	char what[320], ids[256];
	int rc;

	rc = store_list_page(fs->store, o->prefix, NULL, o->list_page_size, &page, &e);
	if (rc == 0) {
		/*
		 * A whole first page is no slower than one key: when it is the
		 * whole root, it answers the first lookups (within the TTL).
		 */
		struct listing *l = page.truncated ? NULL : listing_of_page(o->prefix, &page);

		if (l)
			inode_set_listing(fs->inodes, FUSE_ROOT_ID, l);
		listing_release(l);
		s3_list_page_cleanup(&page);
		log_msg(LOG_INFO, "s3://%s/%s is listable by %s", o->bucket, o->prefix, principal);
		return 0;
	}
	/* Say which request failed: each line ends with its request ids. */
	err_describe(&e, what, sizeof(what));
	err_ids(&e, ids, sizeof(ids));
	err_log_fields(&e, &f);
	switch (err_classify(&e)) {
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
		fs_note_denial(fs, FUSE_ROOT_ID, "s3:ListBucket", o->prefix, 1, &e);
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

static int serve(struct irsafs *fs, const struct exec_cmd *cmd)
{
	const struct opts *o = fs->opts;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *loop = NULL;
	struct fuse_session *se = NULL;
	char optbuf[512], counters[256];
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
	creds_cache_background(fs->creds);
	if (readahead_start(fs->ra) != 0) {
		log_msg(LOG_ERR, "cannot start the read-ahead threads");
		goto out_unmount;
	}
	/* Best effort: without helpers a lookup asks its two questions in turn. */
	if (workq_start(fs->helpers) != 0)
		log_msg(LOG_WARNING, "cannot start the lookup helper threads: cold lookups "
			"will take two round trips");
	if (!o->foreground)
		log_use_syslog();
	loop = fuse_loop_cfg_create();
	if (!loop)
		goto out_unmount;
	fuse_loop_cfg_set_clone_fd(loop, 0);
	fuse_loop_cfg_set_max_threads(loop, 64);
	fuse_loop_cfg_set_idle_threads(loop, 8);
	if (lifecycle_signals_start(fs, se, !cmd) != 0) {
		log_msg(LOG_ERR, "cannot start the signal thread");
		goto out_loop;
	}
	/* Its thread reads fs: started once the mount is up, stopped before fs goes. */
	if (fs->metrics && metrics_http_start(fs->metrics, fs) != 0) {
		lifecycle_signals_stop();
		goto out_loop;
	}
	if (cmd) {
		rc = exec_run(fs, se, loop, cmd);
	} else {
		rc = fuse_session_loop_mt(se, loop) < 0 ? IRSAFS_EXIT_FAIL : IRSAFS_EXIT_OK;
		lifecycle_counters(fs, counters, sizeof(counters));
		log_msg(LOG_NOTICE, "unmounting %s (%s)", o->mountpoint, counters);
	}
	lifecycle_signals_stop();
	/* Listing threads answer FUSE requests: stop them before the fd goes (fs_dir.c). */
	fs_dir_stop(fs);
	metrics_http_stop(fs->metrics);
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
	struct s3_config sc;
	struct ra_config ra_cfg;
	struct irsafs fs;
	struct opts o;
	struct exec_cmd cmd = { 0 };
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

	memset(&fs, 0, sizeof(fs));
	fs.opts = &o;
	fs.ttl = o.metadata_ttl;
	fs.ttl_ms = (long long)(o.metadata_ttl * 1000);
	clock_gettime(CLOCK_REALTIME, &fs.mount_time);
	/* Bound now: a taken port fails the start before STS is asked anything. */
	if (o.metrics_addr && !(fs.metrics = metrics_http_listen(o.metrics_addr)))
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
	fs.creds = creds_cache_new(prov);
	if (!fs.creds) {
		prov->destroy(prov);
		log_msg(LOG_ERR, "out of memory");
		goto out_http;
	}
	lifecycle_startup_phase("while getting credentials");
	if (creds_cache_acquire(fs.creds, &cr, why, sizeof(why)) != 0) {
		struct log_fields f;

		creds_cache_failure_fields(fs.creds, &f);
		log_op(LOG_ERR, &f, "cannot get credentials from %s: %s",
		       creds_cache_source(fs.creds), why);
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
		creds_cache_source(fs.creds));

	sc = (struct s3_config){
		.bucket = o.bucket,
		.endpoint = o.endpoint,
		.region = o.region,
		.path_style = o.force_path_style,
		.page_size = o.list_page_size,
		.budget_ms = o.budget_ms,
		.requests = &fs.counters.s3_requests,
	};
	fs.store = s3_store_new(&sc, http, fs.creds, why, sizeof(why));
	if (!fs.store) {
		log_msg(LOG_ERR, "%s", why);
		goto out_creds;
	}
	warn_cleartext(s3_store_endpoint(fs.store));
	fs.inodes = inode_table_new(o.prefix);
	if (!fs.inodes) {
		log_msg(LOG_ERR, "out of memory");
		goto out_store;
	}
	inode_table_set_limits(fs.inodes, &(struct inode_limits){
		.ttl_ms = fs.ttl_ms,
		.negative_ttl_ms = (long long)(o.negative_ttl * 1000),
		.max_listing_bytes = o.metadata_cache_size,
	});
	lifecycle_startup_phase("while listing the bucket");
	if (mount_check(&fs, principal, s3_store_endpoint(fs.store)))
		goto out_inodes;
	fs.mem = membudget_new(o.max_memory);
	ra_cfg = (struct ra_config){
		.part_size = o.read_part_size,
		.concurrency = (unsigned)o.read_concurrency,
	};
	/* A window never exceeds a quarter of the budget: four files stream at full speed. */
	ra_cfg.max_window = o.read_part_size * (size_t)o.read_concurrency;
	if (ra_cfg.max_window > o.max_memory / 4)
		ra_cfg.max_window = o.max_memory / 4;
	if (o.cache_dir) {
		fs.disk = diskcache_new(fs.store, fs.mem, o.bucket, o.cache_dir, o.max_cache_size,
					why, sizeof(why));
		if (!fs.disk) {
			log_msg(LOG_ERR, "%s", why);
			goto out_ra;
		}
	}
	if (fs.mem && o.lookup_read) {
		fs.heads = headcache_new(fs.mem, 16);
		if (!fs.heads) {
			log_msg(LOG_ERR, "out of memory");
			goto out_ra;
		}
	}
	fs.ra = fs.mem ? readahead_new(fs.disk ? fs.disk : fs.store, fs.mem, &ra_cfg) : NULL;
	fs.helpers = workq_new(LOOKUP_HELPERS);
	if (!fs.ra || !fs.helpers) {
		log_msg(LOG_ERR, "out of memory");
		goto out_ra;
	}
	rc = serve(&fs, cmd.argv ? &cmd : NULL);
out_ra:
	workq_free(fs.helpers);
	readahead_free(fs.ra);
	headcache_free(fs.heads);
	store_destroy(fs.disk);
	membudget_free(fs.mem);
out_inodes:
	inode_table_free(fs.inodes);
out_store:
	store_destroy(fs.store);
out_creds:
	creds_release(cr);
	free(principal);
	creds_cache_free(fs.creds);
out_http:
	http_client_free(http);
	free(region_buf);
out_curl:
	metrics_http_free(fs.metrics);
	curl_global_cleanup();
out_opts:
	/* Before the mount (a failed start) the startup thread still runs. */
	lifecycle_startup_done();
	opts_cleanup(&o);
	return rc;
}
