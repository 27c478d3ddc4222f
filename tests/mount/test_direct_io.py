"""Big objects are read with direct I/O (--direct-io-size): past the page cache,
the same bytes, and still mappable MAP_SHARED (FUSE_DIRECT_IO_ALLOW_MMAP, which
irsafs asks of the kernel's INIT itself: libfuse 3.14 cannot)."""
import errno
import hashlib
import mmap
import os
import re
import subprocess

import pytest

import test_metrics
from test_read import check_odd_reads


def resident(path):
    """Bytes of path in the page cache, as fincore (util-linux) counts them."""
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", path],
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def read_all(path, bufsize=1 << 20, limit=None):
    """sha256 of path read bufsize bytes at a time (up to limit bytes)."""
    h, done = hashlib.sha256(), 0
    with open(path, "rb", buffering=0) as f:
        while limit is None or done < limit:
            b = f.read(bufsize)
            if not b:
                break
            h.update(b)
            done += len(b)
    return h.hexdigest()


def kernel_maps_direct_io_shared():
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    return (major, minor) >= (6, 6)


def drop_caches():
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def test_an_object_over_the_size_bypasses_the_page_cache_and_maps_shared(testbed, mount):
    m = mount("demo-bucket", "--direct-io-size", "4M")
    objs = testbed.objects()
    big, medium = m.path("big.bin"), m.path("medium.bin")
    drop_caches()
    assert read_all(big) == objs["big.bin"]["sha256"]
    assert resident(big) == 0
    # Under the size: the page cache as before.
    assert read_all(medium) == objs["medium.bin"]["sha256"]
    assert resident(medium) >= objs["medium.bin"]["size"]  # whole pages
    with open(big, "rb") as f:
        if not kernel_maps_direct_io_shared():
            with pytest.raises(OSError) as e:
                mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            assert e.value.errno == errno.ENODEV
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:  # MAP_SHARED
            assert hashlib.sha256(mm).hexdigest() == objs["big.bin"]["sha256"]
            assert mm[12345:12350] == testbed.owner.get_object(
                "demo-bucket", "big.bin", "bytes=12345-12349").body


def test_by_default_and_with_off_objects_stay_in_the_page_cache(testbed, mount):
    objs = testbed.objects()
    for args in ((), ("--direct-io-size", "off")):  # big.bin is 12 MiB, the default 64M
        m = mount("demo-bucket", *args)
        drop_caches()
        assert read_all(m.path("big.bin")) == objs["big.bin"]["sha256"]
        assert resident(m.path("big.bin")) >= objs["big.bin"]["size"], args
        m.unmount()


def test_direct_reads_at_odd_offsets_and_sizes_return_the_stored_bytes(testbed, mount):
    m = mount("demo-bucket", "--direct-io-size", "0")  # every object
    ref = testbed.owner.get_object("demo-bucket", "big.bin").body
    check_odd_reads(m.path("big.bin"), ref, 4321, 40)
    assert resident(m.path("big.bin")) == 0
    with open(m.path("hello.txt"), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == testbed.objects()["hello.txt"]["sha256"]


@pytest.mark.parametrize("value", ["banana", "-1", "1K", "12Q"])
def test_a_bad_direct_io_size_is_refused_with_the_flag_named(value):
    from conftest import irsafs_bin
    r = subprocess.run([irsafs_bin(), "--direct-io-size", value, "b", "/nonexistent"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--direct-io-size" in lines[0] and "64M" in lines[0], lines


SMALL_NOTICE = r"read 4096 bytes at a time with direct I/O .*--direct-io-size"


def small_direct_reads(port):
    status, _, body = test_metrics.fetch(port)
    assert status == 200
    return test_metrics.value(test_metrics.parse(body), "irsafs_small_direct_reads_total")


def test_small_sequential_direct_reads_are_counted_and_told_once(testbed, mount):
    port = test_metrics.free_port()
    m = mount("demo-bucket", "--direct-io-size", "4M", "--metrics-addr", f"127.0.0.1:{port}")
    objs = testbed.objects()
    big = m.path("big.bin")  # 12 MiB: direct I/O
    # Large reads, and small reads that jump about: neither is worth a word.
    assert read_all(big, 1 << 20) == objs["big.bin"]["sha256"]
    with open(big, "rb", buffering=0) as f:
        for i in range(400):
            assert len(os.pread(f.fileno(), 4096, (i * 7919 * 4096) % (12 << 20))) == 4096
    assert small_direct_reads(port) == 0
    assert not re.search(SMALL_NOTICE, m.log())
    # Under the size the page cache gathers small reads: not counted.
    assert read_all(m.path("medium.bin"), 4096) == objs["medium.bin"]["sha256"]
    assert small_direct_reads(port) == 0
    # A stream of 4 KiB reads: each one after the first is counted, and one notice
    # names the object and the fix.
    assert read_all(big, 4096) == objs["big.bin"]["sha256"]
    assert small_direct_reads(port) == 3 * 1024 - 1
    assert read_all(big, 4096, limit=1 << 20) == hashlib.sha256(
        testbed.owner.get_object("demo-bucket", "big.bin", "bytes=0-1048575").body).hexdigest()
    assert small_direct_reads(port) == 3 * 1024 - 1 + 255
    notices = [l for l in m.log().splitlines() if re.search(SMALL_NOTICE, l)]
    assert len(notices) == 1, m.log()
    assert "s3://demo-bucket/big.bin" in notices[0]
