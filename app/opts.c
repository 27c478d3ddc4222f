#include "app/opts.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "core/log.h"
#include "core/strutil.h"

enum {
	OPT_PREFIX = 256,
	OPT_UID,
	OPT_GID,
	OPT_FILE_MODE,
	OPT_DIR_MODE,
	OPT_ALLOW_OTHER,
	OPT_ENDPOINT,
	OPT_REGION,
	OPT_PATH_STYLE,
	OPT_DEBUG,
	OPT_METADATA_TTL,
	OPT_PAGE_SIZE,
	OPT_CRED_DURATION,
	OPT_BUDGET,
	OPT_VERSION,
	OPT_STRICT,
	OPT_NEG_TTL,
	OPT_MD_CACHE,
	OPT_MAX_MEMORY,
	OPT_PART_SIZE,
	OPT_READ_CONC,
	OPT_LOOKUP_READ,
	OPT_KERNEL_RA,
	OPT_CACHE_DIR,
	OPT_CACHE_SIZE,
	OPT_LOG_FORMAT,
	OPT_METRICS_ADDR,
	OPT_LOG_LEVEL,
	OPT_INSTANCE_ROLE,
	OPT_UNLISTED_DIRS,
	OPT_LIST_TIMEOUT,
	OPT_DIR_RA,
	OPT_DIRECT_IO,
};

static const struct option long_opts[] = {
	{ "prefix", required_argument, NULL, OPT_PREFIX },
	{ "uid", required_argument, NULL, OPT_UID },
	{ "gid", required_argument, NULL, OPT_GID },
	{ "file-mode", required_argument, NULL, OPT_FILE_MODE },
	{ "dir-mode", required_argument, NULL, OPT_DIR_MODE },
	{ "allow-other", no_argument, NULL, OPT_ALLOW_OTHER },
	{ "foreground", no_argument, NULL, 'f' },
	{ "endpoint-url", required_argument, NULL, OPT_ENDPOINT },
	{ "region", required_argument, NULL, OPT_REGION },
	{ "force-path-style", no_argument, NULL, OPT_PATH_STYLE },
	{ "debug", no_argument, NULL, OPT_DEBUG },
	{ "metadata-ttl", required_argument, NULL, OPT_METADATA_TTL },
	{ "negative-ttl", required_argument, NULL, OPT_NEG_TTL },
	{ "metadata-cache-size", required_argument, NULL, OPT_MD_CACHE },
	{ "strict", no_argument, NULL, OPT_STRICT },
	{ "list-page-size", required_argument, NULL, OPT_PAGE_SIZE },
	{ "list-timeout", required_argument, NULL, OPT_LIST_TIMEOUT },
	{ "credential-duration", required_argument, NULL, OPT_CRED_DURATION },
	{ "operation-timeout", required_argument, NULL, OPT_BUDGET },
	{ "log-format", required_argument, NULL, OPT_LOG_FORMAT },
	{ "metrics-addr", required_argument, NULL, OPT_METRICS_ADDR },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "max-memory", required_argument, NULL, OPT_MAX_MEMORY },
	{ "read-part-size", required_argument, NULL, OPT_PART_SIZE },
	{ "read-concurrency", required_argument, NULL, OPT_READ_CONC },
	{ "lookup-read", required_argument, NULL, OPT_LOOKUP_READ },
	{ "dir-readahead", required_argument, NULL, OPT_DIR_RA },
	{ "kernel-readahead", required_argument, NULL, OPT_KERNEL_RA },
	{ "direct-io-size", required_argument, NULL, OPT_DIRECT_IO },
	{ "cache-dir", required_argument, NULL, OPT_CACHE_DIR },
	{ "max-cache-size", required_argument, NULL, OPT_CACHE_SIZE },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "allow-instance-role", no_argument, NULL, OPT_INSTANCE_ROLE },
	{ "unlisted-dirs", no_argument, NULL, OPT_UNLISTED_DIRS },
	{ NULL, 0, NULL, 0 },
};

void opts_usage(FILE *f)
{
	fprintf(f,
		"usage: irsafs [OPTIONS] BUCKET MOUNTPOINT\n"
		"       irsafs exec [OPTIONS] BUCKET MOUNTPOINT -- COMMAND [ARGS...]\n"
		"       irsafs doctor BUCKET [--prefix P] [--json] [--strict]\n"
		"       irsafs probe MOUNTPOINT [--timeout S]\n"
		"       irsafs serve [OPTIONS] DIR   (the Pod side of irsafs-csi)\n"
		"\n"
		"Mount an S3 bucket read-only, as the IAM role the Pod was given (IRSA).\n"
		"\n"
		"  --prefix P               mount only keys under P/ (default: the whole bucket)\n"
		"  --uid N, --gid N         owner of every file (default: the caller's)\n"
		"  --file-mode M            mode of files, octal (default 0444)\n"
		"  --dir-mode M             mode of directories, octal (default 0555)\n"
		"  --allow-other            let other users see the mount (needs user_allow_other\n"
		"                           in /etc/fuse.conf unless run as root)\n"
		"  -f, --foreground         stay in the foreground, log to stderr\n"
		"  --endpoint-url URL       S3 endpoint (default: AWS_ENDPOINT_URL_S3,\n"
		"                           AWS_ENDPOINT_URL, else https://s3.REGION.amazonaws.com)\n"
		"  --region R               region (default: AWS_REGION, AWS_DEFAULT_REGION)\n"
		"  --force-path-style       address the bucket in the path, not the host name\n"
		"                           (the default for custom endpoints)\n"
		"  --metadata-ttl S         seconds listings, attributes and denials are trusted\n"
		"                           (default 1)\n"
		"  --negative-ttl S         seconds a missing name is trusted (default: the\n"
		"                           metadata TTL)\n"
		"  --metadata-cache-size SIZE  memory for listings and for the names the\n"
		"                           kernel holds (default 64M)\n"
		"  --strict                 fail the mount when the role may not list it\n"
		"  --unlisted-dirs          a name the role may neither list nor read is a\n"
		"                           directory it can only traverse (d--x--x--x), so a\n"
		"                           role without s3:ListBucket reaches nested keys by\n"
		"                           their full path; a missing name then shows as one\n"
		"  --list-page-size N       keys per ListObjectsV2 page, 1-1000 (default 1000)\n"
		"  --list-timeout S         give up listing one directory after S seconds\n"
		"                           (default 600)\n"
		"  --credential-duration S  ask STS for credentials lasting S seconds\n"
		"  --allow-instance-role    allow the instance role (IMDSv2) as the last\n"
		"                           credential source; off by default, because on EKS\n"
		"                           it is the node's role, not the Pod's\n"
		"  --operation-timeout S    give up on one S3 operation after S seconds (default 20)\n"
		"  --max-memory SIZE        memory for read-ahead buffers, all files together\n"
		"                           (default 256M; K, M, G suffixes)\n"
		"  --read-part-size SIZE    bytes per ranged GET when reading ahead (default 8M)\n"
		"  --read-concurrency N     ranged GETs in flight at once, 1-64 (default 8)\n"
		"  --lookup-read SIZE       a file looked up by name is fetched with a GET of its\n"
		"                           first SIZE bytes, not a HEAD, so that reading it next\n"
		"                           costs no request (or one fewer); 0 = HEAD (default 128K)\n"
		"  --dir-readahead N        when a directory's files are opened in listing order\n"
		"                           (cp -a, tar, rsync), fetch up to N files ahead, in\n"
		"                           parallel; 0 = off, up to 1024 (default 64)\n"
		"  --kernel-readahead SIZE  the kernel's read-ahead for this mount, so that it asks\n"
		"                           for larger reads; 0 = leave it (default 512K; needs a\n"
		"                           writable /sys)\n"
		"  --direct-io-size SIZE    objects of SIZE or more are read with direct I/O, past\n"
		"                           the kernel's page cache: a stream costs the Pod no\n"
		"                           page cache and no copy into it; off = never (default\n"
		"                           64M; on kernels older than 6.6, off unless given)\n"
		"  --cache-dir DIR          keep what was read in DIR, checked on every read (0700,\n"
		"                           emptied at mount and at exit, one mount at a time)\n"
		"  --max-cache-size SIZE    most bytes kept in --cache-dir (default 1G)\n"
		"  --debug                  log every request and FUSE operation\n"
		"  --log-format F           text (default) or json: one JSON object per line,\n"
		"                           an operation's facts as fields (op, key, status, ...)\n"
		"  --metrics-addr HOST:PORT\n"
		"                           serve Prometheus metrics at http://HOST:PORT/metrics\n"
		"                           (default: off; 0.0.0.0:PORT for every address)\n"
		"  --log-level L            error, warning, notice, info (default) or debug\n"
		"  -h, --help               this text\n"
		"  --version                the version\n"
		"\n"
		"Credentials, first match wins: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY;\n"
		"AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE (IRSA);\n"
		"AWS_CONTAINER_CREDENTIALS_FULL_URI or _RELATIVE_URI (EKS Pod Identity, ECS);\n"
		"AWS_PROFILE in the shared config files; the instance role only with\n"
		"--allow-instance-role. A configured but broken source is an error; irsafs\n"
		"never falls back to another identity.\n");
}

static int bad(const char *opt, const char *val, const char *fix)
{
	fprintf(stderr, "irsafs: %s '%s': %s\n", opt, val, fix);
	return -1;
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_mode(const char *s, mode_t *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 8);
	if (errno || end == s || *end || v < 0 || v > 07777)
		return -1;
	*out = (mode_t)v;
	return 0;
}

/* "64M", "1G", "4096": bytes, within [min, max]. */
static int parse_size(const char *s, size_t min, size_t max, size_t *out)
{
	unsigned long long v, mul = 1;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	if (*end == 'K' || *end == 'k')
		mul = 1ULL << 10;
	else if (*end == 'M' || *end == 'm')
		mul = 1ULL << 20;
	else if (*end == 'G' || *end == 'g')
		mul = 1ULL << 30;
	if (mul != 1)
		end++;
	if (*end == 'i' && mul != 1)
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || v > max / mul || v * mul < min)
		return -1;
	*out = (size_t)(v * mul);
	return 0;
}

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

int opts_parse(int argc, char **argv, struct opts *o)
{
	const char *prefix = "";
	long v;
	char *end;
	int c;

	memset(o, 0, sizeof(*o));
	o->uid = getuid();
	o->gid = getgid();
	o->file_mode = 0444;
	o->dir_mode = 0555;
	o->metadata_ttl = 1.0;
	o->negative_ttl = -1;
	o->metadata_cache_size = 64u << 20;
	o->list_page_size = 1000;
	o->list_timeout_ms = 600000;
	o->budget_ms = 20000;
	o->max_memory = 256u << 20;
	o->read_part_size = 8u << 20;
	o->read_concurrency = 8;
	o->lookup_read = 128u << 10;
	o->dir_readahead = 64;
	o->kernel_readahead = 512u << 10;
	o->direct_io_size = 64u << 20;
	o->max_cache_size = 1u << 30;
	o->log_level = -1;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+fho:", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_PREFIX:
			prefix = optarg;
			break;
		case OPT_UID:
			if (parse_long(optarg, 0, INT_MAX, &v))
				return bad("--uid", optarg, "expected a numeric user id");
			o->uid = (uid_t)v;
			break;
		case OPT_GID:
			if (parse_long(optarg, 0, INT_MAX, &v))
				return bad("--gid", optarg, "expected a numeric group id");
			o->gid = (gid_t)v;
			break;
		case OPT_FILE_MODE:
			if (parse_mode(optarg, &o->file_mode))
				return bad("--file-mode", optarg, "expected an octal mode such as 0444");
			break;
		case OPT_DIR_MODE:
			if (parse_mode(optarg, &o->dir_mode))
				return bad("--dir-mode", optarg, "expected an octal mode such as 0555");
			break;
		case OPT_ALLOW_OTHER:
			o->allow_other = 1;
			break;
		case 'f':
			o->foreground = 1;
			break;
		case OPT_ENDPOINT:
			if (strncmp(optarg, "http://", 7) && strncmp(optarg, "https://", 8))
				return bad("--endpoint-url", optarg,
					   "expected a URL starting with http:// or https://");
			o->endpoint = optarg;
			break;
		case OPT_REGION:
			if (!*optarg || strlen(optarg) > 30)
				return bad("--region", optarg, "expected a region such as us-east-1");
			o->region = optarg;
			break;
		case OPT_PATH_STYLE:
			o->force_path_style = 1;
			break;
		case OPT_DEBUG:
			o->debug = 1;
			break;
		case OPT_METADATA_TTL:
			errno = 0;
			o->metadata_ttl = strtod(optarg, &end);
			if (errno || end == optarg || *end || o->metadata_ttl < 0 ||
			    o->metadata_ttl > 86400)
				return bad("--metadata-ttl", optarg, "expected seconds from 0 to 86400");
			break;
		case OPT_NEG_TTL:
			errno = 0;
			o->negative_ttl = strtod(optarg, &end);
			if (errno || end == optarg || *end || o->negative_ttl < 0 ||
			    o->negative_ttl > 86400)
				return bad("--negative-ttl", optarg, "expected seconds from 0 to 86400");
			break;
		case OPT_MD_CACHE:
			if (parse_size(optarg, 1u << 20, (size_t)1 << 40, &o->metadata_cache_size))
				return bad("--metadata-cache-size", optarg,
					   "expected a size of at least 1M, such as 64M");
			break;
		case OPT_STRICT:
			o->strict = 1;
			break;
		case OPT_UNLISTED_DIRS:
			o->unlisted_dirs = 1;
			break;
		case OPT_PAGE_SIZE:
			if (parse_long(optarg, 1, 1000, &v))
				return bad("--list-page-size", optarg, "expected a number from 1 to 1000");
			o->list_page_size = (int)v;
			break;
		case OPT_LIST_TIMEOUT:
			if (parse_long(optarg, 1, 86400, &v))
				return bad("--list-timeout", optarg, "expected seconds from 1 to 86400");
			o->list_timeout_ms = (long long)v * 1000;
			break;
		case OPT_CRED_DURATION:
			if (parse_long(optarg, 60, 43200, &v))
				return bad("--credential-duration", optarg,
					   "expected seconds from 60 to 43200");
			o->credential_duration = v;
			break;
		case OPT_INSTANCE_ROLE:
			o->allow_instance_role = 1;
			break;
		case OPT_BUDGET:
			if (parse_long(optarg, 1, 3600, &v))
				return bad("--operation-timeout", optarg,
					   "expected seconds from 1 to 3600");
			o->budget_ms = v * 1000;
			break;
		case OPT_LOG_FORMAT:
			if (strcmp(optarg, "text") == 0)
				o->log_json = 0;
			else if (strcmp(optarg, "json") == 0)
				o->log_json = 1;
			else
				return bad("--log-format", optarg, "expected text or json");
			break;
		case OPT_METRICS_ADDR: {
			char host[256], why[160];
			unsigned port;

			if (hostport_split(optarg, host, sizeof(host), &port, why, sizeof(why)))
				return bad("--metrics-addr", optarg, why);
			o->metrics_addr = optarg;
			break;
		}
		case OPT_LOG_LEVEL:
			o->log_level = log_level_parse(optarg);
			if (o->log_level < 0)
				return bad("--log-level", optarg,
					   "expected error, warning, notice, info or debug");
			break;
		case OPT_MAX_MEMORY:
			if (parse_size(optarg, 4u << 20, (size_t)1 << 40, &o->max_memory))
				return bad("--max-memory", optarg, "expected a size of at least 4M, "
					   "such as 256M or 1G");
			break;
		case OPT_PART_SIZE:
			if (parse_size(optarg, 64u << 10, 1u << 30, &o->read_part_size))
				return bad("--read-part-size", optarg,
					   "expected a size from 64K to 1G, such as 8M");
			break;
		case OPT_LOOKUP_READ:
			if (!strcmp(optarg, "0"))
				o->lookup_read = 0;
			else if (parse_size(optarg, 4u << 10, 8u << 20, &o->lookup_read))
				return bad("--lookup-read", optarg,
					   "expected 0 or a size from 4K to 8M, such as 128K");
			break;
		case OPT_KERNEL_RA:
			if (!strcmp(optarg, "0"))
				o->kernel_readahead = 0;
			else if (parse_size(optarg, 4u << 10, 64u << 20, &o->kernel_readahead))
				return bad("--kernel-readahead", optarg,
					   "expected 0 or a size from 4K to 64M, such as 512K");
			break;
		case OPT_DIRECT_IO:
			o->direct_io_given = 1;
			if (!strcmp(optarg, "off"))
				o->direct_io_size = SIZE_MAX;
			else if (!strcmp(optarg, "0"))
				o->direct_io_size = 0;
			else if (parse_size(optarg, 4u << 10, (size_t)1 << 50, &o->direct_io_size))
				return bad("--direct-io-size", optarg,
					   "expected off, 0 (every object) or a size such as 64M");
			break;
		case OPT_DIR_RA:
			if (parse_long(optarg, 0, 1024, &v))
				return bad("--dir-readahead", optarg, "expected a number from 0 to 1024");
			o->dir_readahead = (int)v;
			break;
		case OPT_READ_CONC:
			if (parse_long(optarg, 1, 64, &v))
				return bad("--read-concurrency", optarg, "expected a number from 1 to 64");
			o->read_concurrency = (int)v;
			break;
		case OPT_CACHE_DIR:
			if (!*optarg)
				return bad("--cache-dir", optarg, "expected a directory");
			o->cache_dir = optarg;
			break;
		case OPT_CACHE_SIZE:
			if (parse_size(optarg, 2u << 20, (size_t)1 << 50, &o->max_cache_size))
				return bad("--max-cache-size", optarg, "expected a size of at least 2M, "
					   "such as 10G");
			break;
		case 'o':
			return bad("-o", optarg, "mount options are not supported yet; use the "
				   "long options (irsafs --help)");
		case 'h':
			o->show_help = 1;
			return 0;
		case OPT_VERSION:
			o->show_version = 1;
			return 0;
		default:
			if (optopt && optopt < 256)
				fprintf(stderr, "irsafs: unknown option '-%c' (see irsafs --help)\n",
					optopt);
			else
				fprintf(stderr, "irsafs: unknown or incomplete option '%s' "
					"(see irsafs --help)\n", argv[optind - 1]);
			return -1;
		}
	}
	if (o->negative_ttl < 0)
		o->negative_ttl = o->metadata_ttl;
	if (argc - optind != 2) {
		fprintf(stderr, "irsafs: expected BUCKET and MOUNTPOINT, got %d argument%s "
			"(usage: irsafs [OPTIONS] BUCKET MOUNTPOINT)\n", argc - optind,
			argc - optind == 1 ? "" : "s");
		return -1;
	}
	o->bucket = argv[optind];
	o->mountpoint = argv[optind + 1];
	if (strlen(o->bucket) < 3 || strlen(o->bucket) > 63 || strchr(o->bucket, '/'))
		return bad("BUCKET", o->bucket, "expected a bucket name (3-63 characters, no '/')");
	while (*prefix == '/')
		prefix++;
	if (*prefix && prefix[strlen(prefix) - 1] != '/') {
		if (asprintf(&o->prefix, "%s/", prefix) < 0)
			o->prefix = NULL;
	} else {
		o->prefix = strdup(prefix);
	}
	if (!o->prefix)
		return bad("--prefix", prefix, "out of memory");
	if (!o->region)
		o->region = env_nonempty("AWS_REGION");
	if (!o->region)
		o->region = env_nonempty("AWS_DEFAULT_REGION");
	if (!o->endpoint)
		o->endpoint = env_nonempty("AWS_ENDPOINT_URL_S3");
	if (!o->endpoint)
		o->endpoint = env_nonempty("AWS_ENDPOINT_URL");
	if (o->endpoint && strncmp(o->endpoint, "http://", 7) && strncmp(o->endpoint, "https://", 8))
		return bad("AWS_ENDPOINT_URL", o->endpoint,
			   "expected a URL starting with http:// or https://");
	/* No region yet: main looks in the profile (and IMDS when allowed). */
	/* Custom endpoints (MinIO, radosgw, ...) rarely resolve bucket host names. */
	if (o->endpoint)
		o->force_path_style = 1;
	return 0;
}

void opts_cleanup(struct opts *o)
{
	free(o->prefix);
	o->prefix = NULL;
}
