/*
 * Extended attributes: read-only facts about an object or the mount.
 *
 * Files:        user.s3.uri, user.s3.etag (when it is printable ASCII),
 *               user.s3.last_modified, user.s3.storage_class,
 *               user.s3.content_type, and user.s3.version_id when the
 *               object has one. Values from the server's headers hold no
 *               control characters (http/http.h drops such values).
 * Directories:  user.s3.uri.
 * Mount root:   user.s3.uri, user.irsafs.principal,
 *               user.irsafs.credential_source, user.irsafs.credentials_expire,
 *               user.irsafs.endpoint, user.irsafs.region, and
 *               user.irsafs.last_denial once a denial has been seen (an IAM
 *               denial only: an archived object, expired or rejected
 *               credentials and server faults are not denials; it ends
 *               with the request ids of the refused request).
 *
 * A listing says nothing about a file's content type or version, so the first
 * getxattr of one of those two of a file known only from a listing costs one
 * HEAD; the answer is kept on the node like any other attribute. listxattr
 * never costs a request: it names what the node knows (a file looked up with
 * a GET, or fetched ahead with its directory, knows both from that GET's
 * headers). `cp -a` lists and copies every attribute of every file: it must
 * not cost a HEAD per file. Values carry no trailing NUL, as getfattr
 * expects. setxattr and removexattr are EROFS
 * (fs_ops.c). No secret is ever an attribute: the credentials give only the
 * principal's ARN and their expiry.
 *
 * Only the user namespace exists. A name in any other (security.selinux,
 * system.posix_acl_access, ...) is EOPNOTSUPP, not ENODATA: "ls -l" asks for
 * both of those on every file, and remembers EOPNOTSUPP per file system, so
 * the answer turns 20,000 FUSE round trips for 10,000 files into two.
 */
#include "fs/fs_i.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/strutil.h"
#include "fs/inode.h"
#include "s3/store.h"

#define XATTR_MAX 12

struct xattr_set {
	size_t n;
	char *name[XATTR_MAX];
	char *value[XATTR_MAX];
};

static int xs_add(struct xattr_set *xs, const char *name, const char *value)
{
	if (xs->n == XATTR_MAX)
		return -ENOMEM;
	xs->name[xs->n] = strdup(name);
	xs->value[xs->n] = strdup(value);
	if (!xs->name[xs->n] || !xs->value[xs->n]) {
		free(xs->name[xs->n]);
		free(xs->value[xs->n]);
		return -ENOMEM;
	}
	xs->n++;
	return 0;
}

static void xs_cleanup(struct xattr_set *xs)
{
	size_t i;

	for (i = 0; i < xs->n; i++) {
		free(xs->name[i]);
		free(xs->value[i]);
	}
	xs->n = 0;
}

static int root_xattrs(struct irsafs *fs, struct xattr_set *xs)
{
	struct store_identity id;
	char when[21], denial[512];
	int rc = 0;

	/* Like any operation: a refresh in flight is waited for only within the budget. */
	if (store_identity(fs->store, &id) != 0)
		memset(&id, 0, sizeof(id));
	if (id.have_creds) {
		rc = xs_add(xs, "user.irsafs.principal", id.principal);
		if (id.expires)
			time_format_iso8601(id.expires, when);
		else
			snprintf(when, sizeof(when), "never");
		if (!rc)
			rc = xs_add(xs, "user.irsafs.credentials_expire", when);
	} else {
		rc = xs_add(xs, "user.irsafs.principal", "none (no valid credentials)");
	}
	if (!rc)
		rc = xs_add(xs, "user.irsafs.credential_source", id.source);
	if (!rc)
		rc = xs_add(xs, "user.irsafs.endpoint", id.endpoint);
	if (!rc)
		rc = xs_add(xs, "user.irsafs.region", fs->cfg.region ? fs->cfg.region : "us-east-1");
	inode_last_denial(fs->inodes, denial, sizeof(denial));
	if (!rc && denial[0])
		rc = xs_add(xs, "user.irsafs.last_denial", denial);
	return rc;
}

static int file_xattrs(struct irsafs *fs, struct inode_info *ii, int headers,
		       struct xattr_set *xs)
{
	struct store_error e;
	char when[21];
	int rc;

	if (headers && !ii->attr.content_type[0] && !ii->denied) {
		/* Known from a listing only: one HEAD for what a listing lacks. */
		struct store_attr a;

		if (store_stat(fs->store, ii->key, &a, &e) == 0) {
			ii->attr = a;
			inode_set_attr(fs->inodes, ii->ino, &a);
		}
	}
	time_format_iso8601(ii->attr.mtime.tv_sec, when);
	rc = 0;
	/* Only an ETag that could be sent back is shown (a listing's is unchecked). */
	if (etag_sendable(ii->attr.etag))
		rc = xs_add(xs, "user.s3.etag", ii->attr.etag);
	if (!rc)
		rc = xs_add(xs, "user.s3.last_modified", when);
	if (!rc)
		rc = xs_add(xs, "user.s3.storage_class",
			    ii->attr.storage_class[0] ? ii->attr.storage_class : "STANDARD");
	if (!rc && ii->attr.content_type[0])
		rc = xs_add(xs, "user.s3.content_type", ii->attr.content_type);
	if (!rc && ii->attr.version_id[0] && strcmp(ii->attr.version_id, "null"))
		rc = xs_add(xs, "user.s3.version_id", ii->attr.version_id);
	return rc;
}

/*
 * Every attribute of node ino; a file's content type and version id only
 * when known, or when headers asks for them (then a file known only from a
 * listing costs a HEAD). 0 or a negative errno.
 */
static int collect(struct irsafs *fs, fuse_ino_t ino, int headers, struct xattr_set *xs)
{
	struct inode_info ii;
	char *uri = NULL;
	int rc;

	memset(xs, 0, sizeof(*xs));
	rc = inode_get(fs->inodes, ino, &ii);
	if (rc)
		return rc;
	if (asprintf(&uri, "s3://%s/%s", fs->cfg.bucket, ii.key) < 0) {
		uri = NULL;
		rc = -ENOMEM;
	}
	if (!rc)
		rc = xs_add(xs, "user.s3.uri", uri);
	if (!rc && ino == FUSE_ROOT_ID)
		rc = root_xattrs(fs, xs);
	else if (!rc && !ii.is_dir)
		rc = file_xattrs(fs, &ii, headers, xs);
	free(uri);
	inode_info_cleanup(&ii);
	if (rc)
		xs_cleanup(xs);
	return rc;
}

void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct xattr_set xs;
	size_t i, len;
	int rc;

	if (strncmp(name, "user.", 5)) {
		fs_reply_err(req, METRICS_FS_GETXATTR, EOPNOTSUPP);
		return;
	}
	if (strncmp(name, "user.s3.", 8) && strncmp(name, "user.irsafs.", 12)) {
		fs_reply_err(req, METRICS_FS_GETXATTR, ENODATA);
		return;
	}
	/* Only these two are not in a listing: any other is answered without a request. */
	rc = collect(fs_of(req), ino, !strcmp(name, "user.s3.content_type") ||
		     !strcmp(name, "user.s3.version_id"), &xs);
	if (rc) {
		fs_reply_err(req, METRICS_FS_GETXATTR, -rc);
		return;
	}
	for (i = 0; i < xs.n; i++)
		if (!strcmp(xs.name[i], name))
			break;
	if (i == xs.n) {
		fs_reply_err(req, METRICS_FS_GETXATTR, ENODATA);
	} else {
		len = strlen(xs.value[i]);
		if (size == 0)
			fuse_reply_xattr(req, len);
		else if (size < len)
			fs_reply_err(req, METRICS_FS_GETXATTR, ERANGE);
		else
			fuse_reply_buf(req, xs.value[i], len);
	}
	xs_cleanup(&xs);
}

void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct xattr_set xs;
	char buf[XATTR_MAX * 40];
	size_t i, len = 0, n;
	int rc;

	/* Never a request: cp -a lists the attributes of every file it copies. */
	rc = collect(fs_of(req), ino, 0, &xs);
	if (rc) {
		fs_reply_err(req, METRICS_FS_LISTXATTR, -rc);
		return;
	}
	/* Names, each with its NUL, one after another. */
	for (i = 0; i < xs.n; i++) {
		n = strlen(xs.name[i]) + 1;
		if (len + n > sizeof(buf))
			break;
		memcpy(buf + len, xs.name[i], n);
		len += n;
	}
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fs_reply_err(req, METRICS_FS_LISTXATTR, ERANGE);
	else
		fuse_reply_buf(req, buf, len);
	xs_cleanup(&xs);
}
