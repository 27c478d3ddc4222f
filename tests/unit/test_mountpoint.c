/*
 * app/mountpoint: finding the topmost mount at a path in mountinfo (escaped
 * names, optional fields, stacked mounts, near misses), and the canonical
 * path of a mount point.
 */
#include "app/mountpoint.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"

static char MOUNTINFO[] =
	"22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
	"40 22 0:35 / /mnt/s3 rw,relatime shared:20 - tmpfs tmpfs rw\n"
	"41 40 0:46 / /mnt/s3/bucket ro,nosuid,nodev,relatime shared:21 master:3 - "
	"fuse.irsafs data-bucket ro,user_id=0,group_id=0,default_permissions,allow_other\n"
	"42 22 0:47 / /mnt/with\\040space ro - fuse.irsafs my\\040src ro\n"
	"43 22 0:48 / /mnt/s3/bucket2 ro - fuse.sshfs u@h:/ ro\n"
	"44 41 0:49 / /mnt/s3/bucket ro - fuse.irsafs second-bucket ro\n"
	"garbage line\n"
	"45 22 0:50 / /mnt/cut ro\n";

static int find(const char *path, char *type, char *source)
{
	FILE *f = fmemopen(MOUNTINFO, sizeof(MOUNTINFO) - 1, "r");
	int rc;

	type[0] = source[0] = '\0';
	rc = mountpoint_find(f, path, type, 64, source, 256);
	fclose(f);
	return rc;
}

TEST(finds_type_and_source_past_the_optional_fields)
{
	char type[64], source[256];

	CHECK_INT(find("/mnt/s3", type, source), 0);
	CHECK_STR(type, "tmpfs");
	CHECK_INT(find("/mnt/s3/bucket2", type, source), 0);
	CHECK_STR(type, "fuse.sshfs");
	CHECK_STR(source, "u@h:/");
}

TEST(the_last_of_stacked_mounts_is_the_one_on_top)
{
	char type[64], source[256];

	CHECK_INT(find("/mnt/s3/bucket", type, source), 0);
	CHECK_STR(type, MOUNTPOINT_FSTYPE);
	CHECK_STR(source, "second-bucket");
}

TEST(escaped_names_match_their_real_spelling)
{
	char type[64], source[256];

	CHECK_INT(find("/mnt/with space", type, source), 0);
	CHECK_STR(source, "my src");
	CHECK_INT(find("/mnt/with\\040space", type, source), -ENOENT);
}

TEST(no_mount_at_exactly_the_path_is_enoent)
{
	char type[64], source[256];

	CHECK_INT(find("/mnt", type, source), -ENOENT);
	CHECK_INT(find("/mnt/s3/", type, source), -ENOENT);
	CHECK_INT(find("/mnt/s3/bucket/sub", type, source), -ENOENT);
	/* A line without " - TYPE SOURCE" is skipped, not half-read. */
	CHECK_INT(find("/mnt/cut", type, source), -ENOENT);
}

TEST(canonical_resolves_relative_paths_and_trailing_slashes)
{
	char cwd[PATH_MAX], out[PATH_MAX], want[PATH_MAX + 8];

	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	CHECK_INT(mountpoint_canonical(".", out, sizeof(out)), 0);
	CHECK_STR(out, cwd);
	CHECK_INT(mountpoint_canonical("/tmp/", out, sizeof(out)), 0);
	CHECK_STR(out, "/tmp");
	CHECK_INT(mountpoint_canonical("/no/such/dir", out, sizeof(out)), -ENOENT);
	CHECK_INT(mountpoint_canonical("/", out, 1), -ENAMETOOLONG);
	snprintf(want, sizeof(want), "%s", cwd);
	CHECK_INT(mountpoint_canonical(cwd, out, sizeof(out)), 0);
	CHECK_STR(out, want);
}

int main(void)
{
	RUN(finds_type_and_source_past_the_optional_fields);
	RUN(the_last_of_stacked_mounts_is_the_one_on_top);
	RUN(escaped_names_match_their_real_spelling);
	RUN(no_mount_at_exactly_the_path_is_enoent);
	RUN(canonical_resolves_relative_paths_and_trailing_slashes);
	return harness_done();
}
