#!/usr/bin/python3
"""irsafs against its peers on the local radosgw: the measuring half of bench/run.sh.

Every test runs on a fresh mount of each client, REPS times; the server is
warm (memstore), and every test of every client, direct included, starts the
same way (settle(): kernel caches dropped, then one HEAD of another key).
Each test is bracketed by two anonymous marker requests so
the S3 requests it caused can be counted from radosgw's access log (only
lines for the benchmark bucket count, so other traffic on the testbed does
not). For FUSE clients the daemon's peak RSS (VmHWM) and CPU seconds
(utime + stime) are read from /proc before unmounting.

Configuration comes from the environment (run.sh sets it):
  TESTBED_DIR, BUCKET, IRSAFS_BIN, OUT, REPS (5), FIO_RUNTIME (5), TTFB_SAMPLES (3),
  CLIENTS (direct irsafs s3fs rclone-off rclone-full rclone-smt),
  TESTS (ttfb seq seq4 rand4k rand256k ls cat find), IRSAFS_ARGS (extra flags)
"""
import http.client
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "testbed"))
import s3admin  # noqa: E402

TB = os.environ.get("TESTBED_DIR", "/tmp/irsafs-testbed")
BUCKET = os.environ.get("BUCKET", "bench-bucket")
OUT = os.environ.get("OUT", "/tmp/irsafs-bench")
REPS = int(os.environ.get("REPS", "5"))
FIO_RUNTIME = int(os.environ.get("FIO_RUNTIME", "5"))
TTFB_SAMPLES = int(os.environ.get("TTFB_SAMPLES", "3"))
CLIENTS = os.environ.get("CLIENTS", "direct irsafs s3fs rclone-off rclone-full rclone-smt").split()
TESTS = os.environ.get("TESTS", "ttfb seq seq4 rand4k rand256k ls cat find").split()
IRSAFS_BIN = os.environ.get("IRSAFS_BIN", "")
IRSAFS_ARGS = os.environ.get("IRSAFS_ARGS", "").split()
ENDPOINT = "http://127.0.0.1:7480"
REGION = "us-east-1"
BIG, BIG_SIZE = "big/1GiB.bin", 1 << 30
MID, MID_SIZE = "big/100MiB.bin", 100 << 20
WARMUP_KEY = "small/f09999.dat"  # no test reads it (cat reads f00000-f00999)
KEYS = s3admin.read_env_file(os.path.join(TB, "state", "owner.env"))
AK, SK = KEYS["AWS_ACCESS_KEY_ID"], KEYS["AWS_SECRET_ACCESS_KEY"]
RGW_LOG = os.path.join(TB, "log", "rgw.log")
TICK = os.sysconf("SC_CLK_TCK")

# ---- request counting ------------------------------------------------------------

_marker_n = 0


def marker():
    """Send an anonymous marker request; return its log offset once it is logged."""
    global _marker_n
    _marker_n += 1
    name = f"/bench-marker-{os.getpid()}-{_marker_n}"
    try:
        urllib.request.urlopen(ENDPOINT + name, timeout=5)
    except urllib.error.HTTPError:
        pass
    deadline = time.monotonic() + 20
    needle = f"GET {name} HTTP".encode()
    while time.monotonic() < deadline:
        size = os.path.getsize(RGW_LOG)
        with open(RGW_LOG, "rb") as f:
            start = max(0, size - (16 << 20))
            f.seek(start)
            data = f.read()
        i = data.find(needle)
        if i >= 0:
            return start + data.index(b"\n", i) + 1
        time.sleep(0.02)
    raise RuntimeError("marker not logged")


LINE = re.compile(r'"(\w+) (\S+) HTTP/[\d.]+" (\d+) (\d+) ')


def count_requests(begin, end):
    with open(RGW_LOG, "rb") as f:
        f.seek(begin)
        text = f.read(max(0, end - begin)).decode("utf-8", "replace")
    c = {"total": 0, "list": 0, "head": 0, "get": 0, "other": 0, "err": 0, "bytes": 0}
    prefix = "/" + BUCKET
    for line in text.splitlines():
        if " beast: " not in line or "bench-marker" in line:
            continue
        m = LINE.search(line)
        if not m:
            continue
        method, path, status, nbytes = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
        if not (path == prefix or path.startswith(prefix + "/") or path.startswith(prefix + "?")):
            continue
        c["total"] += 1
        c["bytes"] += nbytes
        if status >= 400:
            c["err"] += 1
        bare = path.split("?")[0].rstrip("/")
        if method == "HEAD":
            c["head"] += 1
        elif method == "GET" and bare == prefix:
            c["list"] += 1
        elif method == "GET":
            c["get"] += 1
        else:
            c["other"] += 1
    return c


class Window:
    """Time and S3 requests of one test."""

    def __enter__(self):
        self.begin = marker()
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.t0
        self.requests = count_requests(self.begin, marker())


# ---- clients -------------------------------------------------------------------


def proc_stats(pid):
    """(VmHWM bytes, CPU seconds) of a process and its threads."""
    hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return hwm, (int(fields[11]) + int(fields[12])) / TICK


class Mount:
    def __init__(self, client):
        self.client = client
        self.dir = tempfile.mkdtemp(prefix=f"bench-{client}-")
        self.cache = tempfile.mkdtemp(prefix=f"bench-cache-{client}-")
        self.log = open(os.path.join(OUT, "logs", f"{client}.log"), "ab")
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": self.cache}
        if client == "irsafs":
            env.update(AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK, AWS_REGION=REGION,
                       AWS_ENDPOINT_URL=ENDPOINT)
            cmd = [IRSAFS_BIN, "-f", "--metadata-ttl", "60", *IRSAFS_ARGS, BUCKET, self.dir]
        elif client == "s3fs":
            pw = os.path.join(self.cache, "passwd")
            with open(pw, "w") as f:
                f.write(f"{AK}:{SK}\n")
            os.chmod(pw, 0o600)
            cmd = ["s3fs", BUCKET, self.dir, "-f", "-o",
                   f"ro,url={ENDPOINT},use_path_request_style,endpoint={REGION},passwd_file={pw},"
                   "sigv4,dbglevel=warn,max_stat_cache_size=100000,enable_noobj_cache"]
        else:
            env.update(RCLONE_CONFIG_BENCH_TYPE="s3", RCLONE_CONFIG_BENCH_PROVIDER="Ceph",
                       RCLONE_CONFIG_BENCH_ENV_AUTH="false", RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=AK,
                       RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=SK,
                       RCLONE_CONFIG_BENCH_ENDPOINT=ENDPOINT, RCLONE_CONFIG_BENCH_REGION=REGION,
                       RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true")
            mode = "full" if client == "rclone-full" else "off"
            cmd = ["rclone", "mount", f"bench:{BUCKET}", self.dir, "--read-only",
                   "--vfs-cache-mode", mode, "--cache-dir", self.cache]
            if mode == "full":
                cmd += ["--vfs-cache-max-size", "8G"]
            if client == "rclone-smt":
                cmd += ["--use-server-modtime"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, env=env)
        deadline = time.monotonic() + 30
        while not os.path.ismount(self.dir):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"{client} did not mount (see logs/{client}.log)")
            time.sleep(0.02)

    def path(self, key):
        return os.path.join(self.dir, key)

    def stats(self):
        return proc_stats(self.proc.pid)

    def close(self):
        if os.path.ismount(self.dir):
            subprocess.run(["fusermount3", "-u", self.dir], check=False,
                           stderr=subprocess.DEVNULL)
            if os.path.ismount(self.dir):
                subprocess.run(["fusermount3", "-u", "-z", self.dir], check=False)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.cache, ignore_errors=True)
        try:
            os.rmdir(self.dir)
        except OSError:
            pass


def settle():
    """The same start for every test of every client, direct included.

    Dropping the kernel's caches empties the page cache of earlier reads, but
    it also evicts radosgw's and ceph-osd's own code pages: the next request
    then waits on page faults (one ranged GET took 3.8-4.7 ms instead of
    3.0-3.4). One signed HEAD of a key no test reads faults them back in, so
    no client is timed against a server that is still paging itself in.
    """
    subprocess.run(["sync"], check=False)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")
    c = direct_client()
    try:
        c.head_object(BUCKET, WARMUP_KEY)
    finally:
        c.close()


def dd(path, skip_mib=0, count_mib=None):
    cmd = ["dd", f"if={path}", "of=/dev/null", "bs=1M", f"skip={skip_mib}"]
    if count_mib:
        cmd.append(f"count={count_mib}")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def fio(path, bs):
    r = subprocess.run(["fio", "--name=r", f"--filename={path}", "--rw=randread", f"--bs={bs}",
                        "--ioengine=psync", "--invalidate=1", "--readonly", "--time_based",
                        f"--runtime={FIO_RUNTIME}", f"--size={MID_SIZE}",
                        "--output-format=json"], check=True, capture_output=True, text=True)
    return json.loads(r.stdout[r.stdout.index("{"):])["jobs"][0]["read"]["iops"]


# ---- direct (the ceiling) --------------------------------------------------------


def curl(key, rng=None):
    # radosgw wants x-amz-content-sha256, which curl 7.88 does not add by itself.
    cmd = ["curl", "-sf", "-o", "/dev/null", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
           "--aws-sigv4", f"aws:amz:{REGION}:s3",
           "--user", f"{AK}:{SK}", "-w", "%{time_total}", f"{ENDPOINT}/{BUCKET}/{key}"]
    if rng:
        cmd[1:1] = ["-r", rng]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def direct_client():
    return s3admin.Client(AK, SK, endpoint=ENDPOINT, region=REGION)


def direct_test(test):
    r = {}
    settle()
    if test == "ttfb":
        with Window() as w:
            t = float(curl(BIG, "0-0").communicate()[0])
        r["ttfb_ms"] = t * 1000
    elif test == "seq":
        with Window() as w:
            curl(BIG).communicate()
        r["seq_cold_mbs"] = BIG_SIZE / w.seconds / 1e6
    elif test == "seq4":
        n, part = 8, BIG_SIZE // 8
        with Window() as w:
            ps = [curl(BIG, f"{i * part}-{(i + 1) * part - 1}") for i in range(n)]
            for p in ps:
                p.communicate()
        r["seq4_mbs"] = BIG_SIZE / w.seconds / 1e6
    elif test in ("rand4k", "rand256k"):
        bs = 4096 if test == "rand4k" else 256 << 10
        c, rng, n = direct_client(), random.Random(5), 0
        with Window() as w:
            end = time.monotonic() + FIO_RUNTIME
            while time.monotonic() < end:
                off = rng.randrange(0, MID_SIZE // bs) * bs
                c.get_object(BUCKET, MID, f"bytes={off}-{off + bs - 1}")
                n += 1
        r[test + "_iops"] = n / w.seconds
    elif test == "ls":
        c = direct_client()
        with Window() as w:
            c.list_all(BUCKET, "small/", "/")
        r["ls_s"] = w.seconds
    elif test == "cat":
        c = direct_client()
        with Window() as w:
            for i in range(1000):
                c.get_object(BUCKET, f"small/f{i:05d}.dat")
        r["cat_s"] = w.seconds
    elif test == "find":
        c = direct_client()
        with Window() as w:
            c.list_all(BUCKET, "tree/")
        r["find_s"] = w.seconds
    r[test + "_req"] = w.requests
    return r


# ---- FUSE clients ----------------------------------------------------------------


def fuse_test(client, test):
    r = {}
    settle()
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
        elif test == "seq":
            with Window() as w:
                dd(m.path(BIG))
            hwm, cpu1 = m.stats()
            r["seq_cold_mbs"] = BIG_SIZE / w.seconds / 1e6
            r["seq_cold_cpu_per_gib"] = (cpu1 - cpu0) / (BIG_SIZE / (1 << 30))
            r["seq_req"] = w.requests
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
            hwm, cpu1 = m.stats()
            r["seq4_mbs"] = BIG_SIZE / w.seconds / 1e6
            r["seq4_cpu_per_gib"] = (cpu1 - cpu0) / (BIG_SIZE / (1 << 30))
            r["seq4_req"] = w.requests
        elif test in ("rand4k", "rand256k"):
            with Window() as w:
                r[test + "_iops"] = fio(m.path(MID), "4k" if test == "rand4k" else "256k")
            r[test + "_req"] = w.requests
        elif test in ("ls", "cat"):
            with Window() as w:
                subprocess.run(["ls", "-l", m.path("small")], check=True,
                               stdout=subprocess.DEVNULL)
            r["ls_s"] = w.seconds
            r["ls_req"] = w.requests
            if test == "cat":
                r.pop("ls_s")
                r.pop("ls_req")
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
        hwm, cpu1 = m.stats()
        r[test + "_rss_mib"] = hwm / (1 << 20)
        r[test + "_cpu_s"] = cpu1 - cpu0
    finally:
        m.close()
    return r


# ---- summary ---------------------------------------------------------------------

COLUMNS = [
    ("seq_cold_mbs", "seq cold 1 GiB MB/s", 1), ("seq_warm_mbs", "seq warm MB/s", 1),
    ("seq4_mbs", "4 readers MB/s", 1), ("rand4k_iops", "rand 4k IOPS", 1),
    ("rand256k_iops", "rand 256k IOPS", 1), ("ttfb_ms", "TTFB ms", -1),
    ("ls_s", "`ls -l` 10k s", -1), ("cat_s", "cat 1000 s", -1), ("find_s", "find s", -1),
    ("seq_cold_cpu_per_gib", "CPU s/GiB (seq)", -1), ("seq4_rss_mib", "peak RSS MiB (4 readers)", -1),
]
REQ_COLUMNS = ["ttfb_req", "seq_req", "seq_warm_req", "rand4k_req", "rand256k_req", "ls_req",
               "cat_req", "find_req"]


def fmt(v):
    if v is None:
        return "–"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def summarize(raw):
    summary = {}
    for client, reps in raw.items():
        s = {}
        keys = {k for rep in reps for k in rep}
        for k in keys:
            vals = [rep[k] for rep in reps if k in rep]
            if vals and isinstance(vals[0], dict):
                s[k] = {f: statistics.median(v[f] for v in vals) for f in vals[0]}
                s[k]["min_total"] = min(v["total"] for v in vals)
                s[k]["max_total"] = max(v["total"] for v in vals)
            elif vals:
                s[k] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
                        "n": len(vals)}
        summary[client] = s
    return summary


def markdown(summary, meta):
    lines = [f"Measured {meta['date']} on {meta['machine']}; radosgw {meta['rgw']} (memstore, loopback). "
             f"{REPS} runs per figure: median [min–max]. Fresh mount per test, kernel caches dropped.", ""]
    hdr = ["client"] + [c[1] for c in COLUMNS]
    lines += ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for client, s in summary.items():
        row = [client]
        for key, _, _ in COLUMNS:
            v = s.get(key)
            if not v:
                key2 = {"seq4_mbs": "seq4_mbs"}.get(key)
                v = s.get(key2) if key2 else None
            row.append("–" if not v else f"{fmt(v['median'])} [{fmt(v['min'])}–{fmt(v['max'])}]")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Direct: seq cold is one curl GET, 4 readers is 8 parallel ranged curl GETs, random "
              "reads are ranged GETs on one keep-alive connection, ls/cat/find are ListObjectsV2 "
              "and GETs on one connection.", ""]
    # Ratios
    if "irsafs" in summary:
        me = summary["irsafs"]
        lines += ["irsafs relative to each other row (>1: irsafs better; times and CPU inverted):", "",
                  "| vs | " + " | ".join(c[1] for c in COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 1)]
        for client, s in summary.items():
            if client == "irsafs":
                continue
            row = [client]
            for key, _, sense in COLUMNS:
                a, b = me.get(key), s.get(key)
                if key == "seq_cold_mbs" and client == "direct" and "seq4_mbs" in s:
                    b = s["seq4_mbs"]  # the parallel ceiling
                if not a or not b or not a["median"] or not b["median"]:
                    row.append("–")
                else:
                    ratio = a["median"] / b["median"] if sense > 0 else b["median"] / a["median"]
                    row.append(f"{ratio:.2f}×")
            lines.append("| " + " | ".join(row) + " |")
        lines += ["", "(vs direct, the seq cold ratio is to the 8-GET parallel ceiling.)", ""]
    lines += ["S3 requests per test (median total: lists/HEADs/GETs, errors; MB sent by radosgw):", "",
              "| client | " + " | ".join(REQ_COLUMNS) + " |", "|" + "---|" * (len(REQ_COLUMNS) + 1)]
    for client, s in summary.items():
        row = [client]
        for k in REQ_COLUMNS:
            v = s.get(k)
            if not v:
                row.append("–")
                continue
            rng = "" if v["min_total"] == v["max_total"] else f" [{v['min_total']:.0f}–{v['max_total']:.0f}]"
            row.append(f"{v['total']:.0f}{rng} ({v['list']:.0f}/{v['head']:.0f}/{v['get']:.0f}"
                       f"{', %d err' % v['err'] if v['err'] else ''}), {v['bytes'] / 1e6:.0f} MB")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def chart(summary, path):
    dat = os.path.join(OUT, "chart.dat")
    with open(dat, "w") as f:
        f.write("# client seq_cold seq_warm seq4\n")
        for client, s in summary.items():
            vals = [s.get(k, {}).get("median", 0) for k in ("seq_cold_mbs", "seq_warm_mbs", "seq4_mbs")]
            f.write(client + " " + " ".join(f"{v:.1f}" for v in vals) + "\n")
    script = f"""
set terminal pngcairo size 1100,600 font ",10"
set output '{path}'
set title 'Sequential read of a 1 GiB object on radosgw (MB/s, median of {REPS})'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top right
set ylabel 'MB/s'
set yrange [0:*]
set xtics nomirror
plot '{dat}' using 2:xtic(1) title 'cold, 1 reader', '' using 3 title 'warm re-read', '' using 4 title '4 readers (direct: 8 ranged GETs)'
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        print("gnuplot failed: " + r.stderr, file=sys.stderr)


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


def main():
    os.makedirs(os.path.join(OUT, "logs"), exist_ok=True)
    raw = {c: [] for c in CLIENTS}
    for rep in range(REPS):
        for client in CLIENTS:
            res = {}
            for test in TESTS:
                t0 = time.monotonic()
                try:
                    res.update(run_test(client, test))
                except Exception as e:  # one broken run must not lose the others
                    print(f"bench: {client} {test} rep {rep + 1}: {str(e)[:300]}", file=sys.stderr)
                    res[test + "_error"] = str(e)[:300]
                print(f"bench: rep {rep + 1}/{REPS} {client:12s} {test:9s} "
                      f"{time.monotonic() - t0:6.1f} s", file=sys.stderr, flush=True)
            raw[client].append(res)
        with open(os.path.join(OUT, "raw.json"), "w") as f:
            json.dump(raw, f, indent=1)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": os.environ.get("BENCH_MACHINE", ""),
        "rgw": os.environ.get("BENCH_RGW", ""),
        "reps": REPS, "fio_runtime": FIO_RUNTIME, "irsafs_args": IRSAFS_ARGS,
        "versions": os.environ.get("BENCH_VERSIONS", ""),
    }
    summary = summarize(raw)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"meta": meta, "summary": summary, "raw": raw}, f, indent=1)
    md = markdown(summary, meta)
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(md)
    chart(summary, os.path.join(OUT, "chart.png"))
    print(md)


if __name__ == "__main__":
    main()
