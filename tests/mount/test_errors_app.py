"""Errors an application cannot mistake, one retry budget, credentials that heal.

irsafs talks to radosgw through tests/faultproxy.py, which breaks what a test
asks for: persistent throttling, answers S3 gives when a session is revoked
or a key is unknown, archived objects (with a listing that says so), and it
counts the requests it saw, STS calls included (kind "sts") when STS goes
through the proxy too. Every test asserts what an application or an operator
sees: bytes, errno, exit status, log lines, xattrs, and the request counts.
"""
import errno
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import s3admin
from conftest import pod_env

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import faultproxy  # noqa: E402

RETRY_LOG = [r"retry in \d+ ms", r"gave up after \d+ attempt"]
OUTER = 90  # seconds: "did not hang", far above any budget used here
IDS = "[request id faultproxy, id-2 faultproxy-id-2]"
BUCKET = "errors-bucket"
N_READERS = 64


@pytest.fixture(scope="module")
def proxy():
    p = faultproxy.FaultProxy(upstream=("127.0.0.1", 7480)).start()
    yield p
    p.stop()


@pytest.fixture(autouse=True)
def clean_rules(proxy):
    proxy.clear()
    yield
    proxy.clear()


def via_proxy(testbed, proxy, sts=False):
    """The Pod's environment with S3 (and with sts=True, STS too) through the proxy."""
    return pod_env(testbed, AWS_ENDPOINT_URL=proxy.url,
                   AWS_ENDPOINT_URL_STS=proxy.url if sts else testbed.pod_env["AWS_ENDPOINT_URL"])


def owner_env(testbed, proxy):
    """Static owner keys (no STS), S3 through the proxy."""
    keys = s3admin.read_env_file(os.path.join(testbed.dir, "state", "owner.env"))
    return pod_env(testbed, AWS_ROLE_ARN=None, AWS_WEB_IDENTITY_TOKEN_FILE=None,
                   AWS_ACCESS_KEY_ID=keys["AWS_ACCESS_KEY_ID"],
                   AWS_SECRET_ACCESS_KEY=keys["AWS_SECRET_ACCESS_KEY"],
                   AWS_ENDPOINT_URL=proxy.url)


def error_xml(code, message, **extra):
    fields = "".join("<%s>%s</%s>" % (k, v, k) for k, v in extra.items())
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s"
            "</Message>%s<RequestId>faultproxy</RequestId><HostId>faultproxy-id-2</HostId>"
            "</Error>" % (code, message, fields))


def bounded(fn, *args):
    """fn(*args) in a thread: its value, or the OSError it raised; fails if it hangs."""
    out = {}

    def run():
        try:
            out["value"] = fn(*args)
        except OSError as e:
            out["error"] = e
        except BaseException as e:  # noqa: B902 - re-raised below
            out["exc"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(OUTER)
    assert not t.is_alive(), f"{fn.__name__}{args} hung for {OUTER} s"
    if "exc" in out:
        raise out["exc"]
    return out


def errno_of(fn, *args):
    r = bounded(fn, *args)
    assert "error" in r, f"{fn.__name__}{args} did not fail: {r.get('value')!r:.200}"
    return r["error"].errno


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def ensure_bucket(owner, bucket):
    r = owner.create_bucket(bucket, check=False)
    assert r.status in (200, 409), (r.status, r.error_code)


def reader_files(owner):
    """N_READERS small objects under readers/ (written once, reused)."""
    ensure_bucket(owner, BUCKET)
    names = [f"r-{i:03d}.txt" for i in range(N_READERS)]
    have = set(owner.list_keys(BUCKET, prefix="readers/"))
    for n in names:
        if "readers/" + n not in have:
            owner.put_object(BUCKET, "readers/" + n, ("reader file " + n + "\n").encode())
    return names


# ---- 13.1: no EAGAIN from a file operation ----

def test_persistent_throttling_is_eio_for_applications(testbed, mount, proxy, tmp_path):
    """Regression: while S3 throttled every GET, a read returned EAGAIN, and
    Python's buffered I/O took it for "no data yet": shutil.copyfile of an
    object wrote a 0-byte copy and reported success. Once retries are spent,
    throttling is EIO: copyfile raises, a buffered read raises, cat fails,
    read(2) is EIO. The attributes come from the listing, so open needs no
    request and the read itself meets the fault."""
    m = mount("demo-bucket", "--metadata-ttl", "600", "--operation-timeout", "4",
              env=via_proxy(testbed, proxy), expect_log=RETRY_LOG)
    assert "big.bin" in os.listdir(m.dir)
    src = m.path("big.bin")
    proxy.add("slowdown", kind="get")

    dst = str(tmp_path / "copy.bin")
    assert errno_of(shutil.copyfile, src, dst) == errno.EIO

    assert errno_of(read_all, src) == errno.EIO

    def cat():
        p = subprocess.run(["cat", src], capture_output=True, timeout=OUTER)
        return p.returncode, len(p.stdout), p.stderr.decode()
    rc, n, err = bounded(cat)["value"]
    assert rc != 0 and n == 0, (rc, n, err)
    assert "Input/output error" in err, err

    def raw_read():
        fd = os.open(src, os.O_RDONLY)
        try:
            return os.read(fd, 65536)
        finally:
            os.close(fd)
    assert errno_of(raw_read) == errno.EIO

    # Say which request failed: the final line carries both request ids.
    gave_up = [l for l in m.log().splitlines() if "gave up after" in l]
    assert gave_up and all(IDS in l for l in gave_up), gave_up[:3]
    assert "503 SlowDown" in gave_up[0]

    proxy.clear()
    assert sha256(read_all(src)) == testbed.objects()["big.bin"]["sha256"]


def test_metadata_operations_under_throttling_never_eagain(testbed, mount, proxy):
    """lookup, getattr, readdir and getxattr under persistent 503 on every
    request: EIO (or an answer from what is cached), never EAGAIN."""
    m = mount("demo-bucket", "--metadata-ttl", "0", "--operation-timeout", "3",
              env=via_proxy(testbed, proxy), expect_log=RETRY_LOG)
    proxy.add("slowdown", kind="any")
    assert errno_of(os.stat, m.path("hello.txt")) == errno.EIO           # lookup
    assert errno_of(os.listdir, m.dir) == errno.EIO                     # opendir, readdir
    assert errno_of(os.listdir, m.path("dir")) == errno.EIO             # lookup
    assert errno_of(os.getxattr, m.path("dir", "a.txt"), "user.s3.etag") == errno.EIO
    proxy.clear()
    assert read_all(m.path("hello.txt")) == testbed.owner.get_object("demo-bucket",
                                                                      "hello.txt").body


# ---- 13.6: one retry path, one budget ----

def test_lookup_under_throttling_costs_one_budget(testbed, mount, proxy):
    """Regression: a lookup whose GET of the first bytes was throttled through
    every retry started a second full budget as a HEAD. Now it is one budget:
    at most 5 GETs and no HEAD, then EIO."""
    m = mount("demo-bucket", "--metadata-ttl", "0", env=via_proxy(testbed, proxy),
              expect_log=RETRY_LOG)
    proxy.add("slowdown", kind="get")
    proxy.add("slowdown", kind="head")
    proxy.reset_stats()
    assert errno_of(os.stat, m.path("hello.txt")) == errno.EIO
    req = proxy.stats()["requests"]
    assert req.get("head", 0) == 0, req
    assert 1 <= req.get("get", 0) <= 5, req


def test_shared_retry_budget_bounds_64_readers(testbed, mount, proxy):
    """64 readers under persistent throttling: each alone would retry 4
    times (320 requests). They share one token bucket (a retry costs 5 of
    500 tokens), so between them they retry at most 100 times; the rest fail
    after their first attempt. All fail with EIO, none hangs."""
    names = reader_files(testbed.owner)
    # Without the read-ahead across files: every GET counted is a reader's.
    m = mount(BUCKET, "--metadata-ttl", "600", "--dir-readahead", "0",
              env=owner_env(testbed, proxy), expect_log=RETRY_LOG)
    assert sorted(os.listdir(m.path("readers"))) == names
    proxy.add("slowdown", kind="get")
    proxy.reset_stats()
    start = len(m.log())
    errs = [None] * len(names)

    def read(i):
        r = bounded(read_all, m.path("readers", names[i]))
        errs[i] = r["error"].errno if "error" in r else 0

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(names))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errs == [errno.EIO] * len(names), errs
    log = m.log()[start:]
    retries = log.count(" retry in ")
    failed_ops = log.count("gave up after")
    gets = proxy.stats()["requests"].get("get", 0)
    assert retries <= 100, (retries, gets)
    assert gets == failed_ops + retries, (gets, failed_ops, retries)
    assert "shared retry budget is spent" in log
    assert gets < len(names) * 5, gets


# ---- 13.3: credentials S3 rejects are refreshed, once ----

def test_revoked_session_is_refreshed_once_for_all_readers(testbed, mount, proxy):
    """S3 rejects every request signed with the current session (400
    ExpiredToken: revoked, or our clock minutes behind S3's). 16 readers see
    it at once: one STS call replaces the credentials for all of them, every
    read then returns the right bytes."""
    m = mount("demo-bucket", "--metadata-ttl", "600",
              env=via_proxy(testbed, proxy, sts=True),
              expect_log=[r"rejected the credentials"])
    names = [f"file-{i:04d}.txt" for i in range(16)]
    assert set(names) <= set(os.listdir(m.path("many")))
    proxy.reset_stats()
    proxy.add("replace", kind="get", status=400, pin_header="x-amz-security-token",
              body=error_xml("ExpiredToken", "The provided token has expired."))
    out = {}

    def read(n):
        out[n] = bounded(read_all, m.path("many", n))

    threads = [threading.Thread(target=read, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n in names:
        assert "value" in out[n], (n, out[n])
        assert sha256(out[n]["value"]) == testbed.objects()["many/" + n]["sha256"]
    st = proxy.stats()
    assert st["requests"].get("sts", 0) == 1, st
    assert st["rules"][0]["injected"] >= 1, st
    assert "ExpiredToken" in m.log() and IDS in m.log()


def test_expired_token_always_is_ekeyexpired_after_one_refresh(testbed, mount, proxy):
    """S3 rejects every session: one refresh, one more attempt, then
    EKEYEXPIRED; the next operation right after costs no STS call of its own
    beyond the backoff. Once S3 accepts sessions again, reads work."""
    m = mount("demo-bucket", "--metadata-ttl", "600",
              env=via_proxy(testbed, proxy, sts=True),
              expect_log=[r"rejected the credentials", r"even right after a refresh",
                          r"no valid credentials"])
    assert "hello.txt" in os.listdir(m.dir)
    proxy.reset_stats()
    proxy.add("replace", kind="get", status=400,
              body=error_xml("ExpiredToken", "The provided token has expired."))
    assert errno_of(read_all, m.path("hello.txt")) == errno.EKEYEXPIRED
    assert proxy.stats()["requests"].get("sts", 0) == 1, proxy.stats()
    assert errno_of(read_all, m.path("dir-1", "b.txt")) == errno.EKEYEXPIRED
    # A second refresh only once the backoff (at least 1 s) is over.
    assert proxy.stats()["requests"].get("sts", 0) <= 2, proxy.stats()
    log = m.log()
    assert "even right after a refresh" in log and "clock" in log, log[-2000:]
    proxy.clear()
    deadline = time.monotonic() + 60
    while True:
        r = bounded(read_all, m.path("hello.txt"))
        if "value" in r:
            break
        assert r["error"].errno == errno.EKEYEXPIRED
        assert time.monotonic() < deadline, "did not recover within 60 s"
        time.sleep(0.5)
    assert sha256(r["value"]) == testbed.objects()["hello.txt"]["sha256"]


@pytest.mark.parametrize("code,cause", [
    ("InvalidAccessKeyId", "does not know the access key"),
    ("SignatureDoesNotMatch", "secret key does not belong to the access key"),
])
def test_rejected_key_is_ekeyrejected_not_expired(testbed, mount, proxy, code, cause):
    """A key S3 does not know, or a signature it rejects, is no expiry: no
    refresh, EKEYREJECTED ("Key was rejected by service"), one log line that
    says so and what usually causes it, with the request ids; the file is not
    shown as denied and no last_denial is recorded."""
    m = mount("demo-bucket", "--metadata-ttl", "600",
              env=via_proxy(testbed, proxy, sts=True),
              expect_log=[r"were rejected"])
    assert "hello.txt" in os.listdir(m.dir)
    proxy.reset_stats()
    proxy.add("replace", kind="get", status=403,
              body=error_xml(code, "rejected by the test"))
    assert errno_of(read_all, m.path("hello.txt")) == errno.EKEYREJECTED
    assert errno_of(read_all, m.path("hello.txt")) == errno.EKEYREJECTED
    assert proxy.stats()["requests"].get("sts", 0) == 0
    lines = [l for l in m.log().splitlines() if "were rejected" in l]
    assert len(lines) == 1, lines
    assert code in lines[0] and cause in lines[0] and IDS in lines[0], lines[0]
    assert "EKEYREJECTED" in lines[0]
    assert "add it to the role's policy" not in m.log()
    assert os.stat(m.path("hello.txt")).st_mode & 0o777 == 0o444
    assert errno_of(os.getxattr, m.dir, "user.irsafs.last_denial") == errno.ENODATA


# ---- 13.4: an archived object is not an IAM denial ----

def listing_xml(bucket, prefix, key, size, etag, storage_class):
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            "<Name>%s</Name><Prefix>%s</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>"
            "<Delimiter>/</Delimiter><EncodingType>url</EncodingType>"
            "<IsTruncated>false</IsTruncated><Contents><Key>%s</Key>"
            "<LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>%s</ETag>"
            "<Size>%d</Size><StorageClass>%s</StorageClass></Contents></ListBucketResult>"
            % (bucket, prefix, key, etag.replace('"', "&quot;"), size, storage_class))


ARCHIVES = [
    # storage class in the listing, the InvalidObjectState body's extra fields
    ("GLACIER", dict(StorageClass="GLACIER")),
    ("DEEP_ARCHIVE", dict(StorageClass="DEEP_ARCHIVE")),
    ("INTELLIGENT_TIERING", dict(StorageClass="INTELLIGENT_TIERING",
                                 AccessTier="ARCHIVE_ACCESS")),
    ("INTELLIGENT_TIERING", dict(StorageClass="INTELLIGENT_TIERING",
                                 AccessTier="DEEP_ARCHIVE_ACCESS")),
    ("GLACIER_IR", None),   # Instant Retrieval reads like STANDARD
]


@pytest.mark.parametrize("cls,answer", ARCHIVES,
                         ids=["GLACIER", "DEEP_ARCHIVE", "IT-ARCHIVE_ACCESS",
                              "IT-DEEP_ARCHIVE_ACCESS", "GLACIER_IR"])
def test_archived_object_is_not_a_denial(testbed, mount, proxy, cls, answer):
    """S3 refuses the bytes of an object that is archived and not restored
    (403 InvalidObjectState). That is EACCES for the reader, but not an IAM
    denial: the log names the storage class and says "restore it first",
    never "add it to the role's policy"; the file keeps its mode (no
    ----------) and user.irsafs.last_denial stays unset. The listing says the
    class, as S3's does."""
    owner = testbed.owner
    ensure_bucket(owner, BUCKET)
    data = hashlib.sha256(cls.encode()).digest() * 100
    key = "arch/ice.bin"
    owner.put_object(BUCKET, key, data)
    etag = owner.head_object(BUCKET, key).headers["etag"]
    m = mount(BUCKET, "--metadata-ttl", "600", env=owner_env(testbed, proxy),
              expect_log=[r"restore it first"])
    proxy.add("replace", kind="list", query=r"prefix=arch%2F", status=200,
              body=listing_xml(BUCKET, "arch/", key, len(data), etag, cls))
    if answer:
        proxy.add("replace", kind="get", path=r"/arch/ice\.bin$", status=403,
                  body=error_xml("InvalidObjectState",
                                 "The operation is not valid for the object's storage class",
                                 **answer))
    assert os.listdir(m.path("arch")) == ["ice.bin"]
    path = m.path("arch", "ice.bin")
    if answer is None:
        assert read_all(path) == data
        return
    assert errno_of(read_all, path) == errno.EACCES
    assert errno_of(read_all, path) == errno.EACCES
    st = os.stat(path)
    assert st.st_mode & 0o777 == 0o444, oct(st.st_mode)
    assert os.access(path, os.R_OK)
    assert errno_of(os.getxattr, m.dir, "user.irsafs.last_denial") == errno.ENODATA
    log = m.log()
    lines = [l for l in log.splitlines() if "restore it first" in l]
    assert len(lines) == 1, lines
    assert answer["StorageClass"] in lines[0], lines[0]
    if "AccessTier" in answer:
        assert answer["AccessTier"] in lines[0], lines[0]
    assert IDS in lines[0], lines[0]
    assert "add it to the role's policy" not in log
    assert "denied" not in log


# ---- issue 14: an untrusted certificate fails in seconds ----

def test_untrusted_certificate_fails_fast_and_names_aws_ca_bundle(testbed, tmp_path):
    """An S3 endpoint whose certificate no CA in the trust store signed: a
    certificate error is not retried (one TLS handshake), the mount fails at
    once, and the message says to check AWS_CA_BUNDLE."""
    import socket
    import ssl

    key, cert = str(tmp_path / "key.pem"), str(tmp_path / "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    handshakes = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                continue
            handshakes.append(1)
            c.settimeout(5)
            try:
                with ctx.wrap_socket(c, server_side=True) as s:
                    s.recv(1)
            except (OSError, ssl.SSLError):
                pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    mnt = tempfile.mkdtemp(prefix="irsafs-mnt-")
    try:
        from conftest import irsafs_bin
        env = pod_env(testbed, AWS_ENDPOINT_URL="https://127.0.0.1:%d" % port,
                      AWS_ENDPOINT_URL_STS=testbed.pod_env["AWS_ENDPOINT_URL"])
        p = subprocess.run([irsafs_bin(), "-f", "demo-bucket", mnt], env=env,
                           capture_output=True, text=True, timeout=OUTER)
    finally:
        stop.set()
        t.join()
        srv.close()
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", "-z", mnt])
        os.rmdir(mnt)
    assert p.returncode == 1, p.stderr
    assert "AWS_CA_BUNDLE" in p.stderr, p.stderr
    assert "retry in" not in p.stderr, p.stderr
    assert len(handshakes) == 1, (len(handshakes), p.stderr)


def test_doctor_says_restore_not_policy_for_an_archived_object(testbed, proxy):
    """irsafs doctor reads one byte of the first object: when that object is
    archived, it says to restore it, not to change the role's policy."""
    from conftest import irsafs_bin
    owner = testbed.owner
    ensure_bucket(owner, BUCKET)
    owner.put_object(BUCKET, "arch/ice.bin", b"frozen")
    proxy.add("replace", kind="get", path=r"/arch/ice\.bin$", status=403,
              body=error_xml("InvalidObjectState", "The operation is not valid for the "
                             "object's storage class", StorageClass="DEEP_ARCHIVE"))
    p = subprocess.run([irsafs_bin(), "doctor", BUCKET, "--prefix", "arch"],
                       env=owner_env(testbed, proxy), capture_output=True, text=True,
                       timeout=OUTER)
    out = p.stdout + p.stderr
    read = [l for l in out.splitlines() if "] read" in l]
    assert len(read) == 1, out
    assert "restore it first" in read[0] and "DEEP_ARCHIVE" in read[0], read[0]
    assert "role's policy" not in read[0], read[0]
