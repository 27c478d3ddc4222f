"""Reading through the mount: names, sizes and bytes exactly as stored."""
import hashlib
import os
import random
import subprocess


from conftest import sha256_file


def test_role_is_assumed_and_logged(testbed, mount):
    m = mount()
    log = m.log()
    assert "identity: arn:aws:sts:::assumed-role/s3-reader/" in log
    assert "credentials from web identity" in log


def test_root_listing(testbed, mount):
    m = mount()
    assert sorted(os.listdir(m.dir)) == sorted([
        "big.bin", "blue", "dir", "dir-1", "empty", "hello.txt", "hidden", "many",
        "marker", "medium.bin", "odd", "team-a", "team-b", "unicode"])


def test_every_visible_file_has_its_size_and_bytes(testbed, mount):
    m = mount()
    want = testbed.visible_files()
    found = {}
    for root, dirs, files in os.walk(m.dir):
        for f in files:
            p = os.path.join(root, f)
            found[os.path.relpath(p, m.dir)] = p
    assert sorted(found) == sorted(want)
    for rel, meta in want.items():
        st = os.stat(found[rel])
        assert st.st_size == meta["size"], rel
        assert sha256_file(found[rel]) == meta["sha256"], rel


def test_ls_l_costs_listing_pages_and_no_head(testbed, mount):
    m = mount("demo-bucket", "--list-page-size", "10", "--metadata-ttl", "30")
    os.listdir(m.dir)  # the root's listing already says "many" is a directory
    before = testbed.rgw_log_size()
    out = subprocess.run(["ls", "-l", m.path("many")], capture_output=True, text=True,
                         check=True).stdout
    reqs = [r for r in testbed.rgw_requests_since(before)
            if "prefix=many%2F" in r[1] or r[1].startswith("/demo-bucket/many/")]
    assert out.count("file-00") == 25
    # 25 entries in pages of 10: three ListObjectsV2 pages, no HEAD, no GET of an object.
    assert [r[0] for r in reqs] == ["GET"] * 3, reqs
    assert all("list-type=2" in r[1] for r in reqs), reqs
    sizes = {line.split()[-1]: int(line.split()[4]) for line in out.splitlines()[1:]}
    objs = testbed.objects()
    for i in range(25):
        assert sizes[f"file-{i:04d}.txt"] == objs[f"many/file-{i:04d}.txt"]["size"]


def test_listing_split_over_many_pages(testbed, mount):
    m = mount("demo-bucket", "--list-page-size", "2")
    assert sorted(os.listdir(m.path("many"))) == [f"file-{i:04d}.txt" for i in range(25)]
    assert len(os.listdir(m.dir)) == 14


def check_odd_reads(path, ref, seed, rounds):
    """pread at random offsets with odd sizes, across the end and past it."""
    size = len(ref)
    rng = random.Random(seed)
    fd = os.open(path, os.O_RDONLY)
    try:
        for _ in range(rounds):
            off = rng.randrange(0, size)
            n = rng.choice([1, 7, 4095, 4097, 70000, 131073, 1 << 20, 3 << 20])
            assert os.pread(fd, n, off) == ref[off:off + n], (off, n)
        # Reading across the end returns what is left; past it, 0 bytes.
        assert os.pread(fd, 100, size - 10) == ref[-10:]
        assert os.pread(fd, 100, size) == b""
        assert os.pread(fd, 100, size + 12345) == b""
    finally:
        os.close(fd)


def test_odd_offsets_and_buffer_sizes(testbed, mount):
    m = mount()
    ref = testbed.owner.get_object("demo-bucket", "big.bin").body
    check_odd_reads(m.path("big.bin"), ref, 1234, 60)
    # Sequential with a 70000-byte buffer, as peers test it.
    h = hashlib.sha256()
    with open(m.path("big.bin"), "rb", buffering=0) as f:
        while True:
            b = f.read(70000)
            if not b:
                break
            h.update(b)
    assert h.hexdigest() == hashlib.sha256(ref).hexdigest()


def test_small_file_past_eof(testbed, mount):
    m = mount()
    with open(m.path("hello.txt"), "rb") as f:
        data = f.read()
        f.seek(50)
        assert f.read() == b""
    assert hashlib.sha256(data).hexdigest() == testbed.objects()["hello.txt"]["sha256"]


def test_two_handles_on_one_file(testbed, mount):
    m = mount()
    with open(m.path("medium.bin"), "rb") as a, open(m.path("medium.bin"), "rb") as b:
        parts_a, parts_b = [], []
        while True:
            x, y = a.read(65536), b.read(100000)
            parts_a.append(x)
            parts_b.append(y)
            if not x and not y:
                break
    want = testbed.objects()["medium.bin"]["sha256"]
    assert hashlib.sha256(b"".join(parts_a)).hexdigest() == want
    assert hashlib.sha256(b"".join(parts_b)).hexdigest() == want


def test_prefix_mount(testbed, mount):
    m = mount("demo-bucket", "--prefix", "dir")
    assert sorted(os.listdir(m.dir)) == ["a.txt", "sub"]
    assert os.listdir(m.path("sub")) == ["deep.txt"]
    with open(m.path("a.txt"), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == testbed.objects()["dir/a.txt"]["sha256"]


def test_find_lists_the_tree(testbed, mount):
    m = mount()
    out = subprocess.run(["find", ".", "-type", "f"], cwd=m.dir, capture_output=True,
                         text=True, check=True).stdout
    assert sorted(p[2:] for p in out.splitlines()) == sorted(testbed.visible_files())


def test_stat_types_modes_and_owner(testbed, mount):
    m = mount("demo-bucket", "--uid", "1234", "--gid", "4321", "--file-mode", "0440",
              "--dir-mode", "0550")
    st = os.stat(m.path("hello.txt"))
    assert (st.st_mode & 0o170000, st.st_mode & 0o7777) == (0o100000, 0o440)
    assert (st.st_uid, st.st_gid) == (1234, 4321)
    st = os.stat(m.path("dir"))
    assert (st.st_mode & 0o170000, st.st_mode & 0o7777) == (0o040000, 0o550)
    assert st.st_mtime > 1.7e9  # not 1970 for an implicit directory
    sv = os.statvfs(m.dir)
    assert sv.f_blocks >= sv.f_bfree > 0 and sv.f_namemax == 255


def _object_requests(testbed, before, key):
    return [r for r in testbed.rgw_requests_since(before)
            if r[1].split("?")[0] == "/demo-bucket/" + key]


def test_cat_by_path_costs_one_get(testbed, mount):
    """A cold lookup GETs the first bytes instead of a HEAD: a small file read by
    its path costs that one GET (plus the directory probe), never a HEAD."""
    m = mount("demo-bucket", "--metadata-ttl", "30")
    before = testbed.rgw_log_size()
    with open(m.path("dir/sub/deep.txt"), "rb") as f:
        data = f.read()
    assert data == testbed.owner.get_object("demo-bucket", "dir/sub/deep.txt").body
    assert [r[0] for r in _object_requests(testbed, before, "dir/sub/deep.txt")] == ["GET"]
    # A larger file: the lookup's bytes start it, and read-ahead brings the rest once.
    # (Pages of one key: the root's listing at mount is then not kept, so the
    # lookup asks S3.)
    m = mount("demo-bucket", "--metadata-ttl", "30", "--list-page-size", "1")
    before = testbed.rgw_log_size()
    ref = testbed.owner.get_object("demo-bucket", "medium.bin").body
    with open(m.path("medium.bin"), "rb") as f:
        assert f.read() == ref
    reqs = _object_requests(testbed, before, "medium.bin")
    assert "HEAD" not in [r[0] for r in reqs], reqs
    assert len(reqs) == 2, reqs  # the first 128 KiB, then the rest of the first window


def test_lookup_read_falls_back_to_head(testbed, mount):
    """An empty object has no first bytes (416): a HEAD answers. --lookup-read 0: HEADs only."""
    key = "empty-%d.txt" % os.getpid()
    testbed.owner.put_object("demo-bucket", key, b"")
    try:
        m = mount("demo-bucket", "--metadata-ttl", "30", "--list-page-size", "1")
        before = testbed.rgw_log_size()
        with open(m.path(key), "rb") as f:
            assert f.read() == b""
        assert "HEAD" in [r[0] for r in _object_requests(testbed, before, key)]
    finally:
        testbed.owner.delete_object("demo-bucket", key)
    m2 = mount("demo-bucket", "--lookup-read", "0", "--list-page-size", "1")
    before = testbed.rgw_log_size()
    with open(m2.path("hello.txt"), "rb") as f:
        assert f.read() == b"hello from irsafs\n"
    assert [r[0] for r in _object_requests(testbed, before, "hello.txt")] == ["HEAD", "GET"]


def test_mount_time_listing_answers_the_root(testbed, mount):
    """The listing made at mount holds the whole root: within the TTL, ls and
    lookups there cost no request."""
    m = mount("demo-bucket", "--metadata-ttl", "30")
    before = testbed.rgw_log_size()
    names = os.listdir(m.dir)
    assert "hello.txt" in names and "dir" in names
    assert os.stat(m.path("hello.txt")).st_size == 18
    assert os.path.isdir(m.path("dir"))
    assert testbed.rgw_requests_since(before) == []


def _read_ahead_kb(path):
    dev = os.stat(path).st_dev
    with open(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb") as f:
        return int(f.read())


def test_kernel_readahead_is_raised_for_the_mount(testbed, mount):
    # Found in mountinfo by its path, escapes and all.
    m = mount("demo-bucket", name_suffix=" with space")
    os.listdir(m.dir)
    assert _read_ahead_kb(m.dir) == 512
    assert "kernel read-ahead for %s set to 512 KiB" % m.dir in m.log()
    m = mount("demo-bucket", "--kernel-readahead", "1M")
    os.listdir(m.dir)
    assert _read_ahead_kb(m.dir) == 1024
    m = mount("demo-bucket", "--kernel-readahead", "0")
    os.listdir(m.dir)
    assert _read_ahead_kb(m.dir) == 128  # the kernel's own default
    # Reads are still right with larger kernel requests.
    m = mount("demo-bucket", "--kernel-readahead", "1M")
    assert sha256_file(m.path("big.bin")) == testbed.objects()["big.bin"]["sha256"]


def test_close_costs_no_flush(mount):
    """Nothing is buffered for writing: after the first FLUSH is answered ENOSYS the
    kernel sends none, so close(2) is not a round trip."""
    m = mount("demo-bucket", "--debug")
    for _ in range(5):
        with open(m.path("hello.txt"), "rb") as f:
            assert f.read() == b"hello from irsafs\n"
    assert m.log().count("opcode: FLUSH") <= 1, m.log()
    assert m.log().count("opcode: OPEN") == 5
