"""Staging a directory of many small files: read ahead across files
(cache/dirahead.h), the xattrs cp -a copies, and irsafs exec's progress line.

The data: staging-bucket/d/, 2,000 files of varied sizes (a fixed seed: most
of 1 B to 64 KiB, one in 20 empty, a few of 1.5 MiB) and, in the middle of
the listing, a subdirectory of 20 more. Made once per testbed.

Each tool stages d/ through `irsafs exec` with the defaults (--metadata-ttl 1:
the copy outlives the listing's TTL, so every file is looked up again, as in
an init container). Checked: every byte (SHA-256 against what was written);
about one GET per file, from radosgw's access log; no HEAD per file; and, from
irsafs's own log, that the files were fetched ahead and taken by the opens.
A reader in random order wastes only a few GETs, and --max-memory 4M stages
the same bytes.
"""
import hashlib
import os
import pty
import random
import re
import select
import subprocess
import tempfile
import threading

import pytest

import s3admin
from conftest import BAD_LINE, irsafs_bin, pod_env, sha256_file

BUCKET = "staging-bucket"
N = 2000
SUB_N = 20
DONE = "done-v1"
BIG = 1536 << 10
AHEAD = re.compile(r"read ahead across files: (\d+) requests, (\d+) taken by opens, (\d+) breaks")
SUMMARY = re.compile(r"summary: objects opened (\d+), bytes read (\d+), S3 requests (\d+), "
                     r"listings (\d+), time ([\d.]+) s, ([\d.]+) MB/s, (\S+) exited (\d+)")


def body(name):
    """The bytes of d/NAME: sizes from a fixed seed."""
    rng = random.Random(f"irsafs-staging-{name}")
    r = rng.random()
    size = 0 if r < 0.05 else BIG if r > 0.995 else rng.randrange(1, 64 << 10)
    return rng.randbytes(size)


def names():
    top = [f"f{i:04d}.dat" for i in range(N)]
    # "f1000.d" sorts between f0999.dat and f1000.dat: a subdirectory mid-listing.
    sub = [f"f1000.d/g{i:02d}.dat" for i in range(SUB_N)]
    return top + sub


def owner_env(testbed):
    keys = s3admin.read_env_file(os.path.join(testbed.dir, "state", "owner.env"))
    return pod_env(testbed, AWS_ROLE_ARN=None, AWS_WEB_IDENTITY_TOKEN_FILE=None,
                   AWS_ACCESS_KEY_ID=keys["AWS_ACCESS_KEY_ID"],
                   AWS_SECRET_ACCESS_KEY=keys["AWS_SECRET_ACCESS_KEY"])


@pytest.fixture(scope="module")
def data(testbed):
    """relative name -> (size, sha256) of every file under d/."""
    env_file = os.path.join(testbed.dir, "state", "owner.env")
    c = s3admin.Client.from_env_file(env_file)
    want = {}
    for n in names():
        b = body(n)
        want[n] = (len(b), hashlib.sha256(b).hexdigest())
    r = c.create_bucket(BUCKET, check=False)
    assert r.status in (200, 409), (r.status, r.error_code)
    if c.head_object(BUCKET, DONE, check=False).status != 200:
        errors = []
        todo = names()

        def put_some(part):
            w = s3admin.Client.from_env_file(env_file)
            try:
                for n in part:
                    w.put_object(BUCKET, "d/" + n, body(n))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        ts = [threading.Thread(target=put_some, args=(todo[k::8],)) for k in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors, errors[:3]
        c.put_object(BUCKET, DONE, b"")
    return want


def requests_of(testbed, offset):
    """(file probes, HEADs, {key: GETs}) the staging bucket got after offset. A
    file probe is a lookup's "is NAME a directory?" LIST: one that has to ask
    S3 about a file. (The lookups of d itself, again each time its dentry
    expires, are not counted.)"""
    probes, heads, gets = 0, 0, {}
    for method, path in testbed.rgw_requests_since(offset):
        if not path.startswith(f"/{BUCKET}"):
            continue
        if "list-type=2" in path:
            probes += bool(re.search(r"max-keys=1&prefix=d%2F[^&]+\.dat%2F$", path))
        elif method == "HEAD":
            heads += 1
        elif method == "GET":
            key = path[len(BUCKET) + 2:].split("?")[0]
            if key.startswith("d/"):
                gets[key] = gets.get(key, 0) + 1
    return probes, heads, gets


def exec_stage(testbed, command, *args, tty=False):
    """irsafs exec ARGS staging-bucket MNT -- COMMAND (MNT and DEST put in):
    (exit status, stderr text, DEST)."""
    mnt = tempfile.mkdtemp(prefix="irsafs-exec-")
    dest = tempfile.mkdtemp(prefix="irsafs-dest-")
    argv = [irsafs_bin(), "exec", *args, BUCKET, mnt, "--", "sh", "-c",
            command.replace("{MNT}", mnt).replace("{DEST}", dest)]
    if tty:
        rc, err = run_on_tty(argv, owner_env(testbed))
    else:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           env=owner_env(testbed), timeout=600)
        rc, err = p.returncode, p.stderr.decode("utf-8", "replace")
    if os.path.ismount(mnt):
        subprocess.run(["fusermount3", "-u", "-z", mnt], check=False)
        raise AssertionError("exec left its mount behind:\n" + err)
    os.rmdir(mnt)
    return rc, err, dest


def run_on_tty(argv, env):
    """Run with stdout and stderr on a pseudo-terminal: (status, what it wrote)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out = b""
    while True:
        r, _, _ = select.select([master], [], [], 600)
        if not r:
            p.kill()
            raise AssertionError("irsafs exec did not finish within 600 s")
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return p.wait(timeout=60), out.decode("utf-8", "replace")


def check_tree(dest, want):
    got = {}
    for root, _, files in os.walk(dest):
        for f in files:
            p = os.path.join(root, f)
            got[os.path.relpath(p, dest)] = p
    assert sorted(got) == sorted(want)
    bad = [n for n, (size, digest) in want.items()
           if os.path.getsize(got[n]) != size or sha256_file(got[n]) != digest]
    assert not bad, f"{len(bad)} files with wrong bytes, first {bad[:5]}"


def clean(err):
    return [line for line in err.splitlines() if BAD_LINE.search(line)]


def check_requests(testbed, offset, want, err, files_read):
    """About one request per file read (a GET, or a HEAD for an empty file),
    and no HEAD per file besides; the requests ahead taken by the opens."""
    probes, heads, gets = requests_of(testbed, offset)
    read = [n for n in files_read if want[n][0] > 0]
    empty = [n for n in files_read if want[n][0] == 0]
    small = [n for n in read if want[n][0] <= 1 << 20]
    twice = [n for n in small if gets.get("d/" + n, 0) > 1]
    total = sum(gets.values())
    # A file of up to 1 MiB is one GET; a larger one two (its first MiB ahead, then the rest).
    assert total <= len(read) + sum(1 for n in read if want[n][0] > 1 << 20) + 10, \
        (total, len(read))
    assert len(twice) <= 3, twice[:10]
    assert sum(1 for n in empty if gets.get("d/" + n, 0)) <= 3
    # An empty file's one request is a HEAD; others only for the first files of a directory.
    assert heads <= len(empty) + 6, (heads, len(empty))
    assert probes <= 4, probes
    m = AHEAD.search(err)
    assert m, err[-2000:]
    fetched, taken, breaks = (int(x) for x in m.groups())
    assert taken >= 0.95 * len(read), (taken, len(read))
    assert fetched - taken <= len(empty) + 10, (fetched, taken)
    return breaks


TOOLS = {
    "cp -a": "cp -a {MNT}/d {DEST}/",
    "tar": "tar c -C {MNT} d | tar x -C {DEST}",
    "rsync -a": "rsync -a {MNT}/d {DEST}/",
}


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_a_copy_tool_stages_every_byte_with_one_get_per_file(testbed, data, tool):
    offset = testbed.rgw_log_size()
    rc, err, dest = exec_stage(testbed, TOOLS[tool])
    try:
        assert rc == 0, err[-3000:]
        assert clean(err) == [], err[-3000:]
        check_tree(os.path.join(dest, "d"), data)
        breaks = check_requests(testbed, offset, data, err, list(data))
        assert breaks <= 2, breaks
        m = SUMMARY.search(err)
        # tar opens no empty file; the others open every file.
        opened = len(data) if tool != "tar" else sum(1 for s, _ in data.values() if s > 0)
        assert m and int(m.group(1)) == opened, err[-2000:]
        # Every byte read; the kernel may read a range again after it let the
        # pages go (512 KiB more once, on a loaded machine): a window or two.
        total = sum(size for size, _ in data.values())
        assert total <= int(m.group(2)) <= total + (2 << 20), (int(m.group(2)), total)
    finally:
        subprocess.run(["rm", "-rf", dest], check=False)


def test_sha256sum_star_reads_every_file_once(testbed, data):
    offset = testbed.rgw_log_size()
    rc, err, dest = exec_stage(testbed, "cd {MNT}/d && LC_ALL=C sha256sum f*.dat > {DEST}/sums")
    try:
        assert rc == 0, err[-3000:]
        assert clean(err) == [], err[-3000:]
        with open(os.path.join(dest, "sums")) as f:
            sums = dict(reversed(line.split()) for line in f)
        top = [n for n in data if "/" not in n]
        assert sums == {n: data[n][1] for n in top}
        check_requests(testbed, offset, data, err, top)
    finally:
        subprocess.run(["rm", "-rf", dest], check=False)


def test_a_reader_in_random_order_wastes_few_gets(testbed, data, mount):
    """Opens in no order: nothing is fetched ahead but after an accidental
    pair in order, and a break drops it. Every file is still one GET, give
    or take those few."""
    m = mount(BUCKET, env=owner_env(testbed))
    top = sorted(n for n in data if "/" not in n and data[n][0] > 0)
    order = list(top)
    random.Random(16).shuffle(order)
    pos = {n: i for i, n in enumerate(top)}
    pairs = sum(1 for a, b in zip(order, order[1:]) if pos[b] == pos[a] + 1)
    offset = testbed.rgw_log_size()
    for n in order:
        assert sha256_file(m.path("d", n)) == data[n][1], n
    _, heads, gets = requests_of(testbed, offset)
    total = sum(gets.values())
    # A large file: its lookup's first bytes, then the read-ahead's window (one or two parts).
    extra = 2 * sum(1 for n in top if data[n][0] > 1 << 20)
    assert total <= len(top) + extra + 4 * pairs + 8, (total, len(top), pairs)
    m.unmount()
    am = AHEAD.search(m.log())
    if am:
        fetched, taken, _ = (int(x) for x in am.groups())
        assert fetched - taken <= 4 * pairs + 8, (fetched, taken, pairs)


def test_a_small_max_memory_stages_the_same_bytes(testbed, data):
    offset = testbed.rgw_log_size()
    rc, err, dest = exec_stage(testbed, TOOLS["cp -a"], "--max-memory", "4M")
    try:
        assert rc == 0, err[-3000:]
        assert clean(err) == [], err[-3000:]
        check_tree(os.path.join(dest, "d"), data)
        _, heads, gets = requests_of(testbed, offset)
        read = [n for n in data if data[n][0] > 0]
        # A large file may be read in two parts more: the window is small in 4M.
        extra = 2 * sum(1 for n in read if data[n][0] > 1 << 20)
        assert sum(gets.values()) <= len(read) + extra + 10, (sum(gets.values()), len(read))
        assert heads <= len(data) - len(read) + 6, heads
    finally:
        subprocess.run(["rm", "-rf", dest], check=False)


def test_exec_shows_progress_on_a_terminal_and_a_summary_always(testbed, data):
    # Long enough for the once-a-second line: the copy, then a pause with the mount up.
    rc, out, dest = exec_stage(testbed, "cp -a {MNT}/d {DEST}/ && sleep 2.5", tty=True)
    try:
        assert rc == 0, out[-3000:]
        lines = re.findall(r"\rirsafs: (\d+) files, ([\d.]+) MB, ([\d.]+) MB/s", out)
        assert lines, out[-3000:]
        files, mb, _ = lines[-1]
        assert int(files) == len(data)
        assert abs(float(mb) - sum(s for s, _ in data.values()) / 1e6) < 0.1
        m = SUMMARY.search(out)
        assert m and int(m.group(1)) == len(data), out[-2000:]
        assert float(m.group(6)) > 0
    finally:
        subprocess.run(["rm", "-rf", dest], check=False)
    # Not a terminal (a Pod's log): the summary, and no progress line.
    rc, err, dest = exec_stage(testbed, "cp -a {MNT}/d {DEST}/ && sleep 1.5")
    subprocess.run(["rm", "-rf", dest], check=False)
    assert rc == 0, err[-3000:]
    assert "\r" not in err and not re.search(r"irsafs: \d+ files,", err), err[-2000:]
    assert SUMMARY.search(err), err[-2000:]


def test_listxattr_sends_no_request(testbed, data, mount):
    """cp -a lists the attributes of every file it copies: listxattr names what
    the node knows, with no request (it cost a HEAD per file). getxattr of the
    content type, which a listing lacks, still asks once."""
    m = mount(BUCKET, "--metadata-ttl", "120", env=owner_env(testbed))
    names = sorted(n for n in data if "/" not in n)[:50]
    os.listdir(m.path("d"))
    for n in names:
        os.stat(m.path("d", n))
    offset = testbed.rgw_log_size()
    for n in names:
        attrs = os.listxattr(m.path("d", n))
        assert "user.s3.etag" in attrs and "user.s3.last_modified" in attrs, attrs
    assert testbed.rgw_requests_since(offset) == []
    ctype = os.getxattr(m.path("d", names[1]), "user.s3.content_type")
    assert ctype
    reqs = testbed.rgw_requests_since(offset)
    assert [r[0] for r in reqs] == ["HEAD"], reqs
    # Known now: listed, and asked no more.
    assert "user.s3.content_type" in os.listxattr(m.path("d", names[1]))
    offset = testbed.rgw_log_size()
    assert os.getxattr(m.path("d", names[1]), "user.s3.content_type") == ctype
    assert testbed.rgw_requests_since(offset) == []
