"""Log lines an SRE can grep, and what a server may not put into them.

- With --log-format json, a line about an operation carries its facts as
  fields beside msg: op, bucket, key, status, code, errno, request_id, id2,
  latency_ms. A denied read is the case people grep for.
  (The hostile server's root fits one listing page, which the mount keeps:
  opening a file there asks nothing, so the errors come with the read.)
- S3's own words (<Code>, <Message>) are quoted in log lines and in the
  root's last_denial xattr: a server that echoes the credentials it was sent
  (tests/hostile.py's `error` fault, with the keys its STS issued) must not
  get them there.
- A GetObject denied for want of kms:Decrypt says so, and names the policy.
"""
import base64
import errno
import hashlib
import json
import os
import subprocess

import pytest

from conftest import irsafs_bin

B = "hostile-bucket"


def errno_of(fn, *args):
    with pytest.raises(OSError) as ei:
        fn(*args)
    return ei.value.errno


def read(path):
    with open(path, "rb") as f:
        return f.read()


def records(log):
    """Every line of a JSON log, parsed: each must be one JSON object."""
    out = []
    for line in log.splitlines():
        r = json.loads(line)
        assert isinstance(r, dict) and {"time", "level", "tag", "msg"} <= set(r), line
        out.append(r)
    return out


def test_a_denied_read_logs_its_facts_as_json_fields(testbed, mount):
    m = mount("other-bucket", "--log-format", "json")
    assert errno_of(open, m.path("secret.txt"), "rb") == errno.EACCES
    recs = records(m.log())
    denial = [r for r in recs if "s3:GetObject on arn:aws:s3:::other-bucket/secret.txt denied"
              in r["msg"]]
    assert len(denial) == 1, recs
    r = denial[0]
    assert r["level"] == "warning"
    assert r["op"] == "GET" and r["bucket"] == "other-bucket" and r["key"] == "secret.txt", r
    assert r["status"] == 403 and r["code"] == "AccessDenied" and r["errno"] == "EACCES", r
    assert r["request_id"].startswith("tx") and r["request_id"] in r["msg"], r
    assert r["id2"] and r["id2"] in r["msg"], r
    assert isinstance(r["latency_ms"], float) and 0 < r["latency_ms"] < 20000, r
    # The mount's own listing was denied too: a LIST of the root (the prefix "").
    listing = [r for r in recs if r["msg"].startswith("s3:ListBucket on arn:aws:s3:::other-bucket")]
    assert listing and listing[0]["op"] == "LIST" and listing[0]["status"] == 403, recs
    assert listing[0]["key"] == "" and listing[0]["errno"] == "EACCES", listing[0]
    # Lines about no operation stay as they were: four members.
    mounted = [r for r in recs if r["msg"].startswith("mounted s3://other-bucket/")]
    assert mounted and set(mounted[0]) == {"time", "level", "tag", "msg"}, mounted


def test_a_denied_read_logs_the_same_text_line_as_before(testbed, mount):
    m = mount("other-bucket", expect_log=[r"may not list", r"denied to arn:aws:sts:::"])
    assert errno_of(open, m.path("secret.txt"), "rb") == errno.EACCES
    line = [x for x in m.log().splitlines()
            if "s3:GetObject on arn:aws:s3:::other-bucket/secret.txt" in x]
    assert len(line) == 1 and line[0].startswith("irsafs: warning: s3:GetObject on "), line
    assert "(403 AccessDenied): add it to the role's policy or read another path [request " \
        "id tx" in line[0], line[0]


def issued_secrets(hostile):
    """The access key id, secret key and session token the hostile STS issued last
    (tests/hostile.py derives them from the issue number)."""
    n = len(hostile.issued)
    akid = hostile.issued[-1][0]
    secret = hashlib.sha256(b"secret%d" % n).hexdigest()[:40]
    token = base64.b64encode(hashlib.sha512(b"token%d" % n).digest() * 3).decode()
    return akid, secret, token


def assert_clean(text, secrets):
    for s in secrets:
        assert s not in text, f"{s[:24]}... reached the log:\n{text}"
        # Nor any piece of one that could be pasted back together.
        for i in range(0, len(s) - 16, 8):
            assert s[i:i + 16] not in text, f"a piece of {s[:24]}... reached the log"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_server_that_echoes_the_credentials_in_a_denial(hostile, hostile_mount, fmt):
    hostile.create_bucket(B)
    hostile.put(B, "f.txt", b"data\n")
    m = hostile_mount(B, "--log-format", fmt, expect_log=[r"denied to"])
    akid, secret, token = issued_secrets(hostile)
    hostile.add("error", kind="get", key=r"^f\.txt$", status=403, code="AccessDenied",
                message=f"Access Denied for {akid} signed with {secret} and {token}")
    assert errno_of(read, m.path("f.txt")) == errno.EACCES
    log = m.log()
    assert "s3:GetObject on arn:aws:s3:::hostile-bucket/f.txt denied" in log, log
    assert "Access Denied for [redacted]" in log, log
    assert_clean(log, (akid, secret, token))
    # The root's xattr names the denial too.
    last = os.getxattr(m.dir, "user.irsafs.last_denial").decode()
    assert "hostile-bucket/f.txt" in last, last
    assert_clean(last, (akid, secret, token))
    if fmt == "json":
        records(log)


def test_a_server_that_echoes_the_credentials_in_errors_it_retries(hostile, hostile_mount):
    hostile.create_bucket(B)
    hostile.put(B, "f.txt", b"data\n")
    m = hostile_mount(B, "--operation-timeout", "5", expect_log=[
        r"500 InternalError .*\(attempt \d/\d, retry in", r"gave up after"])
    akid, secret, token = issued_secrets(hostile)
    hostile.add("error", kind="get", key=r"^f\.txt$", status=500, code="InternalError",
                message=f"We encountered an internal error with key {akid}:{secret} "
                        f"session {token[:120]}")
    assert errno_of(read, m.path("f.txt")) == errno.EIO
    log = m.log()
    assert "retry in" in log and "gave up after" in log, log
    assert "internal error with key [redacted]" in log, log
    assert_clean(log, (akid, secret, token))


KMS_MESSAGE = ("User: arn:aws:sts::123456789012:assumed-role/reader/irsafs-pod is not "
               "authorized to perform: kms:Decrypt on the resource associated with this "
               "ciphertext because no identity-based policy allows the kms:Decrypt action")


def test_a_kms_denial_says_the_role_needs_kms_decrypt(hostile, hostile_mount):
    hostile.create_bucket(B)
    hostile.put(B, "enc.bin", b"x" * 100)
    hostile.put(B, "plain.bin", b"y" * 100)
    m = hostile_mount(B, "--log-format", "json")
    hostile.add("error", kind="get", key=r"^enc\.bin$", status=403, code="AccessDenied",
                message=KMS_MESSAGE)
    hostile.add("error", kind="get", key=r"^plain\.bin$", status=403, code="AccessDenied",
                message="Access Denied")
    assert errno_of(read, m.path("enc.bin")) == errno.EACCES
    assert errno_of(read, m.path("plain.bin")) == errno.EACCES
    recs = records(m.log())
    enc = [r for r in recs if "hostile-bucket/enc.bin denied" in r["msg"]]
    plain = [r for r in recs if "hostile-bucket/plain.bin denied" in r["msg"]]
    assert len(enc) == 1 and len(plain) == 1, recs
    assert "kms:Decrypt on the resource" in enc[0]["msg"]
    assert "the object is encrypted with SSE-KMS: the role also needs kms:Decrypt on its key " \
        "(packaging/kubernetes/iam-policy-kms.json)" in enc[0]["msg"], enc[0]
    assert "add it to the role's policy" not in enc[0]["msg"]
    assert enc[0]["code"] == "AccessDenied" and enc[0]["errno"] == "EACCES", enc[0]
    # A plain denial keeps its advice, and says nothing of KMS.
    assert "add it to the role's policy or read another path" in plain[0]["msg"], plain[0]
    assert "KMS" not in plain[0]["msg"], plain[0]


def test_an_sts_refusal_logs_its_facts_as_json_fields(hostile, tmp_path):
    hostile.create_bucket(B)
    hostile.add("sts_error", status=403, code="AccessDenied", message="Not authorized: ")
    proc = subprocess.run([irsafs_bin(), "-f", "--log-format", "json", B, str(tmp_path)],
                          capture_output=True, text=True, timeout=60, env=hostile.env(),
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 1, proc.stderr
    recs = records(proc.stderr)
    failed = [r for r in recs if r["msg"].startswith("cannot get credentials from web identity: "
                                                     "STS refused AssumeRoleWithWebIdentity")]
    assert len(failed) == 1, recs
    r = failed[0]
    assert r["level"] == "error" and r["op"] == "STS", r
    assert r["status"] == 403 and r["code"] == "AccessDenied", r
    assert r["request_id"] == "hostile" and r["latency_ms"] > 0, r
    assert "bucket" not in r and "key" not in r and "errno" not in r, r
    # The token STS echoed is not there, in the message or in a field.
    with open(hostile.env()["AWS_WEB_IDENTITY_TOKEN_FILE"]) as f:
        token = f.read().strip()
    assert token[:40] not in proc.stderr and "[redacted]" in r["msg"], r
