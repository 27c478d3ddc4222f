"""--metrics-addr: Prometheus text at /metrics, read the way a scraper reads it.

The mount does known things (a listing, a read, a denied read, a missing
name) and the counters must move by exactly what was done; the exposition
is parsed strictly (every sample `name{labels} value` of an irsafs_ family
whose HELP and TYPE came first; histogram buckets cumulative and ending with
+Inf equal to _count). SIGUSR1 keeps writing its lines. Bad addresses give
one line and the exit status the README's table says.
"""
import errno
import json
import math
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import irsafs_bin, pod_env

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(port, path="/metrics", method="GET"):
    """(status, content type, body) of one request to the endpoint."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def parse_labels(text):
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        assert m, f"bad labels {text!r}"
        assert m.group(1) not in labels, f"label repeated in {text!r}"
        labels[m.group(1)] = m.group(2)
        pos = m.end()
    return labels


def parse(text):
    """Strict: {(name, frozenset(labels)): value}, and checks the format's rules."""
    assert text.endswith("\n"), "the exposition ends with a newline"
    helps, types, samples = set(), {}, {}
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP "):
            name, _, doc = line[7:].partition(" ")
            assert name.startswith("irsafs_") and doc and name not in helps, line
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            assert typ in ("counter", "gauge", "histogram") and name not in types, line
            assert name in helps, f"TYPE before HELP: {line}"
            types[name] = typ
            continue
        assert not line.startswith("#") and line, f"unexpected line {line!r}"
        m = SAMPLE.match(line)
        assert m, f"not a sample: {line!r}"
        name, labels, value = m.group(1), parse_labels(m.group(2) or ""), float(m.group(3))
        assert name.startswith("irsafs_"), line
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
                family = name[:-len(suffix)]
        assert family in types, f"sample before its TYPE: {line}"
        if types[family] == "counter":
            assert name.endswith("_total") and value >= 0, line
        key = (name, frozenset(labels.items()))
        assert key not in samples, f"series repeated: {line}"
        samples[key] = value
    # Histograms: per series, buckets cumulative, the last +Inf, equal to _count.
    for family, typ in types.items():
        if typ != "histogram":
            continue
        series = {}
        for (name, labels), v in samples.items():
            if name == family + "_bucket":
                rest = frozenset(kv for kv in labels if kv[0] != "le")
                le = dict(labels)["le"]
                series.setdefault(rest, []).append((math.inf if le == "+Inf" else float(le), v))
        for rest, buckets in series.items():
            buckets.sort()
            assert buckets[-1][0] == math.inf, f"{family}{dict(rest)} has no +Inf bucket"
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), f"{family}{dict(rest)} buckets not cumulative"
            assert samples[(family + "_count", rest)] == counts[-1], family
            assert (family + "_sum", rest) in samples, family
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def role_env(testbed, tmp_path, role):
    with open(os.path.join(testbed.dir, "state", "roles.json")) as f:
        roles = json.load(f)["roles"]
    tok = str(tmp_path / f"{role}.token")
    testbed.mint(tok, "-s", roles[role]["sub"])
    return pod_env(testbed, AWS_ROLE_ARN=roles[role]["arn"], AWS_WEB_IDENTITY_TOKEN_FILE=tok)


def errno_of(fn, *args):
    with pytest.raises(OSError) as ei:
        fn(*args)
    return ei.value.errno


def wait_for(cond, what, timeout=20):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def test_metrics_count_what_the_mount_did(testbed, mount, tmp_path):
    # s3-team-a may list and read team-a/ only: one mount shows a read, a denial and a miss.
    port = free_port()
    m = mount("demo-bucket", "--metrics-addr", f"127.0.0.1:{port}", "--metadata-ttl", "60",
              env=role_env(testbed, tmp_path, "s3-team-a"), expect_log=[
                  r"may not list s3://demo-bucket/ ",
                  r"s3:ListBucket on arn:aws:s3:::demo-bucket \((no prefix|prefix team-b/)",
                  r"s3:GetObject on arn:aws:s3:::demo-bucket/team-b"])
    status, ctype, text = fetch(port)
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4"), (status, ctype)
    before = parse(text)
    # What the mount did to get here: STS, then the mount's listing (denied: 403).
    assert value(before, "irsafs_requests_total", op="STS", status="200") == 1
    assert value(before, "irsafs_requests_total", op="LIST", status="403") >= 1
    assert value(before, "irsafs_credential_refreshes_total") == 1
    assert value(before, "irsafs_credential_refresh_failures_total") == 0
    assert value(before, "irsafs_credentials_expiry_timestamp_seconds") > time.time()
    assert value(before, "irsafs_memory_budget_limit_bytes") == 256 << 20
    assert value(before, "irsafs_inodes_bytes") > 0
    assert ("irsafs_inodes_let_go_total", frozenset()) in before
    assert value(before, "irsafs_inodes_let_go_total") == 0
    for name in ("irsafs_inodes_forgotten_total", "irsafs_forget_messages_total"):
        assert (name, frozenset()) in before and value(before, name) >= 0, name
    assert [k for k in before if k[0] == "irsafs_build_info"]

    size = testbed.objects()["team-a/x.txt"]["size"]

    def step(action):
        """Do action; returns delta(name, **labels) of the counters across it (with no
        labels given for a labelled family: the sum of its series)."""
        first = parse(fetch(port)[2])
        action()
        then = parse(fetch(port)[2])

        def d(name, **labels):
            if labels or (name, frozenset()) in then:
                return value(then, name, **labels) - value(first, name, **labels)
            return sum(v for (n, _), v in then.items() if n == name) - \
                sum(v for (n, _), v in first.items() if n == name)
        return d

    def ls():
        assert sorted(os.listdir(m.path("team-a"))) == ["sub", "x.txt"]

    def cat():
        with open(m.path("team-a", "x.txt"), "rb") as f:
            assert len(f.read()) == size

    d = step(ls)
    # team-a is looked up (its directory probe: LIST 200; the GET of a key "team-a": 403,
    # not a denial of anything, as team-a/ is a directory), then listed.
    assert d("irsafs_requests_total", op="LIST", status="200") == 2
    assert d("irsafs_listings_total") == 1
    assert d("irsafs_cache_misses_total", cache="metadata") == 1
    assert d("irsafs_fs_errors_total", op="lookup", errno="EACCES") == 0

    d = step(cat)
    assert d("irsafs_read_bytes_total") == size
    assert d("irsafs_reads_total") >= 1
    assert d("irsafs_opens_total") == 1
    # ls -l gave the kernel the entry (readdirplus): no lookup; the read is one GET.
    assert d("irsafs_lookups_total") == 0
    assert d("irsafs_requests_total") == 1
    assert d("irsafs_requests_total", op="GET", status="206") + \
        d("irsafs_requests_total", op="GET", status="200") == 1
    assert d("irsafs_read_requests_total", kind="readahead") + \
        d("irsafs_read_requests_total", kind="direct") == 1
    assert d("irsafs_operation_duration_seconds_count", op="GET") == 1

    d = step(lambda: errno_of(open, m.path("team-b", "x.txt"), "rb") == errno.EACCES or
             pytest.fail("team-b/x.txt was not EACCES"))
    # The lookup of team-b: its probe (LIST 403) and its GET (403), one EACCES.
    assert d("irsafs_requests_total", op="GET", status="403") == 1
    assert d("irsafs_requests_total", op="LIST", status="403") == 1
    assert d("irsafs_fs_errors_total", op="lookup", errno="EACCES") == 1
    assert d("irsafs_fs_errors_total") == 1
    assert d("irsafs_requests_total") == 2
    assert d("irsafs_operation_duration_seconds_count", op="GET") == 1
    assert d("irsafs_operation_duration_seconds_count", op="LIST") == 1

    d = step(lambda: errno_of(os.stat, m.path("team-a", "no-such.txt")) == errno.ENOENT or
             pytest.fail("team-a/no-such.txt was not ENOENT"))
    # Answered by the cached listing of team-a/: no request, one ENOENT.
    assert d("irsafs_fs_errors_total", op="lookup", errno="ENOENT") == 1
    assert d("irsafs_cache_hits_total", cache="metadata") == 1
    assert d("irsafs_requests_total") == 0
    assert d("irsafs_fs_errors_total") == 1

    after = parse(fetch(port)[2])
    assert value(after, "irsafs_retries_total", op="GET") == 0
    assert value(after, "irsafs_credential_refresh_failures_total") == 0
    assert value(after, "irsafs_operation_duration_seconds_sum", op="GET") > 0
    assert value(after, "irsafs_memory_budget_peak_bytes") > 0
    # No key, prefix or principal is a label anywhere.
    for name, labels in after:
        for k, v in labels:
            assert "team" not in v and "x.txt" not in v and "arn:" not in v, (name, k, v)

    # The endpoint answers /metrics only, and GET or HEAD only.
    assert fetch(port, "/")[0] == 404
    assert fetch(port, "/metrics/x")[0] == 404
    assert fetch(port, method="POST")[0] == 405
    assert fetch(port, method="DELETE")[0] == 405
    assert fetch(port, method="HEAD")[0] == 200

    # SIGUSR1 still writes its lines.
    m.proc.send_signal(signal.SIGUSR1)
    wait_for(lambda: "memory: read buffers" in m.log(), "memory line after SIGUSR1")
    line = [x for x in m.log().splitlines() if "counters:" in x][-1]
    assert re.search(rf"objects opened 1, bytes read {size}, S3 requests \d+, listings 1$",
                     line), line
    assert fetch(port)[0] == 200


def test_metrics_off_by_default_and_gone_after_unmount(testbed, mount):
    port = free_port()
    m = mount()
    with pytest.raises(urllib.error.URLError):
        fetch(port)
    m.unmount()
    m2 = mount("demo-bucket", "--metrics-addr", f"127.0.0.1:{port}")
    assert fetch(port)[0] == 200
    m2.unmount()
    assert m2.proc.returncode == 0
    with pytest.raises(urllib.error.URLError):
        fetch(port)


def run_daemon(args, env, mountpoint, timeout=30, wrap=()):
    return subprocess.run([*wrap, irsafs_bin(), "-f", *args, "demo-bucket", mountpoint],
                          capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("addr,why", [
    ("127.0.0.1", "no port"),
    ("127.0.0.1:0", "the port must be a number from 1 to 65535"),
    ("127.0.0.1:99999", "the port must be a number from 1 to 65535"),
    ("127.0.0.1:http", "the port must be a number from 1 to 65535"),
    (":9100", "no host"),
    ("::1:9100", "an IPv6 address goes in brackets"),
])
def test_a_malformed_address_is_a_usage_error(testbed, tmp_path, addr, why):
    proc = run_daemon(["--metrics-addr", addr], pod_env(testbed), str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "--metrics-addr" in lines[0] and why in lines[0], proc.stderr


def test_an_address_in_use_fails_the_start(testbed, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        proc = run_daemon(["--metrics-addr", f"127.0.0.1:{port}"], pod_env(testbed),
                          str(tmp_path))
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"--metrics-addr 127.0.0.1:{port}: cannot listen there: Address already in use" \
        in lines[0] and "pick another" in lines[0], lines[0]
    assert not os.path.ismount(tmp_path)


def test_a_name_that_does_not_resolve_fails_the_start(testbed, tmp_path):
    # Only /etc/hosts is asked (a private mount namespace's nsswitch.conf): no DNS packet.
    nss = tmp_path / "nsswitch.conf"
    nss.write_text("hosts: files\n")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    wrap = ["unshare", "-m", "--propagation", "private", "--", "sh", "-c",
            f'mount --bind {nss} /etc/nsswitch.conf && exec "$@"', "sh"]
    proc = run_daemon(["--metrics-addr", "no-such-host.invalid:9100"], pod_env(testbed),
                      str(mnt), wrap=wrap)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "--metrics-addr no-such-host.invalid:9100: cannot resolve no-such-host.invalid" \
        in lines[0] and "give an IP address" in lines[0], lines[0]


# --- credentials, against the hostile STS (tests/hostile.py) ---------------

HB = "hostile-bucket"


def test_credentials_expiry_and_refresh_failures(hostile, hostile_mount):
    hostile.create_bucket(HB)
    hostile.put(HB, "f.txt", b"data\n")
    # 20 s credentials: refreshed a quarter of their life (5 s) before they expire.
    hostile.set_sts(expires_in=20)
    port = free_port()
    m = hostile_mount(HB, "--metrics-addr", f"127.0.0.1:{port}", "--metadata-ttl", "0",
                      expect_log=[r"credential refresh from web identity failed",
                                  r"AssumeRoleWithWebIdentity .* -> 503 ServiceUnavailable",
                                  r"no valid credentials", r"-> NoCredentials"])
    s = parse(fetch(port)[2])
    expiry = int(hostile.issued[-1][1])   # the Expiration STS wrote, in whole seconds
    assert value(s, "irsafs_credentials_expiry_timestamp_seconds") == expiry
    assert value(s, "irsafs_credential_refreshes_total") == 1
    assert value(s, "irsafs_requests_total", op="STS", status="200") == 1
    # From now on STS refuses: the refresh that comes due fails, and is counted.
    hostile.add("sts_error", status=503, code="ServiceUnavailable", message="down")
    deadline = time.monotonic() + 60
    while value(s, "irsafs_credential_refresh_failures_total") < 1:
        assert time.monotonic() < deadline, "no failed refresh counted within 60 s:\n" + m.log()
        try:
            os.stat(m.path("f.txt"))      # TTL 0: each stat asks S3, so credentials
        except OSError:
            pass
        time.sleep(0.2)
        s = parse(fetch(port)[2])
    # The failed STS calls, by status, with their retries; the gauge still names the
    # credentials in use, which have not been replaced.
    assert value(s, "irsafs_requests_total", op="STS", status="503") >= 1
    assert value(s, "irsafs_retries_total", op="STS") >= 1
    assert value(s, "irsafs_throttled_total", op="STS") == 0
    assert value(s, "irsafs_credentials_expiry_timestamp_seconds") == expiry
    assert value(s, "irsafs_credential_refreshes_total") == 1
    assert value(s, "irsafs_operation_duration_seconds_count", op="STS") >= 2
    # STS answers again: the next refresh works and the gauge moves on.
    hostile.clear()
    deadline = time.monotonic() + 60
    while value(s, "irsafs_credential_refreshes_total") < 2:
        assert time.monotonic() < deadline, "no refresh within 60 s:\n" + m.log()
        try:
            os.stat(m.path("f.txt"))
        except OSError:
            pass
        time.sleep(0.2)
        s = parse(fetch(port)[2])
    assert value(s, "irsafs_credentials_expiry_timestamp_seconds") == \
        int(hostile.issued[-1][1]) > expiry
