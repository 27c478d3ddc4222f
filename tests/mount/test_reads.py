"""The read path: prefetch, seeks, EOF, many handles, ETag pinning, memory budget.

Each test checks the bytes (by hash or slice) and, from radosgw's access log,
which ranged GETs irsafs sent: a sequential read fetches every byte once, a
random read fetches what it asked for, and a changed object gives ESTALE.
Reads that must reach the daemon exactly as issued use O_DIRECT, so that the
kernel's page cache and read-ahead do not reshape them.
"""
import errno
import hashlib
import mmap
import os
import random
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

import s3admin
from conftest import pod_env, sha256_file
from test_direct_io import resident

BUCKET = "reads-bucket"
MiB = 1 << 20


def wait_for_log(testbed):
    """Block until radosgw has written every access line sent so far.

    Ceph writes its log asynchronously; an anonymous marker request is logged
    after everything irsafs sent before it."""
    marker = f"/demo-bucket/reads-marker-{os.getpid()}-{time.monotonic_ns()}"
    try:
        urllib.request.urlopen("http://127.0.0.1:7480" + marker, timeout=5)
    except urllib.error.HTTPError:
        pass
    deadline = time.monotonic() + 10
    path = os.path.join(testbed.dir, "log", "rgw.log")
    while time.monotonic() < deadline:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - (4 << 20)))
            if marker.encode() in f.read():
                return
        time.sleep(0.05)
    raise AssertionError("the marker request never reached rgw.log")


def gets_since(testbed, offset, key):
    """(start, end_exclusive) of every ranged GET irsafs sent for key since offset."""
    wait_for_log(testbed)
    with open(os.path.join(testbed.dir, "log", "rgw.log"), "rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    out = []
    for line in text.splitlines():
        if "beast:" not in line or "irsafs/" not in line:
            continue
        m = re.search(r'"(\w+) (\S+) HTTP/[\d.]+" (\d+) \d+ \S+ "[^"]*" (\S+)', line)
        if not m or m.group(1) != "GET" or m.group(2) != f"/{BUCKET}/{key}":
            continue
        r = re.match(r"bytes=(\d+)-(\d+)$", m.group(4))
        assert r, line
        out.append((int(r.group(1)), int(r.group(2)) + 1, int(m.group(3))))
    return out


def assert_disjoint(ranges):
    last = -1
    for a, b, _ in sorted(ranges):
        assert a >= last, f"byte range {a}-{b} fetched twice: {sorted(ranges)}"
        last = b


def odirect_pread(fd, n, off):
    buf = mmap.mmap(-1, max(n, 4096))
    got = os.preadv(fd, [memoryview(buf)[:n]], off)
    return bytes(buf[:got])


@pytest.fixture(scope="module")
def owner_env(testbed):
    keys = s3admin.read_env_file(os.path.join(testbed.dir, "state", "owner.env"))
    return pod_env(testbed, AWS_ROLE_ARN=None, AWS_WEB_IDENTITY_TOKEN_FILE=None,
                   AWS_ACCESS_KEY_ID=keys["AWS_ACCESS_KEY_ID"],
                   AWS_SECRET_ACCESS_KEY=keys["AWS_SECRET_ACCESS_KEY"])


@pytest.fixture(scope="module")
def data(testbed, reads_bucket):
    """Objects of this module's own (seeded bytes): other tests and benchmarks that
    share the testbed never touch them, so the access log lines for them are ours."""
    objs = {"seq.bin": random.Random(11).randbytes(12 * MiB + 12345),
            "odd.bin": random.Random(12).randbytes(1000003)}
    for k, v in objs.items():
        reads_bucket(k, v)
    return objs


@pytest.fixture
def rmount(mount, owner_env, data):
    """mount(*args) of the module's bucket, with the owner's static keys."""
    def make(*args, expect_log=()):
        return mount(BUCKET, *args, env=owner_env, expect_log=expect_log)
    return make


@pytest.fixture(scope="module")
def reads_bucket(testbed):
    """A bucket of this module's own, so other tests never see its churn."""
    testbed.owner.create_bucket(BUCKET, check=False)
    made = []

    def put(key, data):
        testbed.owner.put_object(BUCKET, key, data)
        made.append(key)
    yield put
    for key in made:
        testbed.owner.delete_object(BUCKET, key, check=False)


def test_sequential_read_fetches_each_byte_once(testbed, rmount, data):
    ref = data["seq.bin"]
    m = rmount()
    before = testbed.rgw_log_size()
    assert sha256_file(m.path("seq.bin")) == hashlib.sha256(ref).hexdigest()
    gets = gets_since(testbed, before, "seq.bin")
    assert all(status == 206 for _, _, status in gets), gets
    assert_disjoint(gets)
    assert sum(b - a for a, b, _ in gets) == len(ref)
    # The window grows: a dozen MiB in a handful of GETs, the first one small.
    assert sorted(gets)[0][:2] == (0, MiB)
    assert len(gets) <= 8, gets


def test_first_byte_fetches_only_the_first_window(testbed, rmount):
    m = rmount()
    before = testbed.rgw_log_size()
    fd = os.open(m.path("seq.bin"), os.O_RDONLY)
    try:
        assert len(os.read(fd, 1)) == 1  # unbuffered: the kernel asks for 16 KiB
    finally:
        os.close(fd)
    gets = gets_since(testbed, before, "seq.bin")
    assert [g[:2] for g in gets] == [(0, MiB)]


def test_warm_reread_sends_no_request(testbed, rmount, data):
    m = rmount("--metadata-ttl", "30")
    assert sha256_file(m.path("odd.bin")) == hashlib.sha256(data["odd.bin"]).hexdigest()
    # The first read's GETs are in the log before the count starts (one was
    # logged after it once, on a loaded machine).
    wait_for_log(testbed)
    before = testbed.rgw_log_size()
    assert sha256_file(m.path("odd.bin")) == hashlib.sha256(data["odd.bin"]).hexdigest()
    wait_for_log(testbed)
    # Same ETag: the page cache answers; no GET and no HEAD of the object.
    assert [r for r in testbed.rgw_requests_since(before) if "odd.bin" in r[1]] == []


def test_small_skips_back_and_forth(testbed, rmount, data):
    ref = data["seq.bin"]
    m = rmount()
    before = testbed.rgw_log_size()
    fd = os.open(m.path("seq.bin"), os.O_RDONLY | os.O_DIRECT)
    try:
        off, step, i = 0, 128 << 10, 0
        while off < len(ref):
            assert odirect_pread(fd, step, off) == ref[off:off + step], off
            if i % 5 == 2:  # a little back, as out-of-order kernel reads look
                back = off - (256 << 10)
                if back >= 0:
                    assert odirect_pread(fd, 8192, back) == ref[back:back + 8192]
            if i % 7 == 6:  # a little forward
                off += 512 << 10
            off += step
            i += 1
    finally:
        os.close(fd)
    gets = gets_since(testbed, before, "seq.bin")
    # Still one stream: no byte fetched twice, never more than the object.
    assert_disjoint(gets)
    assert sum(b - a for a, b, _ in gets) <= len(ref)


def test_random_reads_fetch_what_is_asked(testbed, rmount, data):
    ref = data["seq.bin"]
    m = rmount()
    rng = random.Random(7)
    offs = [rng.randrange(1, len(ref) // 4096) * 4096 for _ in range(60)]
    before = testbed.rgw_log_size()
    fd = os.open(m.path("seq.bin"), os.O_RDONLY | os.O_DIRECT)
    try:
        for off in offs:
            assert odirect_pread(fd, 4096, off) == ref[off:off + 4096], off
        big = offs[0]
        assert odirect_pread(fd, 256 << 10, big) == ref[big:big + (256 << 10)]
        # A buffered random 256 KiB read reaches the daemon as two adjacent halves.
        for _ in range(10):
            off = rng.randrange(1, len(ref) // (256 << 10)) * (256 << 10)
            for half in (off, off + (128 << 10)):
                assert odirect_pread(fd, 128 << 10, half) == ref[half:half + (128 << 10)]
    finally:
        os.close(fd)
    gets = gets_since(testbed, before, "seq.bin")
    asked = 60 * 4096 + (256 << 10) + 10 * (256 << 10)
    assert len(gets) == 81, gets
    assert sum(b - a for a, b, _ in gets) <= 2 * asked


def test_reads_at_the_end(testbed, rmount, data):
    ref = data["odd.bin"]
    size = len(ref)
    m = rmount()
    fd = os.open(m.path("odd.bin"), os.O_RDONLY | os.O_DIRECT)
    try:
        assert odirect_pread(fd, 8192, size - size % 4096) == ref[size - size % 4096:]
        assert odirect_pread(fd, 4096, size) == b""
        assert odirect_pread(fd, 4096, size + (1 << 20)) == b""
        assert odirect_pread(fd, 1 << 20, 0) == ref[:1 << 20]
    finally:
        os.close(fd)
    with open(m.path("odd.bin"), "rb") as f:
        f.seek(size - 3)
        assert f.read(100) == ref[-3:]
        assert f.read(100) == b""
        f.seek(size + 5)
        assert f.read() == b""


def test_many_handles_on_one_file(testbed, rmount, data):
    ref = data["seq.bin"]
    want = hashlib.sha256(ref).hexdigest()
    m = rmount()
    results = {}

    def sequential(i, chunk):
        h = hashlib.sha256()
        with open(m.path("seq.bin"), "rb", buffering=0) as f:
            while True:
                b = f.read(chunk)
                if not b:
                    break
                h.update(b)
        results[i] = h.hexdigest() == want

    def scattered(i):
        rng = random.Random(i)
        fd = os.open(m.path("seq.bin"), os.O_RDONLY | os.O_DIRECT)
        ok = True
        try:
            for _ in range(40):
                off = rng.randrange(0, len(ref) // 4096) * 4096
                n = rng.choice([4096, 65536, 1 << 20])
                ok = ok and odirect_pread(fd, n, off) == ref[off:off + n]
        finally:
            os.close(fd)
        results[i] = ok

    threads = [threading.Thread(target=sequential, args=(i, c))
               for i, c in enumerate([4096, 70000, 1 << 20, 3 << 20])]
    threads += [threading.Thread(target=scattered, args=(i,)) for i in (10, 11)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {0: True, 1: True, 2: True, 3: True, 10: True, 11: True}


def test_many_small_files_opened_and_closed(testbed, rmount, data):
    # The kernel may send RELEASE while the reading thread still holds its reply.
    m = rmount()
    want = data["odd.bin"][:4096]
    for _ in range(300):
        fd = os.open(m.path("odd.bin"), os.O_RDONLY | os.O_DIRECT)
        try:
            assert odirect_pread(fd, 4096, 0) == want
        finally:
            os.close(fd)


def test_small_memory_budget_still_reads_correctly(testbed, rmount, data):
    want = hashlib.sha256(data["seq.bin"]).hexdigest()
    m = rmount("--max-memory", "4M", "--read-part-size", "2M", "--read-concurrency", "4")
    before = testbed.rgw_log_size()
    out = []
    threads = [threading.Thread(target=lambda: out.append(sha256_file(m.path("seq.bin"))))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [want] * 3
    gets = gets_since(testbed, before, "seq.bin")
    assert gets and max(b - a for a, b, _ in gets) <= 2 * MiB


def test_bad_read_flags_are_refused(testbed):
    from conftest import irsafs_bin
    import subprocess
    for args, word in ((["--max-memory", "1M"], "--max-memory"),
                       (["--read-part-size", "10"], "--read-part-size"),
                       (["--read-concurrency", "0"], "--read-concurrency"),
                       (["--lookup-read", "1"], "--lookup-read"),
                       (["--lookup-read", "9M"], "--lookup-read"),
                       (["--kernel-readahead", "x"], "--kernel-readahead"),
                       (["--kernel-readahead", "1G"], "--kernel-readahead")):
        p = subprocess.run([irsafs_bin(), *args, "b-bucket", "/nonexistent"], capture_output=True,
                           text=True, env=pod_env(testbed))
        assert p.returncode == 2 and word in p.stderr, (args, p.stderr)


def test_changed_object_gives_estale_then_new_bytes(testbed, rmount, reads_bucket):
    old = bytes(random.Random(1).randbytes(4 * MiB))
    new = bytes(random.Random(2).randbytes(4 * MiB))
    reads_bucket("estale.bin", old)
    m = rmount("--metadata-ttl", "1", expect_log=[r"changed since it was opened"])
    fd = os.open(m.path("estale.bin"), os.O_RDONLY | os.O_DIRECT)
    try:
        assert odirect_pread(fd, 65536, 0) == old[:65536]
        reads_bucket("estale.bin", new)
        before = testbed.rgw_log_size()
        with pytest.raises(OSError) as ei:
            odirect_pread(fd, 65536, 3 * MiB)
        assert ei.value.errno == errno.ESTALE
        # The handle stays stale, even where the old bytes were fetched.
        with pytest.raises(OSError) as ei:
            odirect_pread(fd, 65536, 0)
        assert ei.value.errno == errno.ESTALE
    finally:
        os.close(fd)
    statuses = [s for _, _, s in gets_since(testbed, before, "estale.bin")]
    assert statuses and set(statuses) == {412}, statuses
    time.sleep(1.2)  # past the metadata TTL: a new open sees the new ETag
    with open(m.path("estale.bin"), "rb") as f:
        assert f.read() == new


def block_files(d):
    return [os.path.join(d, n) for n in os.listdir(d) if n.endswith(".blk")]


def block_at(d, off):
    """The block file of the block at off (its header: magic, identity, offset)."""
    for p in block_files(d):
        with open(p, "rb") as f:
            h = f.read(48)
        if h[:8] == b"IRSAFSB2" and int.from_bytes(h[40:48], "little") == off:
            return p
    raise AssertionError(f"no block file for offset {off} in {d}")


def disk_bytes(paths):
    """What the (sparse) block files take on disk."""
    return sum(os.stat(p).st_blocks * 512 for p in paths)


def odirect_sha(path):
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        off = 0
        while True:
            b = odirect_pread(fd, 1 << 20, off)
            if not b:
                break
            h.update(b)
            off += len(b)
    finally:
        os.close(fd)
    return h.hexdigest()


def test_disk_cache_hits_verifies_and_empties(testbed, rmount, data, tmp_path):
    cdir = str(tmp_path / "cache")
    want = hashlib.sha256(data["seq.bin"]).hexdigest()
    # A metadata TTL that outlives the test under load: a re-lookup would GET the first
    # 128 KiB again, and that is not what this test counts.
    m = rmount("--cache-dir", cdir, "--metadata-ttl", "30",
               expect_log=[r"disk cache: block at \d+ of s3://\S+ failed"])
    assert os.stat(cdir).st_mode & 0o777 == 0o700
    assert odirect_sha(m.path("seq.bin")) == want
    assert len(block_files(cdir)) == 13  # 12 MiB + 12345 bytes in 1 MiB blocks
    # Again, past the page cache: served from disk, no GET.
    before = testbed.rgw_log_size()
    assert odirect_sha(m.path("seq.bin")) == want
    assert gets_since(testbed, before, "seq.bin") == []
    # A corrupted block is a miss: detected, logged, fetched again (that block only).
    victim = block_at(cdir, 5 * MiB)
    with open(victim, "r+b") as f:
        f.seek(5000)
        b = f.read(1)
        f.seek(5000)
        f.write(bytes([b[0] ^ 0xFF]))
    before = testbed.rgw_log_size()
    assert odirect_sha(m.path("seq.bin")) == want
    gets = gets_since(testbed, before, "seq.bin")
    assert [(a, b) for a, b, _ in gets] == [(5 * MiB, 6 * MiB)], gets
    assert "failed its check" in m.log()
    m.unmount()
    assert os.listdir(cdir) == []


def test_disk_cache_block_files_stay_out_of_the_page_cache(testbed, rmount, data, tmp_path):
    """Block files are written and read back with O_DIRECT: after a cold read and a
    read from disk, only their header pages and the object's short last granule are
    in the page cache, and the bytes are right both times."""
    cdir = str(tmp_path / "cache")
    fstype = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", str(tmp_path)],
                            capture_output=True, text=True, check=True).stdout.strip()
    if fstype not in ("ext4", "xfs", "btrfs"):
        pytest.skip(f"{tmp_path} is on {fstype}: direct I/O is checked on ext4, xfs or btrfs")
    want = hashlib.sha256(data["seq.bin"]).hexdigest()
    m = rmount("--cache-dir", cdir, "--metadata-ttl", "30")
    assert odirect_sha(m.path("seq.bin")) == want
    files = block_files(cdir)
    assert len(files) == 13
    # A header page each, and the last block's short granule: 12345 bytes, 4 pages.
    limit = len(files) * 4096 + 4 * 4096
    assert sum(resident(f) for f in files) <= limit
    before = testbed.rgw_log_size()
    assert odirect_sha(m.path("seq.bin")) == want
    assert gets_since(testbed, before, "seq.bin") == []
    assert sum(resident(f) for f in block_files(cdir)) <= limit
    m.unmount()


def test_disk_cache_random_reads_fetch_granules(testbed, rmount, data, tmp_path):
    """Random 4 KiB reads with --cache-dir fetch a 16 KiB granule each, not a 1 MiB
    block, and a second pass over the same ranges is served from disk."""
    ref = data["seq.bin"]
    cdir = str(tmp_path / "cache")
    m = rmount("--cache-dir", cdir, "--metadata-ttl", "30")
    rng = random.Random(17)
    offs = [rng.randrange(32, len(ref) // 4096) * 4096 for _ in range(80)]
    fd = os.open(m.path("seq.bin"), os.O_RDONLY | os.O_DIRECT)
    try:
        before = testbed.rgw_log_size()  # after the lookup's GET
        for off in offs:
            assert odirect_pread(fd, 4096, off) == ref[off:off + 4096], off
        first = gets_since(testbed, before, "seq.bin")
        before = testbed.rgw_log_size()
        for off in reversed(offs):
            assert odirect_pread(fd, 4096, off) == ref[off:off + 4096], off
        second = gets_since(testbed, before, "seq.bin")
    finally:
        os.close(fd)
    asked = len(offs) * 4096
    granules = {off // (16 << 10) for off in offs}
    assert all(status == 206 and b - a == 16 << 10 for a, b, status in first), first
    assert len(first) == len(granules), first
    assert sum(b - a for a, b, _ in first) <= 4 * asked
    assert second == []
    m.unmount()
    assert os.listdir(cdir) == []


def test_disk_cache_size_limit_and_exclusive_dir(testbed, rmount, data, tmp_path, owner_env):
    cdir = str(tmp_path / "cache")
    want = hashlib.sha256(data["seq.bin"]).hexdigest()
    m = rmount("--cache-dir", cdir, "--max-cache-size", "3M")
    for _ in range(2):
        assert odirect_sha(m.path("seq.bin")) == want
        assert disk_bytes(block_files(cdir)) <= 3 * MiB
    # A second mount may not use the same directory at the same time.
    import subprocess
    from conftest import irsafs_bin
    other = tmp_path / "mnt2"
    other.mkdir()
    p = subprocess.run([irsafs_bin(), "-f", "--cache-dir", cdir, BUCKET, str(other)],
                       capture_output=True, text=True, timeout=60, env=owner_env)
    assert p.returncode == 1 and "in use by another mount" in p.stderr, p.stderr
    m.unmount()
    assert os.listdir(cdir) == []
