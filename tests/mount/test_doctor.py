"""`irsafs doctor`: one verdict per misconfiguration the testbed can produce."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import SRC, irsafs_bin, pod_env

sys.path.insert(0, os.path.join(SRC, "tests"))
import faultproxy  # noqa: E402


def roles(testbed):
    with open(os.path.join(testbed.dir, "state", "roles.json")) as f:
        return json.load(f)["roles"]


def doctor(env, *args):
    proc = subprocess.run([irsafs_bin(), "doctor", *args], env=env, capture_output=True,
                          text=True, timeout=120)
    assert "AddressSanitizer" not in proc.stderr and "runtime error" not in proc.stderr, \
        proc.stderr
    return proc


def lines(proc):
    """check name -> (mark, message), from the text report."""
    out = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"\[(.{4})\] (\S+)\s+(.*)$", line)
        if m:
            out[m.group(2)] = (m.group(1), m.group(3))
    return out


def role_env(testbed, tmp_path, role, *mint_args):
    r = roles(testbed)[role]
    tok = str(tmp_path / "token")
    testbed.mint(tok, "-s", r["sub"], *mint_args)
    return pod_env(testbed, AWS_ROLE_ARN=r["arn"], AWS_WEB_IDENTITY_TOKEN_FILE=tok)


ORDER = ["environment", "token", "sts", "endpoint", "list", "read"]


def test_healthy_pod(testbed):
    before = testbed.rgw_log_size()
    proc = doctor(pod_env(testbed), "demo-bucket")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = lines(proc)
    assert list(got) == ORDER
    assert all(mark == " ok " for mark, _ in got.values()), proc.stdout
    assert "web identity (IRSA)" in got["environment"][1]
    assert "AWS_ROLE_ARN=arn:aws:iam:::role/s3-reader" in got["environment"][1]
    assert re.search(r"iss http://127\.0\.0\.1:8088, sub system:serviceaccount:demo:reader, "
                     r"aud sts\.amazonaws\.com, issued \S+Z, expires \S+Z", got["token"][1])
    assert "arn:aws:sts:::assumed-role/s3-reader/" in got["sts"][1]
    assert re.search(r"answers \(HTTP \d+ from 127\.0\.0\.1\): dns [\d.]+ ms, connect [\d.]+ ms",
                     got["endpoint"][1])
    assert "bytes=0-0: 1 byte" in got["read"][1]
    assert proc.stdout.splitlines()[-1] == \
        "summary: 6 ok, 0 warnings, 0 failed, 0 skipped: a mount would work"
    # It only reads: apart from the STS call (POST /), GETs and HEADs.
    reqs = testbed.rgw_requests_since(before, agent="doctor")
    assert reqs and all(m in ("GET", "HEAD") or (m == "POST" and p == "/") for m, p in reqs), reqs


def test_json(testbed, tmp_path):
    env = role_env(testbed, tmp_path, "s3-team-a")
    proc = doctor(env, "demo-bucket", "--prefix", "team-a", "--json")
    assert proc.returncode == 0, proc.stdout
    doc = json.loads(proc.stdout)
    assert doc["mount_would_work"] is True and doc["exit_status"] == 0
    assert doc["prefix"] == "team-a/"
    assert [c["check"] for c in doc["checks"]] == ORDER
    assert all(c["status"] == "ok" for c in doc["checks"])
    tok = doc["checks"][1]
    assert tok["sub"] == "system:serviceaccount:demo:s3-team-a"
    assert tok["aud"] == ["sts.amazonaws.com"] and tok["exp"] > tok["iat"]
    assert doc["checks"][2]["principal"].startswith("arn:aws:sts:::assumed-role/s3-team-a/")
    assert doc["checks"][5]["message"].startswith("GetObject s3://demo-bucket/team-a/")


def test_json_is_valid_utf8_whatever_the_environment_holds(testbed, tmp_path):
    env = role_env(testbed, tmp_path, "s3-team-a")
    # Bytes that are not UTF-8 and a terminal escape, as a Pod spec can set them.
    env["AWS_ROLE_SESSION_NAME"] = "pod\udcff\x1b[2J"
    proc = subprocess.run([irsafs_bin(), "doctor", "demo-bucket", "--json"], env=env,
                          capture_output=True, timeout=120)
    assert b"AddressSanitizer" not in proc.stderr and b"runtime error" not in proc.stderr
    doc = json.loads(proc.stdout.decode("utf-8", errors="strict"))
    assert doc["checks"][0]["check"] == "environment"
    assert doc["checks"][0]["variables"]["AWS_ROLE_SESSION_NAME"] == r"pod\xff\x1b[2J"
    assert b"\x1b" not in proc.stdout and b"\xff" not in proc.stdout


# (name, how to break it, args, exit, {check: (mark, regex)})
CASES = [
    ("wrong-role-arn", {"role_arn": "arn:aws:iam:::role/no-such-role"}, [], 1,
     {"sts": ("FAIL", r"STS refused AssumeRoleWithWebIdentity for role "
                      r"arn:aws:iam:::role/no-such-role: 403 AccessDenied.*trust policy.*"
                      r"eks\.amazonaws\.com/role-arn"),
      "list": ("skip", r"no credentials")}),
    ("wrong-audience", {"mint": ["-a", "not-sts"]}, [], 1,
     {"token": ("FAIL", r"its audience is 'not-sts', not sts\.amazonaws\.com"),
      "sts": ("FAIL", r"403 AccessDenied")}),
    ("wrong-subject", {"mint": ["-s", "system:serviceaccount:demo:intruder"]}, [], 1,
     {"token": (" ok ", r"sub system:serviceaccount:demo:intruder"),
      "sts": ("FAIL", r"the token says sub system:serviceaccount:demo:intruder, aud "
                      r"sts\.amazonaws\.com: the role's trust policy must allow both")}),
    ("expired-token", {"mint": ["-t", "-120"]}, [], 1,
     {"token": ("FAIL", r"it expired \d+ (s|min) ago"),
      "sts": ("FAIL", r"AccessDenied")}),
    ("missing-token-file", {"token_file": "/nonexistent/token"}, [], 1,
     {"token": ("FAIL", r"cannot read /nonexistent/token: No such file or directory"),
      "sts": ("skip", r"no token")}),
    ("missing-bucket", {}, ["no-such-bucket"], 1,
     {"list": ("FAIL", r"bucket no-such-bucket does not exist at http://127\.0\.0\.1:7480 "
                       r"\(404 NoSuchBucket\): check the bucket name")}),
    ("no-listbucket", {"role": "s3-getonly"}, [], 0,
     {"list": ("warn", r"ListObjectsV2 s3://demo-bucket/ is denied \(403 AccessDenied\): add "
                       r"s3:ListBucket on arn:aws:s3:::demo-bucket to the role's policy"),
      "read": ("skip", r"the listing was denied")}),
    ("no-listbucket-strict", {"role": "s3-getonly"}, ["--strict"], 1,
     {"list": ("FAIL", r"With --strict the mount fails")}),
    ("prefix-not-listable", {"role": "s3-team-a"}, ["--prefix", "team-b"], 0,
     {"list": ("warn", r"add s3:ListBucket on arn:aws:s3:::demo-bucket with the condition "
                       r"s3:prefix = team-b/\*")}),
    ("no-getobject", {"role": "s3-listonly"}, [], 0,
     {"list": (" ok ", r""),
      "read": ("warn", r"GetObject s3://demo-bucket/\S+ is denied \(403 AccessDenied\): add "
                       r"s3:GetObject on arn:aws:s3:::demo-bucket/\* to the role's policy")}),
    ("s3-endpoint-down", {"env": {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"}}, [], 1,
     {"sts": (" ok ", r"assumed-role/s3-reader/"),
      "endpoint": ("FAIL", r"cannot reach http://127\.0\.0\.1:9: nothing accepts connections"),
      "list": ("skip", r"not reachable")}),
    ("sts-endpoint-down", {"env": {"AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9"}}, [], 1,
     {"sts": ("FAIL", r"cannot reach STS at http://127\.0\.0\.1:9 for role "
                      r"arn:aws:iam:::role/s3-reader"),
      "endpoint": (" ok ", r""), "list": ("skip", r"no credentials")}),
    ("wrong-issuer", {"mint": ["-i", "http://127.0.0.1:8089"]}, [], 1,
     {"token": (" ok ", r"iss http://127\.0\.0\.1:8089,"),
      "sts": ("FAIL", r"AccessDenied.*for issuer http://127\.0\.0\.1:8089")}),
    ("no-credentials", {"env": {"AWS_ROLE_ARN": None, "AWS_WEB_IDENTITY_TOKEN_FILE": None}},
     [], 1, {"environment": ("FAIL", r"no credentials: set AWS_ROLE_ARN")}),
]


@pytest.mark.parametrize("name,brk,args,status,want", CASES, ids=[c[0] for c in CASES])
def test_misconfiguration(testbed, tmp_path, name, brk, args, status, want):
    role = brk.get("role", "s3-reader")
    env = role_env(testbed, tmp_path, role, *brk.get("mint", []))
    if "role_arn" in brk:
        env["AWS_ROLE_ARN"] = brk["role_arn"]
    if "token_file" in brk:
        env["AWS_WEB_IDENTITY_TOKEN_FILE"] = brk["token_file"]
    for k, v in brk.get("env", {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    bucket = args[0] if args and not args[0].startswith("-") else "demo-bucket"
    rest = args[1:] if args and not args[0].startswith("-") else args
    proc = doctor(env, bucket, *rest)
    assert proc.returncode == status, proc.stdout + proc.stderr
    got = lines(proc)
    for check, (mark, pattern) in want.items():
        assert check in got, proc.stdout
        assert got[check][0] == mark, (check, proc.stdout)
        assert re.search(pattern, got[check][1]), (check, pattern, got[check][1])
    verdict = proc.stdout.splitlines()[-1]
    assert verdict.endswith("a mount would fail" if status else
                            "a mount would work, with the warnings above"), verdict
    # The token never appears in the report.
    tok = env.get("AWS_WEB_IDENTITY_TOKEN_FILE")
    if tok and os.path.exists(tok):
        with open(tok) as f:
            assert f.read().split(".")[1] not in proc.stdout


def test_bad_command_line(testbed):
    for args in ([], ["a", "b"], ["demo-bucket", "--bogus"], ["x/y"]):
        proc = doctor(pod_env(testbed), *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("irsafs doctor: ") and len(proc.stderr.splitlines()) == 1
    proc = doctor(pod_env(testbed), "--help")
    assert proc.returncode == 0 and "usage: irsafs doctor BUCKET" in proc.stdout


def test_runs_without_privileges(testbed):
    d = tempfile.mkdtemp(prefix="irsafs-doctor-")
    try:
        os.chmod(d, 0o755)
        tok = os.path.join(d, "token")
        testbed.mint(tok, "-s", roles(testbed)["s3-reader"]["sub"])
        os.chmod(tok, 0o644)
        env = pod_env(testbed, AWS_WEB_IDENTITY_TOKEN_FILE=tok)
        proc = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534",
                               "--clear-groups", irsafs_bin(), "doctor", "demo-bucket"],
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        shutil.rmtree(d)


@pytest.mark.parametrize("message", ["Access Denied",
                                     "User: arn:aws:sts::111122223333:assumed-role/r/s is not "
                                     "authorized to perform: kms:Decrypt on the resource "
                                     "associated with this ciphertext"],
                         ids=["head-tells", "message-names-kms"])
def test_a_get_denied_to_a_role_with_getobject_points_at_kms(testbed, message):
    # radosgw does not check kms:Decrypt, so a proxy answers the object GET
    # the way S3 does for an SSE-KMS object whose key the role may not use;
    # the listing and HEAD pass through (the role has s3:GetObject).
    p = faultproxy.FaultProxy(upstream=("127.0.0.1", 7480)).start()
    try:
        p.add("replace", kind="get", status=403,
              body=faultproxy.error_body("AccessDenied", message))
        proc = doctor(pod_env(testbed, AWS_ENDPOINT_URL_S3=p.url), "demo-bucket")
    finally:
        p.stop()
    assert proc.returncode == 0, proc.stdout
    mark, msg = lines(proc)["read"]
    assert mark == "warn", proc.stdout
    assert re.search(r"is denied \(403 AccessDenied.*\), though the role has s3:GetObject on it.*"
                     r"SSE-KMS.*kms:Decrypt on the key, with the condition kms:ViaService = "
                     r"s3\.us-east-1\.amazonaws\.com.*iam-policy-kms\.json", msg), msg
