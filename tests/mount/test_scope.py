"""The IAM scope as file-system permissions: errno, modes, access(2), logs, xattrs,
and the metadata cache that remembers answers (listings, misses, denials)."""
import errno
import json
import os
import re
import stat
import subprocess
import sys
import time
import uuid

import pytest

from conftest import irsafs_bin, pod_env

NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]


def errno_of(fn, *args):
    with pytest.raises(OSError) as ei:
        fn(*args)
    return ei.value.errno


def role_env(testbed, tmp_path, role):
    """The Pod environment for one of the testbed's roles, with a fresh token."""
    with open(os.path.join(testbed.dir, "state", "roles.json")) as f:
        roles = json.load(f)["roles"]
    tok = str(tmp_path / f"{role}.token")
    testbed.mint(tok, "-s", roles[role]["sub"])
    return pod_env(testbed, AWS_ROLE_ARN=roles[role]["arn"], AWS_WEB_IDENTITY_TOKEN_FILE=tok)


def requests_for(testbed, start, needle, at_least=0):
    """irsafs's requests since log offset start whose path holds needle. radosgw writes
    its access log after answering, so wait (bounded) until at least at_least are there."""
    deadline = time.monotonic() + 20
    while True:
        reqs = [r for r in testbed.rgw_requests_since(start) if needle in r[1]]
        if len(reqs) >= at_least or time.monotonic() > deadline:
            return reqs
        time.sleep(0.1)


def settle(testbed, m, start, where=""):
    """Make a request of our own and wait for its log line: every request made before
    it has been logged by then. The marker is looked up in directory where, whose
    listing must not be cached (a name missing from a cached listing asks nothing)."""
    marker = "settle-" + uuid.uuid4().hex[:8]
    try:
        os.stat(m.path(where, marker))
    except OSError:
        pass
    requests_for(testbed, start, marker, 1)


def perms(path):
    return stat.filemode(os.stat(path).st_mode)


def as_nobody(code):
    """Run python code as uid 65534; returns its stdout (one JSON value)."""
    proc = subprocess.run([*NOBODY, "/usr/bin/python3", "-c", code], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def nobody_view(*paths):
    """access(R_OK), access(X_OK) and listdir/read errno for each path, as uid 65534."""
    code = ("import json, os, sys\n"
            "out = []\n"
            f"for p in {list(paths)!r}:\n"
            "    r = {'r': os.access(p, os.R_OK), 'x': os.access(p, os.X_OK)}\n"
            "    try:\n"
            "        if os.path.isdir(p): os.listdir(p)\n"
            "        else: open(p, 'rb').read()\n"
            "        r['err'] = 0\n"
            "    except OSError as e:\n"
            "        r['err'] = e.errno\n"
            "    out.append(r)\n"
            "print(json.dumps(out))\n")
    return as_nobody(code)


def test_prefix_scoped_role_draws_its_scope(testbed, mount, tmp_path):
    env = role_env(testbed, tmp_path, "s3-team-a")
    m = mount("demo-bucket", "--metadata-ttl", "30", "--allow-other", env=env, expect_log=[
        r"may not list s3://demo-bucket/ ",
        r"s3:ListBucket on arn:aws:s3:::demo-bucket \((no prefix|prefix team-b/)",
        r"s3:GetObject on arn:aws:s3:::demo-bucket/team-b"])
    log = m.log()
    assert "assumed-role/s3-team-a/" in log and "may not list s3://demo-bucket/ " in log
    # The mount-time denial already shows on the root: traversable, not listable.
    assert perms(m.dir) == "d--x--x--x"
    assert errno_of(os.listdir, m.dir) == errno.EACCES
    proc = subprocess.run(["ls", m.dir], capture_output=True, text=True)
    assert proc.returncode != 0 and "Permission denied" in proc.stderr
    # Under team-a/ everything works: ls, cat, find.
    assert sorted(os.listdir(m.path("team-a"))) == ["sub", "x.txt"]
    assert perms(m.path("team-a")) == "dr-xr-xr-x"
    with open(m.path("team-a", "x.txt"), "rb") as f:
        assert f.read() == b"team-a/x.txt line 1\n"
    found = subprocess.run(["find", m.path("team-a"), "-type", "f"], capture_output=True,
                           text=True, check=True).stdout.split()
    assert sorted(os.path.relpath(p, m.dir) for p in found) == ["team-a/sub/y.txt", "team-a/x.txt"]
    assert errno_of(os.stat, m.path("team-a", "no-such.txt")) == errno.ENOENT
    # team-b: neither listable nor readable, so EACCES all the way.
    assert errno_of(open, m.path("team-b", "x.txt"), "rb") == errno.EACCES
    assert errno_of(os.stat, m.path("team-b")) == errno.EACCES
    proc = subprocess.run(["cat", m.path("team-b", "x.txt")], capture_output=True, text=True)
    assert proc.returncode != 0 and "Permission denied" in proc.stderr
    # access(2) agrees with the modes, for an unprivileged user too.
    root, teama, xa = nobody_view(m.dir, m.path("team-a"), m.path("team-a", "x.txt"))
    assert (root["r"], root["x"], root["err"]) == (False, True, errno.EACCES)
    assert (teama["r"], teama["x"], teama["err"]) == (True, True, 0)
    assert (xa["r"], xa["err"]) == (True, 0)
    # Each denial is explained once, in words a person acts on.
    log = m.log()
    line = [l for l in log.splitlines() if "(prefix team-b/) denied to" in l]
    assert len(line) == 1, log
    assert re.search(r"warning: s3:ListBucket on arn:aws:s3:::demo-bucket \(prefix team-b/\) "
                     r"denied to arn:aws:sts:::assumed-role/s3-team-a/\S+ \(403 AccessDenied\): "
                     r"add it to the role's policy or read another path", line[0]), line
    assert log.count("s3:ListBucket on arn:aws:s3:::demo-bucket (no prefix") == 1
    # The root's xattrs name the principal and the last denial.
    assert b"assumed-role/s3-team-a/" in os.getxattr(m.dir, "user.irsafs.principal")
    assert b"demo-bucket" in os.getxattr(m.dir, "user.irsafs.last_denial")


def test_strict_fails_an_unlistable_mount(testbed, tmp_path, mount):
    env = role_env(testbed, tmp_path, "s3-team-a")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run([irsafs_bin(), "-f", "--strict", "demo-bucket", str(mnt)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert not os.path.ismount(mnt)
    assert re.search(r"error: arn:aws:sts:::assumed-role/s3-team-a/\S+ may not list "
                     r"s3://demo-bucket/ \(403 AccessDenied\), and --strict makes that fatal: "
                     r"add s3:ListBucket on arn:aws:s3:::demo-bucket", proc.stderr), proc.stderr
    # A prefix the role may list mounts, strict or not.
    m = mount("demo-bucket", "--strict", "--prefix", "team-a", env=env)
    assert sorted(os.listdir(m.dir)) == ["sub", "x.txt"]
    assert "may not list" not in m.log()


def test_read_without_list(testbed, mount, tmp_path):
    """s3-getonly: no s3:ListBucket at all. S3 then says 403 for a missing key too."""
    env = role_env(testbed, tmp_path, "s3-getonly")
    m = mount("demo-bucket", "--metadata-ttl", "30", env=env, expect_log=[
        r"may not list s3://demo-bucket/ ", r"s3:ListBucket on arn:aws:s3:::demo-bucket",
        r"s3:GetObject on arn:aws:s3:::demo-bucket/"])
    assert errno_of(os.listdir, m.dir) == errno.EACCES
    assert perms(m.dir) == "d--x--x--x"
    with open(m.path("hello.txt"), "rb") as f:
        assert f.read() == b"hello from irsafs\n"
    assert perms(m.path("hello.txt")) == "-r--r--r--"
    # A missing key: 403 from S3, so EACCES, never a guessed ENOENT.
    name = "missing-" + uuid.uuid4().hex[:8]
    start = testbed.rgw_log_size()
    assert errno_of(os.stat, m.path(name)) == errno.EACCES
    # The first lookup asks S3: a directory probe and a HEAD, both refused.
    assert len(requests_for(testbed, start, name, 2)) == 2
    # The denial is remembered for the TTL (the kernel cannot cache an error).
    assert errno_of(os.stat, m.path(name)) == errno.EACCES
    assert errno_of(open, m.path(name), "rb") == errno.EACCES
    settle(testbed, m, start)
    assert len(requests_for(testbed, start, name)) == 2
    # A directory cannot be told from a missing key without a listing: EACCES too.
    assert errno_of(os.stat, m.path("dir")) == errno.EACCES


def test_list_without_read(testbed, mount, tmp_path):
    """s3-listonly: everything lists, nothing reads; a refused file shows ----------."""
    env = role_env(testbed, tmp_path, "s3-listonly")
    m = mount("demo-bucket", "--metadata-ttl", "30", "--allow-other", env=env, expect_log=[
        r"s3:GetObject on arn:aws:s3:::demo-bucket/(hello\.txt|medium\.bin|dir/a\.txt)"])
    assert "hello.txt" in os.listdir(m.dir)
    assert perms(m.path("hello.txt")) == "-r--r--r--"
    assert errno_of(os.stat, m.path("no-such-file")) == errno.ENOENT
    proc = subprocess.run(["cat", m.path("hello.txt")], capture_output=True, text=True)
    assert proc.returncode != 0 and "Permission denied" in proc.stderr
    # Seen once, shown from then on, and access(2) agrees.
    assert perms(m.path("hello.txt")) == "----------"
    assert perms(m.path("medium.bin")) == "-r--r--r--"
    hello, medium = nobody_view(m.path("hello.txt"), m.path("medium.bin"))
    assert (hello["r"], hello["err"]) == (False, errno.EACCES)
    # Not refused yet, so its mode still says readable: the mode shows what was
    # observed, it does not evaluate the policy. Reading it is refused by S3...
    assert (medium["r"], medium["err"]) == (True, errno.EACCES)
    # ... and from then on it shows.
    assert perms(m.path("medium.bin")) == "----------"
    # Root (which the mode does not stop) still gets EACCES, from the remembered denial.
    assert errno_of(open, m.path("hello.txt"), "rb") == errno.EACCES
    # A file found by name in a directory not listed yet: its HEAD is refused but a
    # listing shows it exists, so it appears with no permissions.
    st = os.stat(m.path("dir", "a.txt"))
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0
    assert st.st_size == 17
    log = m.log()
    assert re.search(r"warning: s3:GetObject on arn:aws:s3:::demo-bucket/hello\.txt denied to "
                     r"arn:aws:sts:::assumed-role/s3-listonly/", log), log
    assert log.count("s3:GetObject on arn:aws:s3:::demo-bucket/hello.txt denied") == 1, log
    # A HEAD's bodiless 403 reads like a GET's.
    assert re.search(r"s3:GetObject on arn:aws:s3:::demo-bucket/dir/a\.txt denied to \S+ "
                     r"\(403 AccessDenied\)", log), log
    assert b"s3:GetObject on arn:aws:s3:::demo-bucket/" in os.getxattr(
        m.dir, "user.irsafs.last_denial")


def test_foreign_xattr_namespaces_are_unsupported(mount):
    """ls -l probes security.selinux and the POSIX ACL on every file, and stops
    after the first EOPNOTSUPP on a file system: 25 files cost two probes, not 50."""
    m = mount()
    f = m.path("many/file-0003.txt")
    for name in ("security.selinux", "system.posix_acl_access", "trusted.x"):
        assert errno_of(os.getxattr, f, name) == errno.EOPNOTSUPP, name
    assert errno_of(os.getxattr, f, "user.nope") == errno.ENODATA
    r = subprocess.run(["strace", "-f", "-e", "trace=lgetxattr,getxattr", "ls", "-l", m.path("many")],
                       capture_output=True, text=True, check=True)
    assert len(r.stdout.splitlines()) == 26, r.stdout
    probes = [line for line in r.stderr.splitlines() if "getxattr(" in line]
    assert 1 <= len(probes) <= 2, r.stderr


def test_xattrs(testbed, mount):
    m = mount()
    headers = testbed.owner.head_object("demo-bucket", "hello.txt").headers
    f = m.path("hello.txt")
    # listxattr asks nothing: a file known from a listing only names its content type
    # once a getxattr has asked for it (cp -a lists the attributes of every file).
    names = set(os.listxattr(f)) - {"user.s3.content_type"}
    assert names == {"user.s3.uri", "user.s3.etag", "user.s3.last_modified",
                     "user.s3.storage_class"}
    assert os.getxattr(f, "user.s3.content_type").decode() == headers["content-type"]
    assert "user.s3.content_type" in os.listxattr(f)
    assert os.getxattr(f, "user.s3.uri") == b"s3://demo-bucket/hello.txt"
    assert os.getxattr(f, "user.s3.etag").decode() == headers["etag"]
    assert os.getxattr(f, "user.s3.storage_class") == b"STANDARD"
    assert os.getxattr(f, "user.s3.content_type").decode() == headers["content-type"]
    assert re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", os.getxattr(f, "user.s3.last_modified"))
    assert errno_of(os.getxattr, f, "user.nope") == errno.ENODATA
    assert errno_of(os.setxattr, f, "user.s3.etag", b"x") == errno.EROFS
    assert errno_of(os.removexattr, f, "user.s3.etag") == errno.EROFS
    assert os.getxattr(m.path("dir"), "user.s3.uri") == b"s3://demo-bucket/dir/"
    root = {n: os.getxattr(m.dir, n).decode() for n in os.listxattr(m.dir)}
    assert set(root) == {"user.s3.uri", "user.irsafs.principal", "user.irsafs.credential_source",
                         "user.irsafs.credentials_expire", "user.irsafs.endpoint",
                         "user.irsafs.region"}
    assert root["user.irsafs.principal"].startswith("arn:aws:sts:::assumed-role/s3-reader/")
    assert root["user.irsafs.credential_source"] == "web identity"
    assert root["user.irsafs.endpoint"] == testbed.pod_env["AWS_ENDPOINT_URL"]
    assert root["user.irsafs.region"] == "us-east-1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", root["user.irsafs.credentials_expire"])
    # getfattr -d shows them (it dumps user.* by default).
    out = subprocess.run(["getfattr", "-d", f], capture_output=True, text=True, check=True).stdout
    assert 'user.s3.uri="s3://demo-bucket/hello.txt"' in out
    assert "user.s3.storage_class=\"STANDARD\"" in out


def test_listing_answers_lookups_and_getattr_without_head(testbed, mount):
    # A prefix of our own, so that other mounts of the shared testbed do not count.
    prefix = "scope-" + uuid.uuid4().hex[:8]
    names = [f"f{i}.txt" for i in range(12)]
    for i, n in enumerate(names):
        testbed.owner.put_object("demo-bucket", f"{prefix}/{n}", b"x" * i)
    try:
        # Read in numeric order, which is not the listing's (f1, f10, f11, f2): the
        # read-ahead across files would fetch a few files ahead twice; not counted here.
        m = mount("demo-bucket", "--metadata-ttl", "30", "--dir-readahead", "0")
        start = testbed.rgw_log_size()
        assert sorted(os.listdir(m.path(prefix))) == sorted(names)
        for i, n in enumerate(names):
            assert os.stat(m.path(prefix, n)).st_size == i
            assert os.lstat(m.path(prefix, n)).st_size == i
            with open(m.path(prefix, n), "rb") as f:
                assert f.read() == b"x" * i
        assert errno_of(os.stat, m.path(prefix, "absent.txt")) == errno.ENOENT
        # radosgw writes its access log after answering: wait for the listing's line.
        ours = lambda: [r for r in testbed.rgw_requests_since(start) if prefix in r[1]]
        deadline = time.monotonic() + 20
        while not any("max-keys=1000" in r[1] for r in ours()) and time.monotonic() < deadline:
            time.sleep(0.1)
        # The root's listing from mount knows the directory's name (no probe); then one
        # listing and a GET per non-empty file: no HEAD, no lookup of a listed name.
        kinds = sorted("list1" if "max-keys=1&" in p else "list" if "list-type" in p
                       else f"{m_} {p.rsplit('/', 1)[1]}" for m_, p in ours())
        want = sorted(["list"] + [f"GET {n}" for n in names[1:]])
        assert kinds == want, ours()
    finally:
        for n in names:
            testbed.owner.delete_object("demo-bucket", f"{prefix}/{n}")


@pytest.mark.parametrize("neg_ttl,asks", [("0", 2), ("30", 1)])
def test_negative_entries_have_their_own_ttl(testbed, mount, neg_ttl, asks):
    m = mount("demo-bucket", "--metadata-ttl", "30", "--negative-ttl", neg_ttl)
    name = "nope-" + uuid.uuid4().hex[:8]
    start = testbed.rgw_log_size()
    # A miss costs a directory probe and a HEAD ...
    assert errno_of(os.stat, m.path("dir", name)) == errno.ENOENT
    assert len(requests_for(testbed, start, name, 2)) == 2
    # ... and within the negative TTL, nothing (the kernel and irsafs both remember it).
    assert errno_of(os.stat, m.path("dir", name)) == errno.ENOENT
    # The root's listing is cached (--metadata-ttl 30); dir's is not.
    settle(testbed, m, start, "dir")
    assert len(requests_for(testbed, start, name, 2 * asks)) == 2 * asks


def test_cache_flags_are_checked(testbed, tmp_path):
    for args, word in ((["--negative-ttl", "-1"], "--negative-ttl '-1'"),
                       (["--metadata-cache-size", "10"], "--metadata-cache-size '10'")):
        proc = subprocess.run([irsafs_bin(), *args, "demo-bucket", str(tmp_path)],
                              env=pod_env(testbed), capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2 and word in proc.stderr, proc.stderr


def test_archived_object_lists_but_does_not_open(testbed, mount):
    """GLACIER/DEEP_ARCHIVE: listed like any file; open gives EACCES naming the storage
    class unless a restored copy answers. radosgw has no archive tier, so the fault proxy
    plays S3: one listing says the objects are archived, and a GET of the unrestored one
    gets S3's 403 InvalidObjectState (without <StorageClass>: the listing's class is
    named). Archived is not denied: the file keeps its mode, and the log never says to
    change the role's policy."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import faultproxy

    etag = testbed.owner.head_object("demo-bucket", "hello.txt").headers["etag"]
    contents = "".join(
        f"<Contents><Key>{k}</Key><LastModified>2026-01-02T03:04:05.000Z</LastModified>"
        f"<ETag>{e.replace(chr(34), '&quot;')}</ETag><Size>{n}</Size>"
        f"<StorageClass>{sc}</StorageClass></Contents>"
        for k, e, n, sc in (("cold.bin", '"0123456789abcdef0123456789abcdef"', 10, "DEEP_ARCHIVE"),
                            ("hello.txt", etag, 18, "GLACIER")))
    listing = ('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult>'
               "<Name>demo-bucket</Name><Prefix></Prefix><KeyCount>2</KeyCount>"
               f"<MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>false</IsTruncated>"
               f"{contents}</ListBucketResult>").encode()
    p = faultproxy.FaultProxy(upstream=("127.0.0.1", 7480)).start()
    try:
        env = pod_env(testbed, AWS_ENDPOINT_URL=p.url,
                      AWS_ENDPOINT_URL_STS=testbed.pod_env["AWS_ENDPOINT_URL"])
        # Pages of one key: the mount-time listing is then not kept, and the root's
        # listing is asked for (and played by the proxy) at the first ls.
        m = mount("demo-bucket", "--metadata-ttl", "30", "--list-page-size", "1", env=env,
                  expect_log=[
                      r"s3://demo-bucket/cold\.bin is in storage class DEEP_ARCHIVE and not "
                      r"restored"])
        p.add("replace", kind="list", count=1, status=200, body=listing)
        p.add("replace", kind="get", path=r"/cold\.bin$", status=403,
              body=faultproxy.error_body("InvalidObjectState",
                                         "The operation is not valid for the object's storage class"))
        assert sorted(os.listdir(m.dir)) == ["cold.bin", "hello.txt"]
        st = os.stat(m.path("cold.bin"))
        assert st.st_size == 10 and stat.filemode(st.st_mode) == "-r--r--r--"
        assert os.getxattr(m.path("cold.bin"), "user.s3.storage_class") == b"DEEP_ARCHIVE"
        assert errno_of(open, m.path("cold.bin"), "rb") == errno.EACCES
        assert re.search(r"warning: s3://demo-bucket/cold\.bin is in storage class DEEP_ARCHIVE "
                         r"and not restored \(403 InvalidObjectState", m.log()), m.log()
        assert perms(m.path("cold.bin")) == "-r--r--r--"
        assert "add it to the role's policy" not in m.log()
        # Archived but restored: the one-byte probe succeeds and the file reads.
        with open(m.path("hello.txt"), "rb") as f:
            assert f.read() == b"hello from irsafs\n"
    finally:
        p.stop()
