/*
 * app: the irsafs program, on top of everything else.
 *
 * The application is what runs the mount: the command line (opts), the
 * forms other than a plain mount (doctor, exec, serve, probe), the store
 * stack it composes (stack.h), the FUSE side it hands that stack to
 * (fs/irsafs.h), how the mount starts and ends (lifecycle, mountpoint), and
 * the metrics endpoint. It is the only code besides s3/ that includes http/
 * or auth/, and nothing outside app/ includes app/.
 *
 * struct app is built by main and lives until main returns; its parts are
 * immutable once the mount serves, except what each part's own header says
 * is thread-safe.
 */
#ifndef IRSAFS_APP_APP_H
#define IRSAFS_APP_APP_H

#include "app/opts.h"
#include "app/stack.h"
#include "fs/irsafs.h"

struct metrics_http;
struct creds_cache;

struct app {
	struct opts *opts;
	struct creds_cache *creds;	/* the refreshing credentials the S3 store signs with */
	struct stack stack;		/* the stores; the filesystem holds its top */
	struct irsafs fs;		/* the FUSE side: userdata of the session */
	struct metrics_http *metrics;	/* --metrics-addr endpoint, or NULL */
	struct nodetrim *trim;		/* keeps fs's nodes in their share, or NULL */
};

#endif
