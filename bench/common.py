"""What every benchmark test shares: configuration, request counting, mounts, tools.

Configuration comes from the environment (bench/run.sh sets most of it); see
bench.py's docstring for the list.
"""
import http.client
import json
import os
import re
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "testbed"))
import s3admin  # noqa: E402


def env_int(name, default):
    return int(os.environ.get(name, str(default)))


TB = os.environ.get("TESTBED_DIR", "/tmp/irsafs-testbed")
BUCKET = os.environ.get("BUCKET", "bench-bucket")
OUT = os.environ.get("OUT", "/tmp/irsafs-bench")
REPS = env_int("REPS", 5)
FIO_RUNTIME = env_int("FIO_RUNTIME", 5)
TTFB_SAMPLES = env_int("TTFB_SAMPLES", 3)
IRSAFS_BIN = os.environ.get("IRSAFS_BIN", "")
IRSAFS_ARGS = os.environ.get("IRSAFS_ARGS", "").split()
# The endpoint every client talks to (http://, or https:// with CA_BUNDLE).
ENDPOINT = os.environ.get("ENDPOINT", "http://127.0.0.1:7480").rstrip("/")
CA_BUNDLE = os.environ.get("CA_BUNDLE", "")
# seq-tls: an HTTPS endpoint onto the same radosgw cluster (tests/testbed's AWS mode), its
# CA bundle, and optionally curl --resolve HOST:PORT:ADDR for names /etc/hosts lacks.
TLS_ENDPOINT = os.environ.get("TLS_ENDPOINT", "").rstrip("/")
TLS_CA_BUNDLE = os.environ.get("TLS_CA_BUNDLE", CA_BUNDLE)
TLS_RESOLVE = os.environ.get("TLS_RESOLVE", "")
REGION = os.environ.get("REGION", "us-east-1")
BIG_MIB = env_int("BIG_MIB", 1024)
BIG, BIG_SIZE = f"big/{BIG_MIB}MiB.bin" if BIG_MIB != 1024 else "big/1GiB.bin", BIG_MIB << 20
MID, MID_SIZE = "big/100MiB.bin", 100 << 20
SMALL_FILES = env_int("SMALL_FILES", 10000)
MILLION_KEYS = env_int("MILLION_KEYS", 1000000)
MILLION_BUCKET = os.environ.get("MILLION_BUCKET", "bench-million" if MILLION_KEYS == 1000000
                                else f"bench-million-{MILLION_KEYS}")  # as dataset.py names it
MILLION_PREFIX = "m/"
WARMUP_KEY = "small/f%05d.dat" % (SMALL_FILES - 1)  # no test reads it (cat reads the first 1000)
KEYS = s3admin.read_env_file(os.path.join(TB, "state", "owner.env"))
AK, SK = KEYS["AWS_ACCESS_KEY_ID"], KEYS["AWS_SECRET_ACCESS_KEY"]
RGW_LOG = os.environ.get("RGW_LOG", os.path.join(TB, "log", "rgw.log"))
AWS_BIN = "/usr/bin/aws"  # Debian's awscli, not a pyenv shim earlier on PATH
TICK = os.sysconf("SC_CLK_TCK")
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


# ---- S3 over http or https -----------------------------------------------------


class S3(s3admin.Client):
    """The testbed's S3 client, also over https:// (with a CA bundle)."""

    def __init__(self, endpoint=ENDPOINT, ca_bundle=CA_BUNDLE, **kw):
        u = urllib.parse.urlsplit(endpoint)
        self.https = u.scheme == "https"
        self.ssl_ctx = ssl.create_default_context(cafile=ca_bundle or None) if self.https else None
        super().__init__(AK, SK, endpoint=("http://" + u.netloc) if self.https else endpoint,
                         region=REGION, **kw)
        self.endpoint = endpoint

    def _send(self, method, path, query_string, headers, body):
        if self.https and self._conn is None:
            self._conn = http.client.HTTPSConnection(self.host, timeout=self.timeout,
                                                     context=self.ssl_ctx)
        return super()._send(method, path, query_string, headers, body)


# ---- request counting ------------------------------------------------------------

_marker_n = 0


def marker():
    """Send an anonymous marker request; return its log offset once it is logged."""
    global _marker_n
    _marker_n += 1
    name = f"/bench-marker-{os.getpid()}-{_marker_n}"
    try:
        ctx = ssl.create_default_context(cafile=CA_BUNDLE or None) if ENDPOINT.startswith("https") else None
        urllib.request.urlopen(ENDPOINT + name, timeout=5, context=ctx)
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


def count_requests(begin, end, bucket):
    """S3 requests for bucket in rgw.log between two offsets, by kind, and the bytes sent."""
    with open(RGW_LOG, "rb") as f:
        f.seek(begin)
        text = f.read(max(0, end - begin)).decode("utf-8", "replace")
    c = {"total": 0, "list": 0, "head": 0, "get": 0, "other": 0, "err": 0, "bytes": 0}
    prefix = "/" + bucket
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


def machine_busy():
    """CPU seconds all cores spent busy since boot (/proc/stat: user, nice, system, irq, softirq).
    On this machine the server shares the cores with the clients, so this is what
    a test costs the whole machine: server, client and kernel."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:7]) - v[3] - v[4]) / TICK


class Window:
    """Wall time, S3 requests, the CPU of waited-for children (curl, aws, cp) and of the
    whole machine during one test."""

    def __init__(self, bucket=BUCKET):
        self.bucket = bucket

    def __enter__(self):
        self.begin = marker()
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu0 = ru.ru_utime + ru.ru_stime
        self.busy0 = machine_busy()
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.t0
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.child_cpu = ru.ru_utime + ru.ru_stime - self.cpu0
        self.machine_cpu = machine_busy() - self.busy0
        self.requests = count_requests(self.begin, marker(), self.bucket)


# ---- processes and mounts --------------------------------------------------------


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


def irsafs_env(home, endpoint=ENDPOINT, ca_bundle=CA_BUNDLE):
    env = {"PATH": PATH, "HOME": home, "AWS_ACCESS_KEY_ID": AK, "AWS_SECRET_ACCESS_KEY": SK,
           "AWS_REGION": REGION, "AWS_ENDPOINT_URL": endpoint}
    if ca_bundle:
        env["AWS_CA_BUNDLE"] = ca_bundle
    return env


def irsafs_args():
    """irsafs's flags, for mounts and `irsafs exec` alike (Mount adds --cache-dir for irsafs-cache)."""
    return ["--metadata-ttl", "60", *IRSAFS_ARGS]


class Mount:
    """A fresh mount of one FUSE client, in the foreground, logged to OUT/logs/CLIENT.log."""

    def __init__(self, client, bucket=BUCKET, extra=(), endpoint=ENDPOINT, ca_bundle=CA_BUNDLE):
        self.client = client
        self.dir = tempfile.mkdtemp(prefix=f"bench-{client}-")
        self.cache = tempfile.mkdtemp(prefix=f"bench-cache-{client}-")
        self.log = open(os.path.join(OUT, "logs", f"{client}.log"), "ab")
        env = {"PATH": PATH, "HOME": self.cache}
        if client.startswith("irsafs"):
            env = irsafs_env(self.cache, endpoint, ca_bundle)
            cmd = [IRSAFS_BIN, "-f", *irsafs_args(), *extra]
            if client == "irsafs-cache":
                cmd += ["--cache-dir", os.path.join(self.cache, "blocks")]
            cmd += [bucket, self.dir]
        elif client == "s3fs":
            pw = os.path.join(self.cache, "passwd")
            with open(pw, "w") as f:
                f.write(f"{AK}:{SK}\n")
            os.chmod(pw, 0o600)
            cmd = ["s3fs", bucket, self.dir, "-f", "-o",
                   f"ro,url={endpoint},use_path_request_style,endpoint={REGION},passwd_file={pw},"
                   "sigv4,dbglevel=warn,max_stat_cache_size=100000,enable_noobj_cache"]
            if ca_bundle:
                env["CURL_CA_BUNDLE"] = ca_bundle
        else:
            env.update(RCLONE_CONFIG_BENCH_TYPE="s3", RCLONE_CONFIG_BENCH_PROVIDER="Ceph",
                       RCLONE_CONFIG_BENCH_ENV_AUTH="false", RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=AK,
                       RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=SK,
                       RCLONE_CONFIG_BENCH_ENDPOINT=endpoint, RCLONE_CONFIG_BENCH_REGION=REGION,
                       RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true")
            mode = "full" if client == "rclone-full" else "off"
            cmd = ["rclone", "mount", f"bench:{bucket}", self.dir, "--read-only",
                   "--vfs-cache-mode", mode, "--cache-dir", self.cache]
            if mode == "full":
                cmd += ["--vfs-cache-max-size", "8G"]
            if client == "rclone-smt":
                cmd += ["--use-server-modtime"]
            if ca_bundle:
                cmd += ["--ca-cert", ca_bundle]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, env=env)
        deadline = time.monotonic() + 60
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


def drop_caches(what=3):
    """3: page cache, dentries and inodes; 1: the page cache only (a FUSE mount's
    dentries stay, so reading a file again costs no lookup)."""
    subprocess.run(["sync"], check=False)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write(f"{what}\n")


def settle():
    """The same start for every test of every client, direct included.

    Dropping the kernel's caches empties the page cache of earlier reads, but
    it also evicts radosgw's and ceph-osd's own code pages: the next request
    then waits on page faults (one ranged GET took 3.8-4.7 ms instead of
    3.0-3.4). One signed HEAD of a key no test reads faults them back in, so
    no client is timed against a server that is still paging itself in.
    """
    drop_caches()
    c = S3()
    try:
        c.head_object(BUCKET, WARMUP_KEY)
    finally:
        c.close()


# ---- tools -----------------------------------------------------------------------


def dd(path, skip_mib=0, count_mib=None):
    cmd = ["dd", f"if={path}", "of=/dev/null", "bs=1M", f"skip={skip_mib}"]
    if count_mib:
        cmd.append(f"count={count_mib}")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def fio(path, bs, number_ios=0):
    """Random reads of path (its first MID_SIZE bytes) with fio: (IOPS, ios done).

    The offsets come from fio's fixed seed (randrepeat), so a second run with
    number_ios set reads the same ranges as the first."""
    cmd = ["fio", "--name=r", f"--filename={path}", "--rw=randread", f"--bs={bs}",
           "--ioengine=psync", "--invalidate=1", "--readonly", f"--size={MID_SIZE}",
           "--randrepeat=1", "--output-format=json"]
    if number_ios:
        cmd += [f"--number_ios={number_ios}", f"--runtime={max(60, FIO_RUNTIME * 10)}"]
    else:
        cmd += ["--time_based", f"--runtime={FIO_RUNTIME}"]
    r = subprocess.run(cmd, check=True, capture_output=True, text=True)
    job = json.loads(r.stdout[r.stdout.index("{"):])["jobs"][0]["read"]
    return job["iops"], job["total_ios"]


def curl(key, rng=None, endpoint=ENDPOINT, ca_bundle=CA_BUNDLE, resolve="", bucket=BUCKET):
    # radosgw wants x-amz-content-sha256, which curl 7.88 does not add by itself.
    cmd = ["curl", "-sf", "-o", "/dev/null", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
           "--aws-sigv4", f"aws:amz:{REGION}:s3",
           "--user", f"{AK}:{SK}", "-w", "%{time_total}", f"{endpoint}/{bucket}/{key}"]
    if ca_bundle:
        cmd[1:1] = ["--cacert", ca_bundle]
    if resolve:
        cmd[1:1] = ["--resolve", resolve]
    if rng:
        cmd[1:1] = ["-r", rng]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def parallel_curls(n, size, key=BIG, **kw):
    """n ranged curl GETs of key at once, a 1/n each; waits for all; raises if one failed."""
    part = size // n
    ps = [curl(key, f"{i * part}-{(i + 1) * part - 1 if i < n - 1 else size - 1}", **kw)
          for i in range(n)]
    for p in ps:
        p.communicate()
    if any(p.returncode for p in ps):
        raise RuntimeError(f"a ranged curl of {key} failed")


class AwsCli:
    """Debian's aws, pointed at the testbed only: its config and credentials in temp
    files, no instance metadata, no other AWS_* variable, the owner's keys."""

    def __init__(self):
        self.home = tempfile.mkdtemp(prefix="bench-aws-")
        cfg, cred = os.path.join(self.home, "config"), os.path.join(self.home, "credentials")
        with open(cfg, "w") as f:
            f.write(f"[default]\nregion = {REGION}\noutput = json\n")
        with open(cred, "w") as f:
            f.write(f"[default]\naws_access_key_id = {AK}\naws_secret_access_key = {SK}\n")
        os.chmod(cred, 0o600)
        self.env = {"PATH": PATH, "HOME": self.home, "AWS_CONFIG_FILE": cfg,
                    "AWS_SHARED_CREDENTIALS_FILE": cred, "AWS_EC2_METADATA_DISABLED": "true",
                    "AWS_PAGER": ""}
        if CA_BUNDLE:
            self.env["AWS_CA_BUNDLE"] = CA_BUNDLE

    def run(self, *args):
        return subprocess.run([AWS_BIN, "--endpoint-url", ENDPOINT, "--no-cli-pager", *args],
                              env=self.env, check=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)

    def close(self):
        shutil.rmtree(self.home, ignore_errors=True)
