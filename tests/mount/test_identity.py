"""Identity: every credential source, refresh across short lifetimes, and failing closed.

Small local HTTP servers stand in for the EKS Pod Identity agent, IMDSv2 and an S3
endpoint in another region with a skewed clock; they hand out real credentials
that the testbed's STS issued, so the mounts really read from radosgw.
"""
import calendar
import errno
import hashlib
import http.server
import json
import os
import re
import stat
import subprocess
import tempfile
import threading
import time
import urllib.parse

import pytest

import s3admin
from conftest import irsafs_bin, pod_env

HELLO = b"hello from irsafs\n"
NO_FILES = {"AWS_CONFIG_FILE": "/nonexistent/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials"}


class FakeServer:
    """A loopback HTTP server; handler(req) -> (status, headers dict, body bytes)."""

    def __init__(self, handler, server_time=None):
        self.requests = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def date_time_string(self, timestamp=None):
                t = server_time() if server_time else time.time()
                return super().date_time_string(t)

            def _do(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                outer.requests.append((self.command, self.path, dict(self.headers)))
                status, headers, out = handler(self.command, self.path, self.headers, body)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            do_GET = do_PUT = do_POST = do_HEAD = _do

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_server():
    servers = []

    def make(handler, **kw):
        s = FakeServer(handler, **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def sts_creds(testbed, duration=None):
    with open(testbed.pod_env["AWS_WEB_IDENTITY_TOKEN_FILE"]) as f:
        token = f.read().strip()
    return s3admin.assume_role_with_web_identity(testbed.pod_env["AWS_ROLE_ARN"], token,
                                                 duration=duration)


def agent_json(c):
    return json.dumps({"AccessKeyId": c["access_key"], "SecretAccessKey": c["secret_key"],
                       "Token": c["session_token"], "Expiration": c["expiration"],
                       "AccountId": "000000000000"}).encode()


def no_irsa_env(testbed, **kw):
    env = dict(NO_FILES)
    env.update(kw)
    return pod_env(testbed, AWS_ROLE_ARN=None, AWS_WEB_IDENTITY_TOKEN_FILE=None, **env)


def run_mount_fails(args, env, timeout=60):
    mnt = tempfile.mkdtemp(prefix="irsafs-mnt-")
    try:
        proc = subprocess.run([irsafs_bin(), "-f", *args, mnt], env=env, capture_output=True,
                              text=True, timeout=timeout)
        mounted = os.path.ismount(mnt)
        if mounted:
            subprocess.run(["fusermount3", "-u", "-z", mnt])
        assert not mounted and proc.returncode == 1, (proc.returncode, proc.stderr)
        assert "AddressSanitizer" not in proc.stderr and "runtime error" not in proc.stderr
        return proc.stderr
    finally:
        if not os.path.ismount(mnt):
            os.rmdir(mnt)


def read_hello(m):
    with open(m.path("hello.txt"), "rb") as f:
        assert f.read() == HELLO


# --- container credentials (EKS Pod Identity, ECS) -------------------------------------

def test_container_credentials_with_rotating_token_file(testbed, mount, fake_server, tmp_path):
    creds = sts_creds(testbed)
    tokfile = tmp_path / "eks-pod-identity-token"
    tokfile.write_text("agent-token-1")

    def agent(method, path, headers, body):
        if path != "/v1/credentials" or headers.get("Authorization") != tokfile.read_text():
            return 401, {"Content-Type": "application/json"}, b'{"message": "bad token"}'
        return 200, {"Content-Type": "application/json"}, agent_json(creds)

    srv = fake_server(agent)
    env = no_irsa_env(testbed, AWS_CONTAINER_CREDENTIALS_FULL_URI=srv.url + "/v1/credentials",
                      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(tokfile))
    m = mount("demo-bucket", "--debug", env=env)
    read_hello(m)
    log = m.log()
    assert "identity: unknown (credentials from container credentials)" in log
    assert [r[2].get("Authorization") for r in srv.requests] == ["agent-token-1"]
    # Secrets never reach the log, the command line, or a core file.
    for secret in (creds["secret_key"], creds["session_token"], "agent-token-1"):
        assert secret not in log
    with open("/proc/%d/cmdline" % m.proc.pid, "rb") as f:
        cmdline = f.read()
    assert creds["secret_key"].encode() not in cmdline
    with open("/proc/%d/limits" % m.proc.pid) as f:
        core = [l for l in f if l.startswith("Max core file size")]
    assert core and core[0].split()[4] == "0", core


def test_container_token_refused_fails_the_mount(testbed, fake_server, tmp_path):
    tokfile = tmp_path / "token"
    tokfile.write_text("wrong-token")
    srv = fake_server(lambda *a: (401, {}, b"{}"))
    env = no_irsa_env(testbed, AWS_CONTAINER_CREDENTIALS_FULL_URI=srv.url + "/v1/credentials",
                      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(tokfile))
    err = run_mount_fails(["demo-bucket"], env)
    assert "answered HTTP 401" in err and "refused the authorization token" in err, err
    assert "wrong-token" not in err
    assert len(srv.requests) == 1  # a refusal is not retried


@pytest.mark.parametrize("uri", ["http://0.0.0.0:1/creds", "http://localhost.example:1/c",
                                 "ftp://127.0.0.1/creds"])
def test_container_uri_refused(testbed, uri):
    env = no_irsa_env(testbed, AWS_CONTAINER_CREDENTIALS_FULL_URI=uri,
                      AWS_CONTAINER_AUTHORIZATION_TOKEN="tok")
    err = run_mount_fails(["demo-bucket"], env)
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in err, err
    assert "plain HTTP" in err or "must start with" in err, err


def test_container_agent_json_errors(testbed, fake_server):
    srv = fake_server(lambda *a: (200, {}, b'{"AccessKeyId": "AK"}'))
    env = no_irsa_env(testbed, AWS_CONTAINER_CREDENTIALS_FULL_URI=srv.url + "/creds")
    err = run_mount_fails(["demo-bucket"], env)
    assert 'lacks "SecretAccessKey"' in err, err


# --- the instance role, only when asked for ---------------------------------------------

def test_instance_role_only_with_the_flag(testbed, mount, fake_server):
    creds = sts_creds(testbed)

    def imds(method, path, headers, body):
        if method == "PUT" and path == "/latest/api/token":
            if not headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return 400, {}, b""
            return 200, {}, b"imds-session-token"
        if headers.get("X-aws-ec2-metadata-token") != "imds-session-token":
            return 401, {}, b""
        if path == "/latest/meta-data/placement/region":
            return 200, {}, b"us-east-1"
        if path == "/latest/meta-data/iam/security-credentials/":
            return 200, {}, b"node-role"
        if path == "/latest/meta-data/iam/security-credentials/node-role":
            d = json.loads(agent_json(creds))
            d.update(Code="Success", Type="AWS-HMAC")
            return 200, {}, json.dumps(d).encode()
        return 404, {}, b""

    srv = fake_server(imds)
    env = no_irsa_env(testbed, AWS_EC2_METADATA_SERVICE_ENDPOINT=srv.url)
    err = run_mount_fails(["demo-bucket"], env)
    assert "no credentials" in err and "--allow-instance-role" in err, err
    assert srv.requests == []  # the node's role was not even asked for

    env.pop("AWS_REGION")
    m = mount("demo-bucket", "--allow-instance-role", env=env)
    read_hello(m)
    assert "region us-east-1 from the instance metadata" in m.log()
    assert "credentials from instance role (IMDSv2)" in m.log()
    assert ("PUT", "/latest/api/token") == srv.requests[0][:2]
    # IMDSv1 (a GET without a session token) is never used.
    assert all(r[2].get("X-aws-ec2-metadata-token") == "imds-session-token"
               for r in srv.requests if r[0] == "GET")


def test_no_region_and_no_endpoint_is_a_clear_error(testbed):
    env = pod_env(testbed, AWS_REGION=None, AWS_ENDPOINT_URL=None, **NO_FILES)
    err = run_mount_fails(["demo-bucket"], env)
    assert "no region" in err and "--allow-instance-role" in err, err


def test_broken_irsa_never_falls_back_to_the_instance_role(testbed, fake_server):
    srv = fake_server(lambda *a: (500, {}, b""))
    env = pod_env(testbed, AWS_WEB_IDENTITY_TOKEN_FILE="/nonexistent/token",
                  AWS_EC2_METADATA_SERVICE_ENDPOINT=srv.url, **NO_FILES)
    err = run_mount_fails(["--allow-instance-role", "demo-bucket"], env)
    assert "/nonexistent/token" in err
    assert srv.requests == []


# --- shared profile files -------------------------------------------------------------

def write_script(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize("kind", ["static", "web_identity", "credential_process"])
def test_profile_kinds(testbed, mount, tmp_path, kind):
    cfg = tmp_path / "config"
    if kind == "static":
        owner = s3admin.read_env_file(os.path.join(testbed.dir, "state", "owner.env"))
        body = "aws_access_key_id = %s\naws_secret_access_key = %s\n" % (
            owner["AWS_ACCESS_KEY_ID"], owner["AWS_SECRET_ACCESS_KEY"])
        source = "profile"
    elif kind == "web_identity":
        tok = tmp_path / "token"
        testbed.mint(str(tok))
        body = "role_arn = %s\nweb_identity_token_file = %s\n" % (
            testbed.pod_env["AWS_ROLE_ARN"], tok)
        source = "web identity"
    else:
        c = sts_creds(testbed)
        out = tmp_path / "creds.json"
        out.write_text(json.dumps({"Version": 1, "AccessKeyId": c["access_key"],
                                   "SecretAccessKey": c["secret_key"],
                                   "SessionToken": c["session_token"],
                                   "Expiration": c["expiration"]}))
        helper = tmp_path / "helper.sh"
        write_script(helper, "#!/bin/sh\ncat %s\n" % out)
        body = "credential_process = %s --flag\n" % helper
        source = "credential_process"
    cfg.write_text("[default]\nregion = us-east-1\n\n[profile team]\n" + body)
    env = no_irsa_env(testbed, AWS_PROFILE="team", AWS_CONFIG_FILE=str(cfg))
    m = mount("demo-bucket", env=env)
    read_hello(m)
    assert "(credentials from %s)" % source in m.log()


def test_profile_region_is_used(testbed, mount, tmp_path):
    cfg = tmp_path / "config"
    tok = tmp_path / "token"
    testbed.mint(str(tok))
    cfg.write_text("[profile p]\nregion = us-east-1\nrole_arn = %s\n"
                   "web_identity_token_file = %s\n" % (testbed.pod_env["AWS_ROLE_ARN"], tok))
    env = no_irsa_env(testbed, AWS_PROFILE="p", AWS_CONFIG_FILE=str(cfg), AWS_REGION=None)
    m = mount("demo-bucket", env=env)
    read_hello(m)
    assert "region us-east-1 from the shared profile" in m.log()


@pytest.mark.parametrize("script,words", [
    ("echo 'session expired: run aws sso login' >&2\nexit 2",
     ["exited with status 2: session expired: run aws sso login"]),
    ("echo '{\"Version\": 1, \"AccessKeyId\": \"AK\"}'", ['lacks "SecretAccessKey"']),
    ("echo 'not json'", ["did not send a JSON object"]),
    ("kill -9 $$", ["exited with status 137"]),
])
def test_credential_process_failures(testbed, tmp_path, script, words):
    helper = tmp_path / "helper.sh"
    write_script(helper, "#!/bin/sh\n" + script + "\n")
    cfg = tmp_path / "config"
    cfg.write_text("[profile p]\ncredential_process = %s\n" % helper)
    env = no_irsa_env(testbed, AWS_PROFILE="p", AWS_CONFIG_FILE=str(cfg))
    err = run_mount_fails(["demo-bucket"], env)
    assert "credential_process for profile p" in err, err
    for w in words:
        assert w in err, err


def test_missing_profile_is_an_error(testbed):
    env = no_irsa_env(testbed, AWS_PROFILE="nope")
    err = run_mount_fails(["demo-bucket"], env)
    assert "AWS_PROFILE is 'nope'" in err, err


# --- another region, a skewed clock -----------------------------------------------------

def test_region_redirect_and_clock_skew(testbed, mount, fake_server):
    """A fake S3 whose bucket lives in eu-west-1 and whose clock is an hour ahead."""
    skew = 3600
    content = b"far away\n"
    seen = {"regions": [], "skewed": 0}

    def s3(method, path, headers, body):
        auth = headers.get("Authorization", "")
        m = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/s3/aws4_request", auth)
        region = m.group(1) if m else ""
        seen["regions"].append(region)
        amz = calendar.timegm(time.strptime(headers.get("x-amz-date", "19700101T000000Z"),
                                            "%Y%m%dT%H%M%SZ"))
        if abs(amz - (time.time() + skew)) > 900:
            seen["skewed"] += 1
            return 403, {"Content-Type": "application/xml"}, (
                b"<Error><Code>RequestTimeTooSkewed</Code><Message>The difference between "
                b"the request time and the current time is too large.</Message></Error>")
        if region != "eu-west-1":
            return 400, {"Content-Type": "application/xml"}, (
                b"<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region '%s' "
                b"is wrong; expecting 'eu-west-1'</Message><Region>eu-west-1</Region></Error>"
                % region.encode())
        lm = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(1700000000))
        if "list-type=2" in path:
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
            prefix = q.get("prefix", [""])[0]
            entry = ("<Contents><Key>far.txt</Key><LastModified>2023-11-14T22:13:20.000Z"
                     "</LastModified><ETag>\"abc\"</ETag><Size>%d</Size><StorageClass>"
                     "STANDARD</StorageClass></Contents>" % len(content)
                     if "far.txt".startswith(prefix) else "")
            xml = ("<ListBucketResult><Name>far-bucket</Name><Prefix>%s</Prefix><KeyCount>%d"
                   "</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>%s"
                   "</ListBucketResult>" % (prefix, 1 if entry else 0, entry))
            return 200, {"Content-Type": "application/xml"}, xml.encode()
        if path.startswith("/far-bucket/far.txt"):
            hdr = {"ETag": '"abc"', "Last-Modified": lm, "Content-Type": "text/plain"}
            rng = headers.get("Range")
            if method == "HEAD":
                hdr["Content-Length"] = str(len(content))
                return 200, hdr, b""
            if rng:
                a, b = rng.split("=")[1].split("-")
                a, b = int(a), min(int(b), len(content) - 1)
                hdr["Content-Range"] = "bytes %d-%d/%d" % (a, b, len(content))
                return 206, hdr, content[a:b + 1]
            return 200, hdr, content
        return 404, {"Content-Type": "application/xml"}, b"<Error><Code>NoSuchKey</Code></Error>"

    srv = fake_server(s3, server_time=lambda: time.time() + skew)
    env = pod_env(testbed, AWS_ROLE_ARN=None, AWS_WEB_IDENTITY_TOKEN_FILE=None,
                  AWS_ACCESS_KEY_ID="AKIDFAKE", AWS_SECRET_ACCESS_KEY="fake-secret",
                  AWS_ENDPOINT_URL=srv.url, AWS_REGION="us-east-1")
    m = mount("far-bucket", env=env,
              expect_log=[r"is in region eu-west-1, not us-east-1",
                          r"local clock is 3[56]\d\d s behind"])
    with open(m.path("far.txt"), "rb") as f:
        assert f.read() == content
    log = m.log()
    assert len(re.findall(r"is in region eu-west-1", log)) == 1, log
    assert len(re.findall(r"local clock is", log)) == 1, log
    # Once corrected, requests are signed for the right region and time.
    assert seen["regions"][-1] == "eu-west-1" and seen["skewed"] == 1, seen


# --- refresh across short lifetimes -------------------------------------------------------

def refresh_scenario(testbed, m, tok, problems):
    """A read that spans lifetimes, a token rotation, then a long idle gap."""
    try:
        size = testbed.objects()["big.bin"]["size"]
        want = testbed.objects()["big.bin"]["sha256"]
        h = hashlib.sha256()
        step = 1 << 20
        with open(m.path("big.bin"), "rb") as f:
            t0 = time.monotonic()
            off = 0
            rotated = False
            # 55 s of slow reading: crosses the first refresh (at 45 s of 60).
            while time.monotonic() - t0 < 55 and off < size // 2:
                h.update(os.pread(f.fileno(), step, off))
                off += step
                os.listdir(m.dir)
                if not rotated and time.monotonic() - t0 > 3:
                    # kubelet rotates the token; the old one expires at 30 s.
                    testbed.mint(tok)
                    rotated = True
                time.sleep(5)
            # Idle for longer than a lifetime, then finish the same read.
            time.sleep(65)
            while off < size:
                h.update(os.pread(f.fileno(), step, off))
                off += step
        if h.hexdigest() != want:
            problems.append("big.bin read across lifetimes has the wrong sha256")
    except OSError as e:
        problems.append("refresh scenario: %r" % e)


def loss_scenario(testbed, m, tok, problems, events):
    """The token file disappears: serve until expiry, EKEYEXPIRED, recover without a remount."""
    try:
        os.rename(tok, tok + ".away")
        t0 = time.monotonic()
        expired_at = None
        while time.monotonic() - t0 < 90:
            try:
                os.listdir(m.dir)
            except OSError as e:
                if e.errno != errno.EKEYEXPIRED:
                    problems.append("while the token is gone: %r, expected EKEYEXPIRED" % e)
                    return
                expired_at = time.monotonic() - t0
                break
            time.sleep(2)
        if expired_at is None:
            problems.append("no EKEYEXPIRED within 90 s of losing the token")
            return
        events.append("expired after %.0f s" % expired_at)
        # Still failing, as EKEYEXPIRED and never EACCES, on every kind of operation.
        for fn in (lambda: open(m.path("dir", "a.txt"), "rb").read(),
                   lambda: os.listdir(m.path("many"))):
            try:
                fn()
            except OSError as e:
                if e.errno != errno.EKEYEXPIRED:
                    problems.append("after expiry: %r, expected EKEYEXPIRED" % e)
        testbed.mint(tok)
        t1 = time.monotonic()
        while True:
            try:
                os.listdir(m.dir)
                with open(m.path("hello.txt"), "rb") as f:
                    if f.read() != HELLO:
                        problems.append("hello.txt changed after recovery")
                break
            except OSError as e:
                if e.errno != errno.EKEYEXPIRED or time.monotonic() - t1 > 30:
                    problems.append("no recovery after the token came back: %r" % e)
                    return
                time.sleep(1)
    except OSError as e:
        problems.append("loss scenario: %r" % e)


@pytest.mark.long_wait
def test_refresh_across_lifetimes_rotation_and_token_loss(testbed, mount, tmp_path):
    """Two mounts with 60 s credentials, run side by side to halve the wall time."""
    tok_a, tok_b = str(tmp_path / "token-a"), str(tmp_path / "token-b")
    testbed.mint(tok_a, "-t", "30")   # expires before the first refresh
    testbed.mint(tok_b)
    ma = mount("demo-bucket", "--credential-duration", "60", "--metadata-ttl", "0",
               env=pod_env(testbed, AWS_WEB_IDENTITY_TOKEN_FILE=tok_a))
    mb = mount("demo-bucket", "--credential-duration", "60", "--metadata-ttl", "0",
               env=pod_env(testbed, AWS_WEB_IDENTITY_TOKEN_FILE=tok_b),
               expect_log=[r"credential refresh from web identity failed",
                           r"no valid credentials", r"token-b"])
    start = time.monotonic()
    problems, events = [], []
    ta = threading.Thread(target=refresh_scenario, args=(testbed, ma, tok_a, problems))
    tb = threading.Thread(target=loss_scenario, args=(testbed, mb, tok_b, problems, events))
    ta.start()
    tb.start()
    ta.join()
    tb.join()
    elapsed = time.monotonic() - start
    assert not problems, (problems, ma.log(), mb.log())
    # Mount A: one STS call per lifetime (or fewer when idle), never a storm.
    log_a = ma.log()
    fetched = log_a.count("credentials from web identity for")
    assert 2 <= fetched <= 2 + elapsed / 45, (fetched, elapsed, log_a)
    assert "refresh from web identity failed" not in log_a
    # Mount B: the log says why operations failed, naming the token file.
    log_b = mb.log()
    assert len(re.findall(r"no valid credentials from web identity: file operations fail "
                          r"with EKEYEXPIRED.*token-b: No such file", log_b)) == 1, log_b
    # While the old credentials lasted, failed refreshes were retried, backing off.
    attempts = len(re.findall(r"credential refresh from web identity failed \(still using",
                              log_b))
    assert 1 <= attempts <= 15, (attempts, log_b)
