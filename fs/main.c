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

#include "auth/creds.h"
#include "config.h"
#include "core/err.h"
#include "core/log.h"
#include "fs/inode.h"
#include "fs/opts.h"
#include "http/http.h"
#include "http/xml.h"
#include "s3/s3.h"

static void fuse_log_to_ours(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	log_msg((int)level, "fuse: %s", line);
}

/*
 * List the mount prefix once. Returns 0 when mounting should go on (also on a
 * denial, which is a warning), or 1 after printing why it must not.
 */
static int mount_check(struct irsafs *fs, const char *principal, const char *endpoint)
{
	const struct opts *o = fs->opts;
	struct s3_list_page page;
	struct s3_error e;
	char what[320];
	int rc;

	rc = store_list_page(fs->store, o->prefix, NULL, 1, &page, &e);
	if (rc == 0) {
		s3_list_page_cleanup(&page);
		log_msg(LOG_INFO, "s3://%s/%s is listable by %s", o->bucket, o->prefix, principal);
		return 0;
	}
	err_describe(&e, what, sizeof(what));
	switch (err_classify(&e)) {
	case ERR_NO_BUCKET:
		log_msg(LOG_ERR, "bucket %s does not exist at %s (%s): check the bucket name "
			"and the endpoint", o->bucket, endpoint, what);
		return 1;
	case ERR_DENIED:
		log_msg(LOG_WARNING, "%s may not list s3://%s/%s (%s): mounting anyway; listing "
			"that directory will fail with EACCES, paths the role may read stay "
			"reachable by name", principal, o->bucket, o->prefix, what);
		return 0;
	default:
		break;
	}
	if (rc == -EKEYEXPIRED)
		log_msg(LOG_ERR, "no valid credentials to list s3://%s/%s", o->bucket, o->prefix);
	else
		log_msg(LOG_ERR, "cannot list s3://%s/%s at %s: %s", o->bucket, o->prefix,
			endpoint, what);
	return 1;
}

static int serve(struct irsafs *fs)
{
	const struct opts *o = fs->opts;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *loop = NULL;
	struct fuse_session *se = NULL;
	char optbuf[512];
	int rc = 1;

	snprintf(optbuf, sizeof(optbuf), "ro,default_permissions,fsname=irsafs:%s,subtype=irsafs%s",
		 o->bucket, o->allow_other ? ",allow_other" : "");
	if (fuse_opt_add_arg(&args, "irsafs") || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, optbuf) || (o->debug && fuse_opt_add_arg(&args, "-odebug")))
		goto out;
	se = fuse_session_new(&args, &irsafs_ops, sizeof(irsafs_ops), fs);
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, o->mountpoint) != 0) {
		log_msg(LOG_ERR, "cannot mount on %s (does it exist, is it a directory, and is "
			"/dev/fuse available?)", o->mountpoint);
		goto out_signals;
	}
	log_msg(LOG_NOTICE, "mounted s3://%s/%s on %s, read-only", o->bucket, o->prefix,
		o->mountpoint);
	if (fuse_daemonize(o->foreground) != 0)
		goto out_unmount;
	if (!o->foreground)
		log_use_syslog();
	loop = fuse_loop_cfg_create();
	if (!loop)
		goto out_unmount;
	fuse_loop_cfg_set_clone_fd(loop, 0);
	fuse_loop_cfg_set_max_threads(loop, 64);
	fuse_loop_cfg_set_idle_threads(loop, 8);
	rc = fuse_session_loop_mt(se, loop) ? 1 : 0;
	fuse_loop_cfg_destroy(loop);
	log_msg(LOG_NOTICE, "unmounting %s (opens %llu, bytes read %llu, listings %llu)",
		o->mountpoint, fs->counters.opens, fs->counters.bytes_read,
		fs->counters.listings);
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out:
	fuse_opt_free_args(&args);
	return rc;
}

int main(int argc, char **argv)
{
	char why[CREDS_WHY_LEN], ua[64];
	struct http_client *http = NULL;
	struct creds_provider *prov;
	struct creds *cr = NULL;
	struct http_config hc;
	struct s3_config sc;
	struct irsafs fs;
	struct opts o;
	const char *principal;
	int rc = 1;

	log_set_tag("irsafs");
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
	fuse_set_log_func(fuse_log_to_ours);
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

	snprintf(ua, sizeof(ua), "irsafs/%s", IRSAFS_VERSION);
	hc = (struct http_config){
		.connect_timeout_ms = 5000,
		.stall_timeout_ms = 10000,
		.user_agent = ua,
		.ca_bundle = getenv("AWS_CA_BUNDLE") && *getenv("AWS_CA_BUNDLE")
				     ? getenv("AWS_CA_BUNDLE") : NULL,
		.pool_max = 64,
	};
	http = http_client_new(&hc);
	if (!http) {
		log_msg(LOG_ERR, "out of memory");
		goto out_curl;
	}
	prov = creds_provider_from_env(http, o.region, o.credential_duration, why, sizeof(why));
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
	if (creds_cache_acquire(fs.creds, &cr, why, sizeof(why)) != 0) {
		log_msg(LOG_ERR, "cannot get credentials from %s: %s",
			creds_cache_source(fs.creds), why);
		goto out_creds;
	}
	principal = cr->principal_arn ? cr->principal_arn : "unknown principal";
	log_msg(LOG_NOTICE, "identity: %s (credentials from %s)", principal,
		creds_cache_source(fs.creds));

	sc = (struct s3_config){
		.bucket = o.bucket,
		.endpoint = o.endpoint,
		.region = o.region,
		.path_style = o.force_path_style,
		.page_size = o.list_page_size,
		.budget_ms = o.budget_ms,
	};
	fs.store = s3_store_new(&sc, http, fs.creds, why, sizeof(why));
	if (!fs.store) {
		log_msg(LOG_ERR, "%s", why);
		goto out_creds;
	}
	fs.inodes = inode_table_new(o.prefix);
	if (!fs.inodes) {
		log_msg(LOG_ERR, "out of memory");
		goto out_store;
	}
	if (mount_check(&fs, principal, s3_store_endpoint(fs.store)))
		goto out_inodes;
	rc = serve(&fs);
out_inodes:
	inode_table_free(fs.inodes);
out_store:
	store_destroy(fs.store);
out_creds:
	creds_release(cr);
	creds_cache_free(fs.creds);
out_http:
	http_client_free(http);
out_curl:
	curl_global_cleanup();
out_opts:
	opts_cleanup(&o);
	return rc;
}
