"""Reads from a server that lies (tests/hostile.py), through the real mount.

irsafs takes an object answer only when it is the one it asked for: the
status, the Content-Range (start, end, total), the length and the ETag must
match the request, the object's known size and the version the handle is
pinned to. So whatever the server does, a read (cp, cat, Python) gives the
stored bytes or an error: a wrong answer once is retried and invisible, a
wrong answer always is EIO, another version is ESTALE. Never short, shifted
or mixed bytes with success, and stat keeps the true size.

Also here: header values are checked before they are kept or sent back (an
ETag with a bare CR), one operation budget for a stalled read even when the
kernel asks again, a killed reader released at once (FUSE interrupts; a live reader's signal is
not an error), and
a slow but moving link (256 kB/s per connection, through tests/faultproxy.py
and radosgw) that delivers a 24 MiB file whole.
"""
import errno
import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest

import s3admin
from conftest import pod_env, sha256_file

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import faultproxy  # noqa: E402

MiB = 1 << 20
B = "reads"
KEY = "f.bin"
SIZE = 3 * MiB + 12345
DATA = random.Random(21).randbytes(SIZE)
NEW = random.Random(22).randbytes(SIZE)
OUTER = 90  # seconds: "did not hang", far above any budget used here
RETRY_LOG = [r"MalformedReply", r"retry in \d+ ms", r"gave up after \d+ attempts",
             r"PreconditionFailed", r"changed since it was opened", r"412"]


def start(hostile, hostile_mount, *args, expect_log=(), key=KEY, data=DATA):
    """The bucket with one object, mounted; the object looked up (with its
    first bytes: --lookup-read) before any fault is armed."""
    hostile.put(B, key, data)
    m = hostile_mount(B, *args, expect_log=list(RETRY_LOG) + list(expect_log))
    assert os.stat(m.path(key)).st_size == len(data)
    return m


def py_read(path):
    """The whole file through Python's buffered I/O: bytes, or the errno."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        return e.errno


def cp(path, tmp_path):
    """cp to a local file: (exit status, the bytes it wrote)."""
    dst = tmp_path / "copy"
    if dst.exists():
        dst.unlink()
    r = subprocess.run(["cp", path, str(dst)], capture_output=True, timeout=OUTER)
    return r.returncode, dst.read_bytes() if dst.exists() else b""


def cat(path):
    r = subprocess.run(["cat", path], capture_output=True, timeout=OUTER)
    return r.returncode, r.stdout


def injected(hostile):
    return sum(hostile.stats()["injected"].values())


def gets(hostile, key=KEY):
    return [r for r in hostile.requests if r.kind == "get" and r.key == key.encode()]


# Each answers a ranged GET with something that is not the range asked for.
WRONG = [
    ("short_body", {}),            # 206, Content-Range a-b/total, Content-Length = half
    ("short_chunked", {}),         # chunked, a valid last chunk after half
    ("short_close", {}),           # no Content-Length, FIN after half
    ("range_416", {}),             # 416 for a range inside the object
    ("error_200", {}),             # 200 with a 41-byte <Error> document
    ("full_200", {}),              # 200 with the whole object for a range
    ("shifted_range", {}),         # the right length, from one byte further
    ("wrong_total", {}),           # Content-Range total + 1
    ("no_content_range", {}),      # 206 without Content-Range
    ("bad_etag", {"style": "cr"}),  # ETag holding a bare CR
    ("bad_etag", {"style": "ctl"}),
    ("bad_etag", {"style": "long"}),
    ("bad_etag", {"style": "unquoted"}),
]
WRONG_IDS = [f + ("-" + kw["style"] if kw else "") for f, kw in WRONG]


@pytest.mark.parametrize("fault,kw", WRONG, ids=WRONG_IDS)
def test_a_wrong_answer_once_is_retried_and_the_bytes_are_right(hostile, hostile_mount,
                                                               tmp_path, fault, kw):
    m = start(hostile, hostile_mount)
    hostile.add(fault, kind="get", count=1, **kw)
    rc, out = cp(m.path(KEY), tmp_path)
    assert injected(hostile) == 1
    assert rc == 0 and len(out) == SIZE and out == DATA
    assert os.stat(m.path(KEY)).st_size == SIZE


@pytest.mark.parametrize("fault,kw", WRONG, ids=WRONG_IDS)
def test_a_wrong_answer_always_is_eio_never_short_bytes(hostile, hostile_mount, tmp_path,
                                                        fault, kw):
    m = start(hostile, hostile_mount)
    hostile.add(fault, kind="get", **kw)
    rc, out = cp(m.path(KEY), tmp_path)
    assert rc != 0, f"cp exited 0 with {len(out)} bytes"
    assert DATA.startswith(out)  # what it wrote before failing is the stored bytes
    assert py_read(m.path(KEY)) == errno.EIO
    rc, out = cat(m.path(KEY))
    assert rc != 0 and DATA.startswith(out)
    # The size is the object's, not what the broken answers held. (A server
    # whose every GET names another total deceives a new lookup, whose GET
    # of the first bytes has nothing to check the total against; the reads
    # still fail rather than come up short.)
    if fault != "wrong_total":
        assert os.stat(m.path(KEY)).st_size == SIZE
    # The same mount reads right once the server is.
    hostile.clear()
    time.sleep(2.1)  # past the 2 s in which a failed range answers at once
    assert os.stat(m.path(KEY)).st_size == SIZE
    assert py_read(m.path(KEY)) == DATA


@pytest.mark.parametrize("persistent", [False, True], ids=["once", "always"])
def test_the_disk_cache_keeps_only_verified_bytes(hostile, hostile_mount, tmp_path,
                                                  persistent):
    cache = str(tmp_path / "cache")
    m = start(hostile, hostile_mount, "--cache-dir", cache)
    hostile.add("shifted_range", kind="get", count=None if persistent else 1)
    got = py_read(m.path(KEY))
    assert got == (errno.EIO if persistent else DATA)
    hostile.clear()
    time.sleep(2.1)
    # Past the page cache: from the disk cache or the (now honest) server.
    for _ in range(2):
        fd = os.open(m.path(KEY), os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            with os.fdopen(os.dup(fd), "rb") as f:
                assert f.read() == DATA
        finally:
            os.close(fd)


@pytest.mark.parametrize("honour", [False, True], ids=["if-match-ignored", "if-match-honoured"])
def test_a_new_version_mid_read_is_estale_never_mixed(hostile, hostile_mount, tmp_path,
                                                      honour):
    """Every GET sees a new version (same size, other bytes). A server that
    ignores If-Match sent one cat bytes of five versions."""
    m = start(hostile, hostile_mount, expect_log=[r"changed since it was opened"])
    hostile.add("etag_change", kind="get", if_match=honour)
    rc, out = cat(m.path(KEY))
    assert rc != 0 and DATA.startswith(out), f"cat exited {rc} with {len(out)} bytes"
    assert py_read(m.path(KEY)) == errno.ESTALE


def test_a_listing_without_etags_still_pins_the_first_answer(hostile, hostile_mount):
    """The listing gives no ETag and the object is replaced after the first
    GET: the first answer's ETag pins the rest (If-Match), so the read is
    ESTALE, not half old and half new bytes."""
    hostile.put(B, KEY, DATA)
    hostile.add("list_no_etag", kind="list")
    m = hostile_mount(B, "--metadata-ttl", "600", "--lookup-read", "0",
                      expect_log=RETRY_LOG)
    assert os.listdir(m.dir) == [KEY]   # the attributes come from this listing
    hostile.replace_after(B, KEY, 1, NEW)
    got = py_read(m.path(KEY))
    assert got == errno.ESTALE, f"read {len(got)} bytes" if isinstance(got, bytes) else got
    first = gets(hostile)
    assert first and "if-match" not in first[0].headers
    assert all("if-match" in r.headers for r in first[1:])


@pytest.mark.parametrize("kind", ["head", "get"])
def test_an_etag_with_a_bare_cr_is_never_kept_shown_or_sent_back(hostile, hostile_mount,
                                                                  kind):
    """The lookup's answer (a HEAD, or its GET of the first bytes) carries an
    ETag with a bare CR: it is refused and asked again, never stored, shown as
    user.s3.etag or sent back in an If-Match."""
    key = "sub/" + KEY  # not in the root listing the mount starts with: a lookup asks
    hostile.put(B, key, DATA)
    args = ("--lookup-read", "0") if kind == "head" else ()
    m = hostile_mount(B, *args, expect_log=RETRY_LOG)
    hostile.add("bad_etag", kind=kind, count=1, value='"0123\rX-Injected: 1"')
    assert os.stat(m.path(key)).st_size == SIZE
    assert injected(hostile) == 1
    etag = os.getxattr(m.path(key), "user.s3.etag")
    assert b"\r" not in etag and b"Injected" not in etag
    assert py_read(m.path(key)) == DATA
    for r in hostile.requests:
        for name, value in r.headers.items():
            assert "\r" not in value and "injected" not in name.lower(), (name, value)


def test_a_stalled_read_spends_one_budget(hostile, hostile_mount):
    """A read that stalls fails within one --operation-timeout: the kernel's
    immediate retry of its first page is answered at once, not with a
    second GET and a second budget."""
    big = random.Random(23).randbytes(12 * MiB)
    m = start(hostile, hostile_mount, "--operation-timeout", "4", key="big.bin", data=big,
              expect_log=[r"Timeout was reached", r"timed out"])
    hostile.add("stall", kind="get", seconds=60)
    off = 5 * MiB + 4321
    t0 = time.monotonic()
    fd = os.open(m.path("big.bin"), os.O_RDONLY)
    try:
        os.lseek(fd, off, os.SEEK_SET)
        with pytest.raises(OSError) as ei:
            os.read(fd, 131072)
    finally:
        os.close(fd)
    assert ei.value.errno in (errno.ETIMEDOUT, errno.EIO)
    assert time.monotonic() - t0 < OUTER
    # One GET for the bytes at off, whatever the kernel asked after it failed.
    starts = [r.headers.get("range", "") for r in gets(hostile, "big.bin")]
    at_off = [s for s in starts if s.startswith("bytes=%d-" % (off & ~4095))]
    assert len(at_off) == 1, starts
    hostile.clear()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_reader_is_released_at_once(hostile, hostile_mount, sig):
    """dd with O_DIRECT waits for a GET that stalls for longer than the
    operation budget (60 s). Killed, it is gone at once: the interrupt ends
    its read (EINTR) and aborts the GET, which is not retried."""
    m = start(hostile, hostile_mount, "--operation-timeout", "60")
    hostile.add("stall", kind="get", seconds=120)
    hostile.reset_stats()
    dd = subprocess.Popen(["dd", "if=" + m.path(KEY), "of=/dev/null", "bs=128k", "skip=12",
                           "count=1", "iflag=direct"], stderr=subprocess.DEVNULL)
    try:
        assert hostile.wait_for("get", 1, timeout=20), "dd's GET never came"
        time.sleep(0.5)
        assert dd.poll() is None
        t0 = time.monotonic()
        dd.send_signal(sig)
        dd.wait(timeout=OUTER)
        # Generous: the budget was 60 s and the stall 120 s.
        assert time.monotonic() - t0 < 15, "the killed reader waited for the server"
    finally:
        if dd.poll() is None:
            dd.kill()
            dd.wait()
    time.sleep(1)
    assert len(gets(hostile)) == 1  # the aborted GET was not asked again
    assert not re.search(r"GET s3://%s/%s .*(retry in|gave up)" % (B, KEY), m.log())
    hostile.clear()
    assert py_read(m.path(KEY)) == DATA


HANDLED_SIGNAL_READER = r"""
import hashlib, mmap, os, signal, sys
signal.signal(signal.SIGUSR1, lambda *a: None)
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 131072)
print("reading", flush=True)
n = os.preadv(fd, [buf], 12 * 131072)
print(hashlib.sha256(buf[:n]).hexdigest(), flush=True)
"""


def test_a_signal_a_reader_handles_does_not_cut_its_read(hostile, hostile_mount):
    """A live reader that takes a signal (a handler runs: Go's preemption, a
    profiler's timer) is not a killed one: its read goes on and its GET is
    not aborted and asked again."""
    m = start(hostile, hostile_mount)
    hostile.add("delay", kind="get", seconds=3)
    hostile.reset_stats()
    p = subprocess.Popen([sys.executable, "-c", HANDLED_SIGNAL_READER, m.path(KEY)],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "reading"
        assert hostile.wait_for("get", 1, timeout=20)
        time.sleep(0.5)
        p.send_signal(signal.SIGUSR1)
        out, _ = p.communicate(timeout=OUTER)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    want = __import__("hashlib").sha256(DATA[12 * 131072:13 * 131072]).hexdigest()
    assert p.returncode == 0 and out.strip() == want
    assert len(gets(hostile)) == 1


# ---- a slow but moving link: tests/faultproxy.py between irsafs and radosgw ----

SLOW_BUCKET = "slow-reads"


@pytest.fixture(scope="module")
def slow_object(testbed):
    data = random.Random(24).randbytes(24 * MiB)
    owner = testbed.owner
    owner.create_bucket(SLOW_BUCKET, check=False)
    owner.put_object(SLOW_BUCKET, "24m.bin", data)
    keys = s3admin.read_env_file(os.path.join(testbed.dir, "state", "owner.env"))
    yield data, keys
    owner.delete_object(SLOW_BUCKET, "24m.bin", check=False)


def test_a_slow_link_delivers_the_whole_file(testbed, mount, slow_object):
    """Every answer at 256 kB/s per connection: a 2 MiB part takes 8 s, more
    than the operation's 5 s budget (an 8 MiB part took 32 s, twice the old
    whole-request timeout of 15 s, and the read ended in EIO). Only a stalled
    body is cut, and the file arrives whole."""
    data, keys = slow_object
    proxy = faultproxy.FaultProxy(upstream=("127.0.0.1", 7480)).start()
    try:
        env = pod_env(testbed, AWS_ENDPOINT_URL=proxy.url, AWS_ROLE_ARN=None,
                      AWS_WEB_IDENTITY_TOKEN_FILE=None,
                      AWS_ACCESS_KEY_ID=keys["AWS_ACCESS_KEY_ID"],
                      AWS_SECRET_ACCESS_KEY=keys["AWS_SECRET_ACCESS_KEY"])
        m = mount(SLOW_BUCKET, "--operation-timeout", "5", "--read-part-size", "2M", env=env)
        proxy.add("trickle", kind="get", chunk=32768, interval=0.125)
        t0 = time.monotonic()
        assert sha256_file(m.path("24m.bin")) == __import__("hashlib").sha256(data).hexdigest()
        assert time.monotonic() - t0 < 600
        assert proxy.stats()["rules"][0]["injected"] > 0
    finally:
        proxy.stop()
