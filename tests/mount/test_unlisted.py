"""--unlisted-dirs: a role that may GetObject but not ListBucket reaches nested keys.

Without s3:ListBucket, S3 answers 403 both to a lookup's directory probe
(ListObjectsV2 of "name/") and to its GET of "name", whether name is a
directory, a missing key or a key the role may not read: nothing tells them
apart. By default such a name is EACCES, so a get-only role reaches only the
files directly under the mount root. With --unlisted-dirs it is a directory
that can be traversed, not listed (d--x--x--x): `cat a/b/c.txt` works when the
role may read a/b/c.txt, `ls a` is EACCES, and opening a missing or unreadable
name is EACCES too, although it stats as such a directory (the trade-off).
"""
import errno
import json
import os
import stat
import subprocess
import uuid

from conftest import sha256_file
from test_scope import NOBODY, errno_of, perms, role_env

# The mount root and every directory on the way may not be listed: that is the point.
LIST_DENIED = [r"may not list s3://demo-bucket/ ",
               r"s3:ListBucket on arn:aws:s3:::demo-bucket \((no prefix|prefix )"]


def nobody(code):
    """Run python code as uid 65534; returns its stdout (one JSON value)."""
    proc = subprocess.run([*NOBODY, "/usr/bin/python3", "-c", code], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def outcome(fn, *args):
    try:
        fn(*args)
        return 0
    except OSError as e:
        return e.errno


def test_get_only_role_reaches_nested_paths(testbed, mount, tmp_path):
    env = role_env(testbed, tmp_path, "s3-getonly")
    m = mount("demo-bucket", "--unlisted-dirs", "--metadata-ttl", "30", "--allow-other",
              env=env, expect_log=LIST_DENIED)
    objs = testbed.objects()
    # Any key the role may read, at any depth, by its path.
    for rel in ("dir/sub/deep.txt", "dir/a.txt", "team-b/x.txt", "marker/inside.txt",
                "unicode/\U0001F408.txt", "hello.txt"):
        assert sha256_file(m.path(*rel.split("/"))) == objs[rel]["sha256"], rel
    proc = subprocess.run(["cat", m.path("dir", "sub", "deep.txt")], capture_output=True)
    assert proc.returncode == 0 and proc.stdout == (
        b"dir/sub/deep.txt line 1\ndir/sub/deep.txt line 2\ndir/sub/deep.txt line 3\n")
    # The directories on the way can be traversed, not listed.
    for rel in ("dir", "dir/sub"):
        st = os.stat(m.path(*rel.split("/")))
        assert stat.S_ISDIR(st.st_mode) and stat.filemode(st.st_mode) == "d--x--x--x", rel
    assert perms(m.path("dir", "sub", "deep.txt")) == "-r--r--r--"
    assert errno_of(os.listdir, m.path("dir")) == errno.EACCES
    assert errno_of(os.listdir, m.path("dir", "sub")) == errno.EACCES
    proc = subprocess.run(["ls", m.path("dir")], capture_output=True, text=True)
    assert proc.returncode != 0 and "Permission denied" in proc.stderr
    # A missing key below: EACCES, as S3 said 403.
    name = "missing-" + uuid.uuid4().hex[:8] + ".txt"
    assert errno_of(open, m.path("dir", "sub", name), "rb") == errno.EACCES
    proc = subprocess.run(["cat", m.path("dir", name)], capture_output=True, text=True)
    assert proc.returncode != 0 and "Permission denied" in proc.stderr, proc.stderr
    # The trade-off: such a name stats as a directory that can only be traversed.
    assert perms(m.path("dir", name)) == "d--x--x--x"
    # An unprivileged user sees the same: it reads the file, may not list or open the rest.
    view = nobody(
        "import json, os\n"
        f"d, f, x = {m.path('dir')!r}, {m.path('dir', 'sub', 'deep.txt')!r}, "
        f"{m.path('dir', 'sub', name)!r}\n"
        "out = {'read': open(f, 'rb').read().decode(), 'x': os.access(d, os.X_OK),\n"
        "       'r': os.access(d, os.R_OK)}\n"
        "for k, fn, a in (('ls', os.listdir, d), ('open', open, x)):\n"
        "    try:\n"
        "        fn(a)\n"
        "        out[k] = 0\n"
        "    except OSError as e:\n"
        "        out[k] = e.errno\n"
        "print(json.dumps(out))\n")
    assert view == {"read": "dir/sub/deep.txt line 1\ndir/sub/deep.txt line 2\n"
                            "dir/sub/deep.txt line 3\n",
                    "x": True, "r": False, "ls": errno.EACCES, "open": errno.EACCES}, view
    # Each such name is explained once (info), never as a GetObject to add to the policy.
    log = m.log()
    assert log.count("s3://demo-bucket/dir/: S3 refused to list dir/ and to read dir: shown "
                     "as a directory that can be traversed, not listed (--unlisted-dirs)") == 1
    assert "s3:GetObject on arn:" not in log


def test_without_the_flag_only_the_root_files_are_reachable(testbed, mount, tmp_path):
    env = role_env(testbed, tmp_path, "s3-getonly")
    m = mount("demo-bucket", "--metadata-ttl", "30", env=env, expect_log=LIST_DENIED + [
        r"s3:GetObject on arn:aws:s3:::demo-bucket/dir denied"])
    with open(m.path("hello.txt"), "rb") as f:
        assert f.read() == b"hello from irsafs\n"
    assert errno_of(os.stat, m.path("dir")) == errno.EACCES
    assert errno_of(open, m.path("dir", "sub", "deep.txt"), "rb") == errno.EACCES
    assert outcome(os.stat, m.path("dir", "a.txt")) in (errno.EACCES, errno.ENOENT)


def test_a_prefix_scoped_role_keeps_its_listings(testbed, mount, tmp_path):
    """s3-team-a may list and read team-a/ only: there nothing changes; team-b/
    and its file are names S3 will neither list nor read."""
    env = role_env(testbed, tmp_path, "s3-team-a")
    m = mount("demo-bucket", "--unlisted-dirs", "--metadata-ttl", "30", env=env,
              expect_log=LIST_DENIED)
    assert sorted(os.listdir(m.path("team-a"))) == ["sub", "x.txt"]
    assert perms(m.path("team-a")) == "dr-xr-xr-x"
    with open(m.path("team-a", "sub", "y.txt"), "rb") as f:
        assert f.read() == b"team-a/sub/y.txt line 1\n"
    # Listable, so a missing key is known to be missing.
    assert errno_of(os.stat, m.path("team-a", "no-such.txt")) == errno.ENOENT
    # team-b/x.txt exists, but the role may not read it: EACCES on open.
    assert perms(m.path("team-b")) == "d--x--x--x"
    assert errno_of(os.listdir, m.path("team-b")) == errno.EACCES
    assert errno_of(open, m.path("team-b", "x.txt"), "rb") == errno.EACCES
    assert perms(m.path("team-b", "x.txt")) == "d--x--x--x"
