"""Mount tests: the real irsafs binary on a real FUSE mount against radosgw.

Fixtures start (or reuse) the testbed in tests/testbed, mount the binary in
the foreground with only the environment an EKS Pod with IRSA gets, and check
the daemon's stderr afterwards: any error, warning or sanitizer line that the
test did not declare as expected fails the test.
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
TESTBED = os.path.join(SRC, "tests", "testbed")
sys.path.insert(0, TESTBED)
import s3admin  # noqa: E402  (the testbed's own S3 client, for owner-side checks)

BAD_LINE = re.compile(r": (error|warning|fatal): |AddressSanitizer|LeakSanitizer|ThreadSanitizer|"
                      r"runtime error|Assertion",
                      re.IGNORECASE)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "long_wait: mostly waits on timers (credential lifetimes, TTLs, budgets); "
        "skipped when IRSAFS_SKIP_LONG_WAITS=1")


def pytest_collection_modifyitems(config, items):
    """The sanitizer run (tests/check.sh) sets IRSAFS_SKIP_LONG_WAITS=1: a test
    that spends its time waiting adds no code path the rest of the run does not
    take, and the gcc run keeps it."""
    if os.environ.get("IRSAFS_SKIP_LONG_WAITS") != "1":
        return
    skip = pytest.mark.skip(reason="long wait, left to the gcc run (IRSAFS_SKIP_LONG_WAITS=1)")
    for item in items:
        if "long_wait" in item.keywords:
            item.add_marker(skip)


def irsafs_bin():
    path = os.environ.get("IRSAFS_BIN") or os.path.join(SRC, "build", "app", "irsafs")
    if not os.access(path, os.X_OK):
        pytest.exit(f"irsafs binary not found at {path}: build first (meson setup build && "
                    f"ninja -C build) or set IRSAFS_BIN", returncode=1)
    return path


class Testbed:
    def __init__(self, tbdir, pod_env):
        self.dir = tbdir
        self.pod_env = pod_env
        with open(os.path.join(tbdir, "seed", "manifest.json")) as f:
            self.manifest = json.load(f)
        self.owner = s3admin.Client.from_env_file(os.path.join(tbdir, "state", "owner.env"))

    def objects(self, bucket="demo-bucket"):
        """key -> {size, sha256} for one bucket."""
        return self.manifest["buckets"][bucket]

    def visible_files(self, bucket="demo-bucket", prefix=""):
        """The files a mount must show: relative path -> {size, sha256}.

        The rules irsafs documents: a key with an empty, "." or ".." segment or
        a segment over 255 bytes is hidden; a key ending in "/" is a directory
        marker; a file is hidden by a directory of the same name."""
        objs = self.objects(bucket)
        keys = [k for k in objs if k.startswith(prefix)]
        out = {}
        for k in keys:
            rel = k[len(prefix):]
            if not rel or rel.endswith("/"):
                continue
            segs = rel.split("/")
            if any(s in ("", ".", "..") or len(s.encode()) > 255 for s in segs):
                continue
            if any(o.startswith(k + "/") for o in objs):
                continue
            out[rel] = objs[k]
        return out

    def mint(self, path, *args):
        subprocess.run([os.path.join(TESTBED, "mint-token"), "-d", self.dir, "-o", path,
                        *args], check=True, capture_output=True)

    def rgw_log_size(self, log="rgw.log"):
        """Where the access log ends once every request answered so far is in it.

        radosgw writes its lines asynchronously, after the response: a request
        irsafs saw answered may be logged after a plain size was taken, and
        then counted as the test's own (a listing page once, on a loaded
        machine). So an anonymous marker request is sent and its line waited
        for (at most 10 s); lines of earlier requests come before it."""
        path = os.path.join(self.dir, "log", log)
        if log != "rgw.log":
            return os.path.getsize(path)
        marker = f"/log-marker-{os.getpid()}-{time.monotonic_ns()}"
        try:
            urllib.request.urlopen("http://127.0.0.1:7480" + marker, timeout=5).close()
        except (urllib.error.URLError, OSError):
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            size = os.path.getsize(path)
            with open(path, "rb") as f:
                f.seek(max(0, size - (1 << 20)))
                if marker.encode() in f.read():
                    return size
            time.sleep(0.05)
        return os.path.getsize(path)

    def rgw_requests_since(self, offset, agent="irsafs/", settle=0.3, log="rgw.log"):
        """Access-log request lines ("GET /path HTTP/1.1") made by irsafs after offset.

        radosgw writes its access line after the response, so wait until the
        log has stopped growing for `settle` seconds (at most 5 s). log:
        rgw-aws.log for the AWS mode's radosgw (tests/testbed/aws-up.sh)."""
        path = os.path.join(self.dir, "log", log)
        deadline = time.monotonic() + 5
        size = os.path.getsize(path)
        while time.monotonic() < deadline:
            time.sleep(settle)
            now = os.path.getsize(path)
            if now == size:
                break
            size = now
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
        out = []
        for line in text.splitlines():
            if "beast:" in line and agent in line:
                m = re.search(r'"(\w+) (\S+) HTTP/[\d.]+"', line)
                if m:
                    out.append((m.group(1), m.group(2)))
        return out


@pytest.fixture(scope="session")
def testbed():
    tbdir = os.environ.get("IRSAFS_TESTBED_DIR", "/tmp/irsafs-testbed")
    proc = subprocess.run([os.path.join(TESTBED, "up.sh"), tbdir], capture_output=True,
                          text=True, timeout=300)
    if proc.returncode != 0:
        pytest.exit("testbed did not start:\n" + proc.stderr[-3000:], returncode=1)
    env = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"export (\w+)=(.*)$", line.strip())
        if m:
            env[m.group(1)] = m.group(2).strip("'\"")
    assert "AWS_ROLE_ARN" in env, proc.stdout
    return Testbed(tbdir, env)


def pod_env(testbed, **overrides):
    """Only what a Pod gets: the IRSA variables, PATH and sanitizer settings."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    env.update(testbed.pod_env)
    for k, v in overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


class Mount:
    def __init__(self, testbed, bucket, args, env, expect_log, name_suffix=""):
        self.testbed = testbed
        self.bucket = bucket
        self.dir = tempfile.mkdtemp(prefix="irsafs-mnt-", suffix=name_suffix)
        self.errfile = tempfile.NamedTemporaryFile(prefix="irsafs-log-", delete=False)
        self.expect = [re.compile(p) for p in expect_log]
        self.proc = subprocess.Popen([irsafs_bin(), "-f", *args, bucket, self.dir],
                                     stdin=subprocess.DEVNULL, stdout=self.errfile,
                                     stderr=self.errfile, env=env)
        deadline = time.monotonic() + 30
        while not os.path.ismount(self.dir):
            if self.proc.poll() is not None:
                raise AssertionError(f"irsafs exited {self.proc.returncode} before mounting:\n"
                                     + self.log())
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError("irsafs did not mount within 30 s:\n" + self.log())
            time.sleep(0.05)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def log(self):
        with open(self.errfile.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def expect_log(self, pattern):
        self.expect.append(re.compile(pattern))

    def unmount(self):
        if os.path.ismount(self.dir):
            subprocess.run(["fusermount3", "-u", "-z", self.dir], check=False)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("irsafs did not exit after unmount:\n" + self.log())
        try:
            os.rmdir(self.dir)
        except OSError:
            pass

    def unexpected_lines(self):
        bad = []
        for line in self.log().splitlines():
            if BAD_LINE.search(line) and not any(p.search(line) for p in self.expect):
                bad.append(line)
        return bad


@pytest.fixture
def mount(testbed, request):
    """mount(bucket="demo-bucket", *args, env=..., expect_log=[regex...], name_suffix="")
    -> Mount (name_suffix ends the mountpoint's name)"""
    mounts = []

    def make(bucket="demo-bucket", *args, env=None, expect_log=(), name_suffix=""):
        m = Mount(testbed, bucket, list(args), env or pod_env(testbed), list(expect_log),
                  name_suffix)
        mounts.append(m)
        return m

    yield make
    failures = []
    for m in mounts:
        m.unmount()
        if m.proc.returncode not in (0,):
            failures.append(f"irsafs exited {m.proc.returncode}:\n{m.log()}")
        bad = m.unexpected_lines()
        if bad:
            failures.append("unexpected lines in irsafs's stderr:\n" + "\n".join(bad))
        os.unlink(m.errfile.name)
    if failures:
        pytest.fail("\n".join(failures))


def sha256_file(path, bufsize=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(bufsize)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


# ---- the hostile S3 + STS server (tests/hostile.py): no radosgw needed ----

sys.path.insert(0, os.path.dirname(HERE))
import hostile as hostile_mod  # noqa: E402


class HostileFixture(hostile_mod.HostileServer):
    def env(self, **overrides):
        """A Pod's environment (PATH, sanitizer settings, the IRSA variables)
        pointing irsafs at this server for S3 and STS; None drops a variable."""
        return pod_env(self, **overrides)


@pytest.fixture
def hostile():
    """A fresh HostileServer (tests/hostile.py) with no buckets; .env(**overrides)."""
    srv = HostileFixture().start()
    yield srv
    srv.stop()
    if srv.errors:
        pytest.fail("the hostile server failed inside:\n" + "\n".join(srv.errors))


@pytest.fixture
def hostile_mount(hostile):
    """hostile_mount(bucket, *args, env=None, expect_log=[regex...], name_suffix="")
    -> Mount of the hostile server (env defaults to hostile.env())."""
    mounts = []

    def make(bucket, *args, env=None, expect_log=(), name_suffix=""):
        m = Mount(hostile, bucket, list(args), env or hostile.env(), list(expect_log),
                  name_suffix)
        mounts.append(m)
        return m

    yield make
    failures = []
    for m in mounts:
        m.unmount()
        if m.proc.returncode != 0:
            failures.append(f"irsafs exited {m.proc.returncode}:\n{m.log()}")
        bad = m.unexpected_lines()
        if bad:
            failures.append("unexpected lines in irsafs's stderr:\n" + "\n".join(bad))
        os.unlink(m.errfile.name)
    if failures:
        pytest.fail("\n".join(failures))
