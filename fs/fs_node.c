/*
 * Names: lookup, forget and getattr, and how denials show.
 *
 * A lookup inside a directory listed within the metadata TTL is answered from
 * that listing. Otherwise it asks S3 directly, with two requests at once: a
 * ListObjectsV2 of "name/" with max-keys=1 (a directory shadows a file of the
 * same name, so its answer wins) and, for the file, a GET of the first
 * --lookup-read bytes (a HEAD when that is 0). The GET answers what a HEAD
 * would, and keeps the bytes for an open that follows (cache/headcache.h): a
 * cold `cat path` then costs one round trip before its first byte, not three.
 * An empty or archived object is asked again with a HEAD; a GET that failed
 * for throttling or a server fault is not (that would be a second budget).
 * The GET's denial is reported only once the probe has said the name is no
 * directory, so a prefix-scoped role walking into its prefix sees no warning
 * about the directory's own name. This keeps a path reachable by its full
 * name even under a directory the role may not list. A name with no node remembers its answer
 * in the table's negative entries: "no such key" for the negative TTL, a
 * denial for the metadata TTL (the kernel caches only the former).
 *
 * What the answers mean, for a role without s3:ListBucket on the prefix: S3
 * answers 403, not 404, for a key that does not exist (so as not to reveal
 * that it does not), and irsafs passes that on as EACCES; it never guesses
 * ENOENT from a denial. When the directory probe is denied and the HEAD says
 * 404, the name may still be a directory: EACCES too.
 *
 * Denials as modes: once a denial of a node has been seen (its listing or its
 * bytes refused), its attributes show it until the metadata TTL runs out: a
 * directory keeps only its x bits (d--x--x--x: it can be traversed, not
 * listed), a file shows no permission bits at all. The kernel checks these
 * modes itself (default_permissions), so access(2) agrees. This shows what
 * was observed; irsafs does not evaluate IAM policies. After a denial the
 * kernel's cached attributes are invalidated so the next stat sees it.
 */
#include "fs/fs_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/log.h"
#include "core/strutil.h"
#include "core/workq.h"
#include "fs/inode.h"
#include "fs/listing.h"
#include "s3/store.h"

struct irsafs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

void fs_count(unsigned long long *c, unsigned long long n)
{
	__atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

void fs_fill_stat(const struct irsafs *fs, uint64_t ino, int is_dir,
		      const struct store_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = fs->cfg.uid;
	st->st_gid = fs->cfg.gid;
	st->st_blksize = 1 << 20;
	if (is_dir) {
		st->st_mode = S_IFDIR | fs->cfg.dir_mode;
		st->st_nlink = 2;
		st->st_size = 0;
		st->st_mtim = fs->mount_time;
	} else {
		st->st_mode = S_IFREG | fs->cfg.file_mode;
		st->st_nlink = 1;
		st->st_size = a->size;
		st->st_blocks = (a->size + 511) / 512;
		st->st_mtim = a->mtime;
	}
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

void fs_stat_denied(struct stat *st)
{
	if (S_ISDIR(st->st_mode))
		st->st_mode = (st->st_mode & ~(mode_t)07777) | (st->st_mode & 0111);
	else
		st->st_mode &= ~(mode_t)07777;
}

/* Reply to a lookup with node (key, is_dir, attr), taking one reference. */
static void reply_entry(fuse_req_t req, const char *key, int is_dir, const struct store_attr *a,
			int denied)
{
	struct irsafs *fs = fs_of(req);
	struct fuse_entry_param e;
	uint64_t ino;

	ino = inode_lookup_ref(fs->inodes, key, is_dir, a);
	if (!ino) {
		fs_reply_err(req, METRICS_FS_LOOKUP, ENOMEM);
		return;
	}
	if (denied)
		inode_set_denied(fs->inodes, ino);
	else
		denied = inode_is_denied(fs->inodes, ino);
	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.attr_timeout = fs->ttl;
	e.entry_timeout = fs->ttl;
	fs_fill_stat(fs, ino, is_dir, a, &e.attr);
	if (denied)
		fs_stat_denied(&e.attr);
	if (fuse_reply_entry(req, &e) == -ENOENT) {
		/* The lookup was interrupted: the kernel never saw the reference. */
		inode_forget(fs->inodes, ino, 1);
	}
}

void fs_reply_entry(fuse_req_t req, const char *key, int is_dir, const struct store_attr *a)
{
	reply_entry(req, key, is_dir, a, 0);
}

void fs_reply_err(fuse_req_t req, int fs_op, int err)
{
	metrics_fs_error(fs_op, err);
	fuse_reply_err(req, err);
}

void fs_reply_negative(fuse_req_t req)
{
	struct fuse_entry_param e;

	metrics_fs_error(METRICS_FS_LOOKUP, ENOENT);
	/* ino 0 with a timeout lets the kernel cache the miss, for the negative TTL. */
	memset(&e, 0, sizeof(e));
	e.entry_timeout = fs_of(req)->cfg.negative_ttl;
	fuse_reply_entry(req, &e);
}

/* Archived, not denied: say so once, with the storage class, never "add it to the policy". */
static void log_archived(struct irsafs *fs, const char *key, const char *node_class,
			 const struct store_error *e)
{
	const char *sc = e->storage_class[0] ? e->storage_class : node_class;
	char cls[128], once[1100];
	struct log_fields f;

	if (sc && sc[0] && strcmp(sc, "STANDARD") != 0)
		snprintf(cls, sizeof(cls), "in storage class %s%s%s%s", sc,
			 e->access_tier[0] ? " (archive tier " : "", e->access_tier,
			 e->access_tier[0] ? ")" : "");
	else
		snprintf(cls, sizeof(cls), "in an archive storage class");
	snprintf(once, sizeof(once), "archived s3://%s/%s", fs->cfg.bucket, key);
	store_error_log_fields(e, &f);
	f.op = "GET";
	f.bucket = fs->cfg.bucket;
	f.key = key;
	log_op_once_key(LOG_WARNING, once, &f, "s3://%s/%s is %s and not restored (%s): restore "
			"it first (s3:RestoreObject, then wait for the restore), or read another "
			"path%s", fs->cfg.bucket, key, cls, e->what, e->ids);
}

void fs_note_denial(struct irsafs *fs, uint64_t ino, const char *key, const struct store_error *e)
{
	char text[2048], when[21];

	if (e->cls == ERR_ARCHIVED) {
		/* Not restored is not denied: no "----------", no last_denial (README). */
		struct inode_info ii;
		int have = ino && inode_get(fs->inodes, ino, &ii) == 0;

		log_archived(fs, key, have ? ii.attr.storage_class : "", e);
		if (have)
			inode_info_cleanup(&ii);
		return;
	}
	time_format_iso8601(time(NULL), when);
	if (e->cls == ERR_DENIED)
		snprintf(text, sizeof(text), "%s %s on %s: %s%s", when, e->action, e->resource,
			 e->what, e->ids);
	else	/* EACCES without the store's words (out of memory on the way) */
		snprintf(text, sizeof(text), "%s %s: EACCES", when, key);
	inode_set_last_denial(fs->inodes, text);
	if (!ino)
		return;
	inode_set_denied(fs->inodes, ino);
	/* The kernel may hold the old attributes for the TTL: make it ask again. */
	if (fs->se)
		fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0);
}

/* Always archived until restored (an Intelligent-Tiering object only may be). */
static int archived_class(const char *sc)
{
	return !strcmp(sc, "GLACIER") || !strcmp(sc, "DEEP_ARCHIVE");
}

int fs_open_check(struct irsafs *fs, const struct inode_info *ii)
{
	struct store_read rd;
	struct store_error e;
	size_t got = 0;
	char one;
	int rc;

	if (ii->denied)
		return -EACCES;
	if (!archived_class(ii->attr.storage_class) || ii->attr.size == 0)
		return 0;
	/*
	 * A restored copy reads normally, and neither the listing nor our HEAD
	 * says whether there is one: ask for one byte. Not restored, open fails
	 * with EACCES, fs_note_denial logs the storage class and "restore it
	 * first", and the node is not marked denied.
	 */
	store_read_init(&rd, ii->attr.etag, ii->attr.size);
	rc = store_read_range(fs->store, ii->key, &rd, 0, 1, &one, &got, &e);
	if (rc == -EACCES)
		fs_note_denial(fs, ii->ino, ii->key, &e);
	return rc;
}

char *fs_join(const char *a, const char *b, const char *c)
{
	char *s;

	if (asprintf(&s, "%s%s%s", a, b, c) < 0)
		return NULL;
	return s;
}

/* Does anything exist under dir_key? 1 yes, 0 no, or a negative errno. */
static int dir_exists(struct irsafs *fs, const char *dir_key, struct store_error *e)
{
	struct store_page page;
	int rc, found;

	rc = store_list_page(fs->store, dir_key, NULL, 1, &page, e);
	if (rc)
		return rc;
	found = page.nobjects > 0 || page.nprefixes > 0;
	store_page_cleanup(&page);
	return found;
}

/* The directory probe of a lookup, run beside the file's GET (fs->helpers). */
struct dir_probe {
	struct work w;
	struct irsafs *fs;
	const char *dir_key;
	struct store_error e;
	int rc;
};

static void dir_probe_run(struct work *w)
{
	struct dir_probe *p = (struct dir_probe *)w;

	p->rc = dir_exists(p->fs, p->dir_key, &p->e);
}

/*
 * --unlisted-dirs: is a name whose directory probe answered list_rc and whose
 * GET (or HEAD) answered rc a directory that can be traversed, not listed?
 * Without s3:ListBucket, S3 refuses both for a directory, for a missing key
 * and for a key the role may not read alike (403): nothing tells them apart.
 * The flag takes all three for directories, so that a role that may only
 * GetObject reaches a/b/c.txt by its path; a missing or unreadable name then
 * stats as d--x--x--x and opening it gives EACCES (opendir of a denied node).
 * Without the flag such a name is EACCES.
 */
static int unlisted_dir(const struct irsafs *fs, int list_rc, int rc)
{
	return fs->cfg.unlisted_dirs && list_rc == -EACCES && (rc == -EACCES || rc == -ENOENT);
}

/*
 * Ask S3 about a name: *list_rc is the directory probe's answer (1, 0 or a
 * negative errno), the return value the file's (0 with *a filled, or a
 * negative errno; not asked, -ENOENT, when the probe found a directory).
 * Both go at once; with a head cache the file's is a GET whose first bytes
 * the store keeps for the open (store_stat_head), else a HEAD.
 */
static int probe_name(struct irsafs *fs, const char *dir_key, const char *file_key,
		      int *list_rc, struct store_attr *a, struct store_error *e)
{
	struct dir_probe dp = { .w.fn = dir_probe_run, .fs = fs, .dir_key = dir_key };
	int rc;

	workq_submit(fs->helpers, &dp.w);
	rc = store_stat_head(fs->store, file_key, a, e);
	/* Waits for the probe, or runs it now when no helper was free. */
	workq_finish(fs->helpers, &dp.w);
	*list_rc = dp.rc;
	if (dp.rc == 1 || (dp.rc < 0 && dp.rc != -EACCES))
		return -ENOENT;
	if (rc == -ENOSYS) /* no head cache, or no memory for the bytes: a HEAD */
		return store_stat(fs->store, file_key, a, e);
	if (rc == 0)
		return 0;
	if (rc == -ENOENT)
		return rc;
	if (rc == -EACCES && e->cls == ERR_DENIED) {
		/* Not a directory after all: the denial is this name's, report it. */
		if (!unlisted_dir(fs, dp.rc, rc)) /* else fs_op_lookup says what it shows */
			store_error_log_denial(e);
		return rc;
	}
	/*
	 * Throttled, broken, unreachable, untrusted or without credentials:
	 * the GET spent the operation's budget on it, and a HEAD would start a
	 * second one against the same fault. Not so a GET answered with the
	 * wrong range or length (MalformedReply): those answers come at once,
	 * and say nothing about what a HEAD would (a proxy that breaks ranges).
	 */
	if ((err_class_retryable(e->cls) && e->cls != ERR_PROTOCOL) || rc == -EKEYEXPIRED ||
	    rc == -EKEYREJECTED || e->cls == ERR_TLS)
		return rc;
	/*
	 * Empty (416), archived (InvalidObjectState), no usable size, or no
	 * usable answer to the range: ask with a HEAD.
	 */
	return store_stat(fs->store, file_key, a, e);
}

/*
 * The role may list but not read: find the key itself with one more listing
 * (prefix = the key), so an unreadable file still shows, as "----------".
 * 1 with *a filled when the key exists, 0 when not, or a negative errno.
 */
static int file_listed(struct irsafs *fs, const char *file_key, struct store_attr *a)
{
	struct store_page page;
	struct store_error e;
	int rc, found = 0;

	rc = store_list_page(fs->store, file_key, NULL, 1, &page, &e);
	if (rc)
		return rc;
	if (page.nobjects > 0 && !strcmp(page.objects[0].key, file_key)) {
		const struct store_object *o = &page.objects[0];

		memset(a, 0, sizeof(*a));
		a->size = o->size;
		a->mtime = o->mtime;
		snprintf(a->etag, sizeof(a->etag), "%s", o->etag ? o->etag : "");
		snprintf(a->storage_class, sizeof(a->storage_class), "%s", o->storage_class);
		found = 1;
	}
	store_page_cleanup(&page);
	return found;
}

void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct irsafs *fs = fs_of(req);
	const struct listing_entry *ent;
	struct inode_info pi;
	struct listing *l;
	struct store_attr a;
	struct store_error e;
	char *dir_key = NULL, *file_key = NULL;
	size_t len = strlen(name);
	int rc, list_rc;

	fs_tune_readahead(fs);
	fs_count(&fs->counters.lookups, 1);
	if (len > NAME_MAX_BYTES) {
		fs_reply_err(req, METRICS_FS_LOOKUP, ENAMETOOLONG);
		return;
	}
	if (!listing_name_ok(name, len)) {
		fs_reply_err(req, METRICS_FS_LOOKUP, ENOENT);
		return;
	}
	rc = inode_get(fs->inodes, parent, &pi);
	if (rc) {
		fs_reply_err(req, METRICS_FS_LOOKUP, -rc);
		return;
	}
	l = inode_get_listing(fs->inodes, parent, fs->ttl_ms);
	if (l) {
		fs_count(&fs->counters.lookup_hits, 1);
		ent = listing_find(l, name);
		if (!ent) {
			fs_reply_negative(req);
		} else {
			char *key = fs_join(pi.key, name, ent->is_dir ? "/" : "");

			listing_entry_attr(ent, &a);
			if (key)
				fs_reply_entry(req, key, ent->is_dir, &a);
			else
				fs_reply_err(req, METRICS_FS_LOOKUP, ENOMEM);
			free(key);
		}
		listing_release(l);
		goto out;
	}

	dir_key = fs_join(pi.key, name, "/");
	file_key = fs_join(pi.key, name, "");
	if (!dir_key || !file_key) {
		fs_reply_err(req, METRICS_FS_LOOKUP, ENOMEM);
		goto out;
	}
	rc = inode_neg_get(fs->inodes, file_key);
	fs_count(rc ? &fs->counters.lookup_hits : &fs->counters.lookup_misses, 1);
	if (rc == -ENOENT) {
		fs_reply_negative(req);
		goto out;
	}
	if (rc) {
		fs_reply_err(req, METRICS_FS_LOOKUP, -rc);
		goto out;
	}
	rc = probe_name(fs, dir_key, file_key, &list_rc, &a, &e);
	if (list_rc == 1) {
		memset(&a, 0, sizeof(a));
		fs_reply_entry(req, dir_key, 1, &a);
		goto out;
	}
	if (list_rc < 0 && list_rc != -EACCES) {
		fs_reply_err(req, METRICS_FS_LOOKUP, -list_rc);
		goto out;
	}
	if (rc == 0) {
		fs_reply_entry(req, file_key, 0, &a);
	} else if (unlisted_dir(fs, list_rc, rc)) {
		/* Neither listed nor read: a directory to traverse (--unlisted-dirs). */
		log_once(LOG_INFO, "s3://%s/%s: S3 refused to list %s and to read %s: shown as a "
			 "directory that can be traversed, not listed (--unlisted-dirs); if %s is "
			 "a file, the role needs s3:GetObject on it", fs->cfg.bucket, dir_key,
			 dir_key, file_key, file_key);
		memset(&a, 0, sizeof(a));
		reply_entry(req, dir_key, 1, &a, 1);
	} else if (rc == -EACCES && list_rc == 0 && file_listed(fs, file_key, &a) == 1) {
		/* Listed but not readable: a file that shows its denial. */
		fs_note_denial(fs, 0, file_key, &e);
		reply_entry(req, file_key, 0, &a, 1);
	} else if (rc == -ENOENT && list_rc == -EACCES) {
		/* Not a file, and we may not look for a directory: it may be one. */
		inode_neg_put(fs->inodes, file_key, -EACCES);
		fs_reply_err(req, METRICS_FS_LOOKUP, EACCES);
	} else if (rc == -ENOENT) {
		inode_neg_put(fs->inodes, file_key, -ENOENT);
		fs_reply_negative(req);
	} else {
		if (rc == -EACCES) {
			fs_note_denial(fs, 0, file_key, &e);
			inode_neg_put(fs->inodes, file_key, -EACCES);
		}
		fs_reply_err(req, METRICS_FS_LOOKUP, -rc);
	}
out:
	free(dir_key);
	free(file_key);
	inode_info_cleanup(&pi);
}

void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	inode_forget(fs_of(req)->inodes, ino, nlookup);
	fuse_reply_none(req);
}

void fs_op_forget_multi(fuse_req_t req, size_t count_, struct fuse_forget_data *forgets)
{
	size_t i;

	for (i = 0; i < count_; i++)
		inode_forget(fs_of(req)->inodes, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

/* Refresh a file's attributes with a HEAD when they are older than the TTL. */
int fs_refresh_attr(struct irsafs *fs, struct inode_info *ii)
{
	struct store_error e;
	int rc;

	/* A denial seen within the TTL stands; asking again would only cost. */
	if (ii->is_dir || ii->denied || clock_mono_ms() - ii->attr_ms < fs->ttl_ms)
		return 0;
	rc = store_stat(fs->store, ii->key, &ii->attr, &e);
	if (rc == -EACCES) {
		/* Known to exist, refused now: keep the node, show the denial. */
		fs_note_denial(fs, ii->ino, ii->key, &e);
		ii->denied = 1;
		return 0;
	}
	if (rc)
		return rc;
	ii->attr_ms = clock_mono_ms();
	inode_set_attr(fs->inodes, ii->ino, &ii->attr);
	return 0;
}

void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct irsafs *fs = fs_of(req);
	struct inode_info ii;
	struct stat st;
	int rc;

	fs_tune_readahead(fs);
	rc = inode_get(fs->inodes, ino, &ii);
	if (!rc)
		rc = fs_refresh_attr(fs, &ii);
	if (rc) {
		fs_reply_err(req, METRICS_FS_GETATTR, -rc);
	} else {
		fs_fill_stat(fs, ino, ii.is_dir, &ii.attr, &st);
		if (ii.denied)
			fs_stat_denied(&st);
		fuse_reply_attr(req, &st, fs->ttl);
	}
	inode_info_cleanup(&ii);
}
