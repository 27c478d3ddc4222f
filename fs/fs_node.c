/*
 * Names: lookup, forget and getattr, and how denials show.
 *
 * What a name is, the store says (store_lookup): in the mount's stack the
 * metadata cache answers from a listing kept within the TTL or a remembered
 * negative answer, or asks S3 (cache/metacache.h says how, and what a 403
 * means for a role without s3:ListBucket). This file turns its answer into a
 * node: a lookup reference, attributes for the kernel, a cacheable "no such
 * entry" (for the negative TTL), or an errno.
 *
 * Denials as modes: once a denial of a node has been seen (its listing or its
 * bytes refused), its attributes show it until the metadata TTL runs out: a
 * directory keeps only its x bits (d--x--x--x: it can be traversed, not
 * listed), a file shows no permission bits at all. The kernel checks these
 * modes itself (default_permissions), so access(2) agrees. This shows what
 * was observed; irsafs does not evaluate IAM policies. After a denial the
 * kernel's cached attributes are invalidated so the next stat sees it. An
 * archived object refused is not a denial: it is logged as such, with its
 * storage class, and its node keeps its modes.
 */
#include "fs/fs_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/strutil.h"
#include "fs/inode.h"
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

void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct irsafs *fs = fs_of(req);
	struct store_entry ent;
	struct store_error e;
	struct inode_info pi;
	size_t len = strlen(name);
	char *key = NULL;
	int rc;

	fs_tune_readahead(fs);
	fs_count(&fs->counters.lookups, 1);
	if (len > STORE_NAME_MAX) {
		fs_reply_err(req, METRICS_FS_LOOKUP, ENAMETOOLONG);
		return;
	}
	if (!store_name_ok(name, len)) {
		fs_reply_err(req, METRICS_FS_LOOKUP, ENOENT);
		return;
	}
	rc = inode_get(fs->inodes, parent, &pi);
	if (rc) {
		fs_reply_err(req, METRICS_FS_LOOKUP, -rc);
		return;
	}
	/* The metadata cache answers (cache/metacache.h: what the answers mean). */
	rc = store_lookup(fs->store, pi.key, name, &ent, &e);
	if (rc == -ENOENT) {
		fs_reply_negative(req);
		goto out;
	}
	if (rc) {
		/* A denial (or an archived object) the store names: remember it, show it. */
		if (rc == -EACCES && (e.cls == ERR_DENIED || e.cls == ERR_ARCHIVED))
			fs_note_denial(fs, 0, e.key, &e);
		fs_reply_err(req, METRICS_FS_LOOKUP, -rc);
		goto out;
	}
	key = fs_join(pi.key, name, ent.is_dir ? "/" : "");
	if (!key) {
		fs_reply_err(req, METRICS_FS_LOOKUP, ENOMEM);
		goto out;
	}
	/* Listed but not readable: the file shows its denial. */
	if (ent.denied && e.cls == ERR_DENIED)
		fs_note_denial(fs, 0, key, &e);
	reply_entry(req, key, ent.is_dir, &ent.attr, ent.denied);
out:
	free(key);
	inode_info_cleanup(&pi);
}

void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct irsafs *fs = fs_of(req);

	inode_forget(fs->inodes, ino, nlookup);
	fs_count(&fs->counters.forgotten, 1);
	fs_count(&fs->counters.forget_messages, 1);
	fuse_reply_none(req);
}

void fs_op_forget_multi(fuse_req_t req, size_t count_, struct fuse_forget_data *forgets)
{
	struct irsafs *fs = fs_of(req);
	size_t i;

	for (i = 0; i < count_; i++)
		inode_forget(fs->inodes, forgets[i].ino, forgets[i].nlookup);
	fs_count(&fs->counters.forgotten, count_);
	fs_count(&fs->counters.forget_messages, 1);
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
