"""HTTPS as users run it: irsafs with no endpoint at all, so it builds AWS's
own URLs (https://BUCKET.s3.REGION.amazonaws.com, virtual-hosted, and
https://sts.REGION.amazonaws.com), trusting only AWS_CA_BUNDLE.

tests/testbed/aws-up.sh serves those names over TLS (stunnel, a test CA made
at run time) from a second radosgw started with --rgw-dns-name; aws-run
resolves them to loopback in a private mount namespace (its own /etc/hosts,
and no DNS), so nothing leaves the machine. The mounts live in that namespace:
the tests start irsafs in it with nsenter and read through /proc/PID/root.
"""
import errno
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import BAD_LINE, TESTBED, irsafs_bin, sha256_file

REGION = "us-east-1"
S3 = f"s3.{REGION}.amazonaws.com"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="aws-run needs root (mount namespaces)")


@pytest.fixture(scope="module")
def aws(testbed):
    if not shutil.which("stunnel4"):
        pytest.skip("stunnel4 is not installed (tests/deps.sh installs it)")
    proc = subprocess.run([os.path.join(TESTBED, "aws-up.sh"), testbed.dir], capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0:
        pytest.fail("the AWS mode did not start:\n" + proc.stderr[-3000:])
    env = dict(re.findall(r"^export (\w+)=(.*)$", proc.stdout, re.M))
    assert set(env) == {"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_REGION",
                        "AWS_CA_BUNDLE"}, proc.stdout
    holder = subprocess.Popen([os.path.join(TESTBED, "aws-run"), testbed.dir, "sh", "-c",
                               "echo ready; exec sleep 3600"], stdout=subprocess.PIPE,
                              stdin=subprocess.DEVNULL)
    assert holder.stdout.readline().strip() == b"ready"
    yield Aws(testbed, env, holder)
    holder.kill()
    holder.wait()


class Aws:
    def __init__(self, testbed, env, holder):
        self.testbed = testbed
        self.env = env
        self.holder = holder
        self.root = f"/proc/{holder.pid}/root"

    def pod_env(self, **over):
        """Only what the Pod has: no AWS_ENDPOINT_URL*, the CA bundle."""
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **self.env}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        for k, v in over.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        assert not any(k.startswith("AWS_ENDPOINT_URL") for k in env)
        return env

    def run(self, argv, env, timeout=120):
        return subprocess.run(["nsenter", "-t", str(self.holder.pid), "-m", "--", *argv],
                              capture_output=True, text=True, env=env, timeout=timeout)

    def connections(self):
        """Connections stunnel accepted so far, by service ("s3", "sts")."""
        with open(os.path.join(self.testbed.dir, "log", "stunnel.log"), errors="replace") as f:
            found = re.findall(r"Service \[(\w+)\] accepted connection", f.read())
        return {s: found.count(s) for s in ("s3", "sts")}


@pytest.fixture
def aws_mount(aws, tmp_path):
    """aws_mount(bucket, env=..., expect_log=[...]) -> path of the mount, as
    this process sees it (through the namespace's /proc/PID/root)."""
    made = []

    def make(bucket, env=None, expect_log=()):
        mnt = tmp_path / f"mnt-{len(made)}"
        mnt.mkdir()
        log = open(tmp_path / f"irsafs-{len(made)}.log", "w+b")
        proc = subprocess.Popen(["nsenter", "-t", str(aws.holder.pid), "-m", "--", irsafs_bin(),
                                 "-f", bucket, str(mnt)], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, env=env or aws.pod_env())
        made.append((mnt, proc, log, [re.compile(p) for p in expect_log]))
        seen = aws.root + str(mnt)
        deadline = time.monotonic() + 30
        while not os.path.ismount(seen):
            assert proc.poll() is None, f"irsafs exited {proc.returncode}: {read(log)}"
            assert time.monotonic() < deadline, "irsafs did not mount within 30 s: " + read(log)
            time.sleep(0.05)
        return seen, log

    yield make
    failures = []
    for mnt, proc, log, expect in made:
        aws.run(["fusermount3", "-u", "-z", str(mnt)], env=aws.pod_env())
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        text = read(log)
        if rc != 0:
            failures.append(f"irsafs exited {rc}:\n{text}")
        bad = [x for x in text.splitlines() if BAD_LINE.search(x) and
               not any(p.search(x) for p in expect)]
        if bad:
            failures.append("unexpected lines in irsafs's stderr:\n" + "\n".join(bad))
        log.close()
    if failures:
        pytest.fail("\n".join(failures))


def read(log):
    log.seek(0)
    return log.read().decode("utf-8", "replace")


def test_the_core_over_https_with_no_endpoint_but_the_ca_bundle(aws, aws_mount):
    tb = aws.testbed
    before, rgw_before, aws_before = aws.connections(), tb.rgw_log_size(), \
        tb.rgw_log_size("rgw-aws.log")
    mnt, log = aws_mount("demo-bucket")
    objs = tb.objects()
    assert sorted(os.listdir(mnt)) == sorted({k.split("/")[0] for k in objs})
    with open(os.path.join(mnt, "hello.txt"), "rb") as f:
        assert f.read() == b"hello from irsafs\n"
    for key in ("big.bin", "medium.bin", "dir/sub/deep.txt", "unicode/\U0001f408.txt"):
        assert sha256_file(os.path.join(mnt, key)) == objs[key]["sha256"], key
    with pytest.raises(OSError) as e:
        open(os.path.join(mnt, "no-such-key.txt"), "rb")
    assert e.value.errno == errno.ENOENT
    # It built AWS's own endpoint and reached it over TLS, STS too.
    assert os.getxattr(mnt, "user.irsafs.endpoint").decode() == f"https://{S3}"
    after = aws.connections()
    assert after["s3"] > before["s3"] and after["sts"] > before["sts"], (before, after)
    # Virtual-hosted: the bucket is in the host name, never in the path.
    reqs = tb.rgw_requests_since(aws_before, log="rgw-aws.log")
    assert reqs and not any(p.startswith("/demo-bucket") for _, p in reqs), reqs
    # No S3 request reached the plain radosgw (its STS is the POST / that
    # stunnel's sts service forwards).
    plain = tb.rgw_requests_since(rgw_before)
    assert all(m == "POST" and p == "/" for m, p in plain), plain
    assert "identity: arn:aws:sts:::assumed-role/s3-reader/" in read(log)


def test_a_denial_over_https(aws, aws_mount):
    mnt, log = aws_mount("other-bucket", expect_log=[
        r"s3:(ListBucket|GetObject) on arn:aws:s3:::other-bucket.* denied",
        r"may not list s3://other-bucket/"])
    with pytest.raises(OSError) as e:
        os.listdir(mnt)
    assert e.value.errno == errno.EACCES
    with pytest.raises(OSError) as e:
        open(os.path.join(mnt, "secret.txt"), "rb")
    assert e.value.errno == errno.EACCES
    assert "(403 AccessDenied)" in read(log)


def owner_keys(testbed):
    with open(os.path.join(testbed.dir, "state", "owner.env")) as f:
        kv = dict(line.strip().split("=", 1) for line in f if "=" in line)
    return {k: kv[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}


@pytest.mark.parametrize("first", ["sts", "s3"])
def test_an_untrusted_certificate_fails_at_once_and_names_aws_ca_bundle(aws, tmp_path, first):
    # Without AWS_CA_BUNDLE the test CA is unknown: the first TLS handshake
    # fails. With IRSA that is STS's; with static keys, S3's.
    over = {"AWS_CA_BUNDLE": None}
    if first == "s3":
        over.update(owner_keys(aws.testbed), AWS_ROLE_ARN=None, AWS_WEB_IDENTITY_TOKEN_FILE=None)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    before = aws.connections()
    proc = aws.run([irsafs_bin(), "-f", "demo-bucket", str(mnt)], env=aws.pod_env(**over),
                   timeout=60)
    after = aws.connections()
    assert proc.returncode == 1, proc.stderr
    assert "AWS_CA_BUNDLE" in proc.stderr, proc.stderr
    # A certificate error is not retried: one handshake, one connection.
    assert after[first] - before[first] == 1, (first, before, after, proc.stderr)
    assert not os.path.ismount(aws.root + str(mnt))
    assert "AddressSanitizer" not in proc.stderr and "runtime error" not in proc.stderr


def test_the_hosts_file_is_private_and_dns_is_never_asked(aws):
    # Outside the namespace the names are not ours; inside, only /etc/hosts answers.
    inside = aws.run(["getent", "ahosts", f"demo-bucket.{S3}"], env=aws.pod_env())
    assert inside.returncode == 0 and "127.0.44.1" in inside.stdout
    unknown = aws.run(["getent", "ahosts", f"not-listed.{S3}"], env=aws.pod_env(), timeout=10)
    assert unknown.returncode == 2     # not found, without a DNS query (hosts: files)
    with open("/etc/hosts") as f:
        assert S3 not in f.read()
