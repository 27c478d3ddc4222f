"""The benchmark's tests: one function per client kind, each returning a dict of figures.

direct is the reference ("the ceiling"): curl, the testbed's S3 client and Debian's aws.
FUSE clients (irsafs, irsafs-cache, s3fs, rclone-*) run on a fresh mount per test. The
staging test runs irsafs as an init container does, with `irsafs exec`.
"""
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import threading
import time

from common import (BIG, BIG_SIZE, BUCKET, FIO_RUNTIME, IRSAFS_BIN, MID, MID_SIZE,
                    MILLION_BUCKET, MILLION_KEYS, MILLION_PREFIX, OUT, SMALL_FILES, TLS_CA_BUNDLE,
                    TLS_ENDPOINT, TLS_RESOLVE, TTFB_SAMPLES, AwsCli, Mount, S3, Window, curl, dd,
                    drop_caches, fio, irsafs_args, irsafs_env, log, parallel_curls, settle)

GIB = 1 << 30

# irsafs-cache (irsafs with --cache-dir) takes part in these only; the peers sit out
# the million keys (a HEAD each) and TLS.
CACHE_TESTS = {"seq", "rand4k", "rand256k"}
PEERS_SKIP = {"million", "seq-tls"}


def applies(client, test):
    """Does client take part in test? (Those that do not are left out, not failed.)"""
    if client == "irsafs-cache":
        return test in CACHE_TESTS
    if client in ("direct", "irsafs"):
        return True
    return test not in PEERS_SKIP


# ---- direct (the reference) --------------------------------------------------------


def direct_test(test):
    r = {}
    if test == "seq-tls":
        return tls_direct()
    if test == "million":
        return million_direct()
    settle()
    if test == "ttfb":
        with Window() as w:
            t = float(curl(BIG, "0-0").communicate()[0])
        r["ttfb_ms"] = t * 1000
    elif test == "seq":
        with Window() as w:
            curl(BIG).communicate()
        r["seq_cold_mbs"] = BIG_SIZE / w.seconds / 1e6
        r["seq_cold_cpu_per_gib"] = w.child_cpu / (BIG_SIZE / GIB)
    elif test == "seq4":
        with Window() as w:
            parallel_curls(8, BIG_SIZE)
        r["seq4_mbs"] = BIG_SIZE / w.seconds / 1e6
        r["seq4_cpu_per_gib"] = w.child_cpu / (BIG_SIZE / GIB)
        r["seq4_machine_cpu_per_gib"] = w.machine_cpu / (BIG_SIZE / GIB)
        r["seq4_recv_ratio"] = w.requests["bytes"] / BIG_SIZE
    elif test in ("rand4k", "rand256k"):
        bs = 4096 if test == "rand4k" else 256 << 10
        c, rng, n = S3(), random.Random(5), 0
        with Window() as w:
            end = time.monotonic() + FIO_RUNTIME
            while time.monotonic() < end:
                off = rng.randrange(0, MID_SIZE // bs) * bs
                c.get_object(BUCKET, MID, f"bytes={off}-{off + bs - 1}")
                n += 1
        r[test + "_iops"] = n / w.seconds
    elif test == "ls":
        c = S3()
        with Window() as w:
            c.list_all(BUCKET, "small/", "/")
        r["ls_s"] = w.seconds
    elif test == "cat":
        c = S3()
        with Window() as w:
            for i in range(1000):
                c.get_object(BUCKET, f"small/f{i:05d}.dat")
        r["cat_s"] = w.seconds
    elif test == "find":
        c = S3()
        with Window() as w:
            c.list_all(BUCKET, "tree/")
        r["find_s"] = w.seconds
    elif test == "stage":
        dest = tempfile.mkdtemp(prefix="bench-stage-")
        aws = AwsCli()
        try:
            with Window() as w:
                aws.run("s3", "sync", "--only-show-errors", f"s3://{BUCKET}/small", dest)
            check_staged(dest)
            r["stage_aws_s"] = w.seconds
            r["stage_aws_cpu_s"] = w.child_cpu
        finally:
            aws.close()
            shutil.rmtree(dest, ignore_errors=True)
    r[test + "_req"] = w.requests
    return r


# ---- staging ------------------------------------------------------------------------


def check_staged(d):
    """DEST holds the SMALL_FILES files of small/, 4 KiB each; three checked byte for byte."""
    names = sorted(os.listdir(d))
    if len(names) != SMALL_FILES:
        raise RuntimeError(f"staged {len(names)} files of {SMALL_FILES} in {d}")
    if any(os.path.getsize(os.path.join(d, n)) != 4096 for n in names):
        raise RuntimeError(f"a staged file in {d} is not 4096 bytes")
    for i in (0, SMALL_FILES // 2, SMALL_FILES - 1):
        with open(os.path.join(d, f"f{i:05d}.dat"), "rb") as f:
            if f.read() != random.Random(1000 + i).randbytes(4096):
                raise RuntimeError(f"staged f{i:05d}.dat has the wrong bytes")


STAGE_TOOLS = {
    "cp": lambda src, dest: ["cp", "-a", src, dest + "/"],
    "tar": lambda src, dest: ["sh", "-c", 'tar c -C "$(dirname "$1")" small | tar x -C "$2"',
                              "sh", src, dest],
    "rsync": lambda src, dest: ["rsync", "-a", src, dest + "/"],
}


def stage_irsafs():
    """`irsafs exec BUCKET MNT -- TOOL MNT/small DEST`, timed whole (mount to exit)."""
    r = {}
    for tool, argv in STAGE_TOOLS.items():
        settle()
        mnt = tempfile.mkdtemp(prefix="bench-exec-")
        dest = tempfile.mkdtemp(prefix="bench-stage-")
        home = tempfile.mkdtemp(prefix="bench-home-")
        logf = os.path.join(OUT, "logs", "irsafs-exec.log")
        try:
            cmd = [IRSAFS_BIN, "exec", *irsafs_args(), BUCKET, mnt, "--",
                   *argv(os.path.join(mnt, "small"), dest)]
            with open(logf, "ab") as lf, Window() as w:
                p = subprocess.run(cmd, env=irsafs_env(home), stdin=subprocess.DEVNULL,
                                   stdout=lf, stderr=lf)
            if p.returncode:
                raise RuntimeError(f"irsafs exec -- {tool} exited {p.returncode} "
                                   "(see logs/irsafs-exec.log)")
            check_staged(os.path.join(dest, "small"))
            r[f"stage_{tool}_s"] = w.seconds
            r[f"stage_{tool}_cpu_s"] = w.child_cpu
            r[f"stage_{tool}_req"] = w.requests
        finally:
            shutil.rmtree(dest, ignore_errors=True)
            shutil.rmtree(home, ignore_errors=True)
            try:
                os.rmdir(mnt)
            except OSError:
                pass
    return r


def stage_fuse(m):
    """cp -a through an already mounted FUSE client (s3fs, rclone): the copy alone. Where
    cp -a fails (rclone answers EIO to listxattr and to the ACL cp asks for), cp -r is
    timed instead, and stage_cp_fallback says so."""
    r = {}
    for argv in (["cp", "-a"], ["cp", "-r"]):
        dest = tempfile.mkdtemp(prefix="bench-stage-")
        try:
            drop_caches()
            with Window() as w:
                p = subprocess.run([*argv, m.path("small"), dest + "/"], stderr=subprocess.PIPE,
                                   text=True)
            if p.returncode == 0:
                check_staged(os.path.join(dest, "small"))
                r.update(stage_cp_s=w.seconds, stage_cp_req=w.requests)
                return r
            r["stage_cp_fallback"] = 1
            log(f"{m.client}: {' '.join(argv)} failed: {p.stderr.splitlines()[-1][:200]}")
        finally:
            shutil.rmtree(dest, ignore_errors=True)
    raise RuntimeError("cp -a and cp -r both failed")


# ---- a million keys --------------------------------------------------------------------


def million_direct():
    """ListObjectsV2 of the whole prefix on one connection: first page, then all."""
    settle()
    c = S3()
    n, token, first = 0, None, None
    with Window(MILLION_BUCKET) as w:
        while True:
            _, page = c.list_objects_v2(MILLION_BUCKET, MILLION_PREFIX, "/", None, token)
            n += len(page["keys"])
            if first is None:
                first = time.monotonic() - w.t0
            if not page["truncated"]:
                break
            token = page["next"]
    c.close()
    if n != MILLION_KEYS:
        raise RuntimeError(f"listed {n} keys of {MILLION_KEYS} under {MILLION_PREFIX}")
    return {"million_ls_s": w.seconds, "million_first_s": first, "million_req": w.requests}


def million_fuse(client):
    """On a fresh mount each: the first entry of the directory (opendir and the first
    readdir batch) and all its names; then `ls -l` of it, with the daemon's peak RSS."""
    path = lambda m: m.path(MILLION_PREFIX.rstrip("/"))  # noqa: E731
    r = {}
    settle()
    m = Mount(client, MILLION_BUCKET)
    try:
        with Window(MILLION_BUCKET) as w:
            it = os.scandir(path(m))
            next(it)
            first = time.monotonic() - w.t0
            n = 1 + sum(1 for _ in it)
        r["million_first_s"], r["million_names_s"] = first, w.seconds
        if n != MILLION_KEYS:
            raise RuntimeError(f"read {n} names of {MILLION_KEYS} in {path(m)}")
    finally:
        m.close()
    settle()
    m = Mount(client, MILLION_BUCKET)
    try:
        with Window(MILLION_BUCKET) as w:
            subprocess.run(["ls", "-l", path(m)], check=True, stdout=subprocess.DEVNULL)
        r["million_ls_s"] = w.seconds
        r["million_req"] = w.requests
        r["million_rss_mib"] = m.stats()[0] / (1 << 20)
    finally:
        m.close()
    return r


# ---- TLS ---------------------------------------------------------------------------


def tls_direct():
    """8 ranged curls of the big object over HTTPS, and their CPU per GiB."""
    settle()
    with Window() as w:
        parallel_curls(8, BIG_SIZE, endpoint=TLS_ENDPOINT, ca_bundle=TLS_CA_BUNDLE,
                       resolve=TLS_RESOLVE)
    # Its requests reach the HTTPS radosgw, whose log Window does not read.
    return {"seq_tls_mbs": BIG_SIZE / w.seconds / 1e6,
            "seq_tls_cpu_per_gib": w.child_cpu / (BIG_SIZE / GIB)}


# ---- FUSE clients ------------------------------------------------------------------


def fuse_test(client, test):
    if test == "million":
        return million_fuse(client)
    if test == "stage" and client == "irsafs":
        return stage_irsafs()
    r = {}
    settle()
    if test == "seq-tls":
        m = Mount(client, endpoint=TLS_ENDPOINT, ca_bundle=TLS_CA_BUNDLE)
    else:
        m = Mount(client)
    try:
        cpu0 = m.stats()[1]
        if test == "ttfb":
            with Window() as w:
                fd = os.open(m.path(BIG), os.O_RDONLY)
                os.read(fd, 1)
                os.close(fd)
            r["ttfb_ms"] = w.seconds * 1000
            r["ttfb_req"] = w.requests
        elif test in ("seq", "seq-tls"):
            with Window() as w:
                dd(m.path(BIG))
            cpu1 = m.stats()[1]
            name = "seq_cold" if test == "seq" else "seq_tls"
            r[name + "_mbs"] = BIG_SIZE / w.seconds / 1e6
            r[name + "_cpu_per_gib"] = (cpu1 - cpu0) / (BIG_SIZE / GIB)
            if test == "seq":
                r["seq_req"] = w.requests
                if client == "irsafs-cache":
                    drop_caches(1)  # the second pass comes from the cache dir, not the page cache
                with Window() as w:
                    dd(m.path(BIG))
                r["seq_warm_mbs"] = BIG_SIZE / w.seconds / 1e6
                r["seq_warm_req"] = w.requests
        elif test == "seq4":
            q = BIG_SIZE >> 20 >> 2
            with Window() as w:
                ts = [threading.Thread(target=dd, args=(m.path(BIG), i * q, q)) for i in range(4)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
            cpu1 = m.stats()[1]
            r["seq4_mbs"] = BIG_SIZE / w.seconds / 1e6
            r["seq4_cpu_per_gib"] = (cpu1 - cpu0) / (BIG_SIZE / GIB)
            r["seq4_machine_cpu_per_gib"] = w.machine_cpu / (BIG_SIZE / GIB)
            r["seq4_req"] = w.requests
            r["seq4_recv_ratio"] = w.requests["bytes"] / BIG_SIZE
        elif test in ("rand4k", "rand256k"):
            bs = "4k" if test == "rand4k" else "256k"
            with Window() as w:
                r[test + "_iops"], ios = fio(m.path(MID), bs)
            r[test + "_req"] = w.requests
            r[test + "_asked_mb"] = ios * (4096 if test == "rand4k" else 256 << 10) / 1e6
            if client == "irsafs-cache":
                # The same ranges again, past the page cache: from the cache dir.
                drop_caches(1)
                with Window() as w:
                    r[test + "_warm_iops"], _ = fio(m.path(MID), bs, number_ios=ios)
                r[test + "_warm_req"] = w.requests
        elif test in ("ls", "cat"):
            with Window() as w:
                subprocess.run(["ls", "-l", m.path("small")], check=True,
                               stdout=subprocess.DEVNULL)
            if test == "ls":
                r["ls_s"] = w.seconds
                r["ls_req"] = w.requests
            else:
                files = [m.path(f"small/f{i:05d}.dat") for i in range(1000)]
                with Window() as w:
                    subprocess.run(["cat", *files], check=True, stdout=subprocess.DEVNULL)
                r["cat_s"] = w.seconds
                r["cat_req"] = w.requests
        elif test == "find":
            with Window() as w:
                subprocess.run(["find", m.path("tree")], check=True, stdout=subprocess.DEVNULL)
            r["find_s"] = w.seconds
            r["find_req"] = w.requests
        elif test == "stage":
            r.update(stage_fuse(m))
        hwm, cpu1 = m.stats()
        r[test + "_rss_mib"] = hwm / (1 << 20)
        r[test + "_cpu_s"] = cpu1 - cpu0
    finally:
        m.close()
    return r


def run_test(client, test):
    """One run of one test. A time to first byte is a few milliseconds and moves
    by a third from one cold open to the next, so each run takes the median of
    TTFB_SAMPLES cold opens, each from a fresh start (settle, and for FUSE
    clients a fresh mount)."""
    once = (lambda: direct_test(test)) if client == "direct" else (lambda: fuse_test(client, test))
    if test != "ttfb":
        return once()
    runs = [once() for _ in range(max(1, TTFB_SAMPLES))]
    return {"ttfb_ms": statistics.median(r["ttfb_ms"] for r in runs),
            "ttfb_req": runs[0]["ttfb_req"]}

