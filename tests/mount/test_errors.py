"""The errno contract, and what a mis-wired Pod sees."""
import errno
import os
import subprocess
import tempfile

import pytest

from conftest import irsafs_bin, pod_env


def errno_of(fn, *args):
    with pytest.raises(OSError) as ei:
        fn(*args)
    return ei.value.errno


def test_missing_key_is_enoent(mount):
    m = mount()
    assert errno_of(os.stat, m.path("no-such-file.txt")) == errno.ENOENT
    assert errno_of(open, m.path("no-such-file.txt"), "rb") == errno.ENOENT
    assert errno_of(os.listdir, m.path("no-such-dir")) == errno.ENOENT
    assert errno_of(os.stat, m.path("dir", "nope", "deeper")) == errno.ENOENT


def test_other_bucket_is_eacces(mount):
    m = mount("other-bucket", expect_log=[r"may not list", r"denied to arn:aws:sts:::assumed-role/s3-reader/"])
    assert "may not list s3://other-bucket/" in m.log()
    assert errno_of(os.listdir, m.dir) == errno.EACCES
    assert errno_of(open, m.path("secret.txt"), "rb") == errno.EACCES
    proc = subprocess.run(["cat", m.path("secret.txt")], capture_output=True, text=True)
    assert proc.returncode != 0 and "Permission denied" in proc.stderr
    proc = subprocess.run(["ls", m.dir], capture_output=True, text=True)
    assert proc.returncode != 0 and "Permission denied" in proc.stderr
    # The denial is explained once, naming the action, the resource and the principal.
    log = m.log()
    assert "s3:ListBucket on arn:aws:s3:::other-bucket" in log
    assert "s3:GetObject on arn:aws:s3:::other-bucket/secret.txt" in log


def test_writes_are_erofs(mount):
    m = mount()
    assert errno_of(open, m.path("hello.txt"), "wb") == errno.EROFS
    assert errno_of(open, m.path("hello.txt"), "ab") == errno.EROFS
    assert errno_of(open, m.path("new.txt"), "wb") == errno.EROFS
    assert errno_of(os.unlink, m.path("hello.txt")) == errno.EROFS
    assert errno_of(os.mkdir, m.path("newdir")) == errno.EROFS
    assert errno_of(os.rmdir, m.path("empty")) == errno.EROFS
    assert errno_of(os.rename, m.path("hello.txt"), m.path("moved.txt")) == errno.EROFS
    assert errno_of(os.symlink, "hello.txt", m.path("link")) == errno.EROFS
    assert errno_of(os.chmod, m.path("hello.txt"), 0o777) == errno.EROFS
    assert errno_of(os.truncate, m.path("hello.txt"), 0) == errno.EROFS
    for cmd in (["rm", "-f", m.path("hello.txt")], ["mkdir", m.path("d2")],
                ["mv", m.path("hello.txt"), m.path("x")], ["touch", m.path("hello.txt")]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode != 0 and "Read-only file system" in proc.stderr, cmd
    assert os.path.getsize(m.path("hello.txt")) == 18


def run_irsafs(args, env, timeout=60):
    mnt = tempfile.mkdtemp(prefix="irsafs-mnt-")
    try:
        proc = subprocess.run([irsafs_bin(), *args, mnt] if args and args[-1] != "--no-mnt"
                              else [irsafs_bin(), *args[:-1]], env=env, capture_output=True,
                              text=True, timeout=timeout)
        mounted = os.path.ismount(mnt)
        if mounted:
            subprocess.run(["fusermount3", "-u", "-z", mnt])
        return proc, mounted
    finally:
        if not os.path.ismount(mnt):
            os.rmdir(mnt)


def assert_one_clear_line(proc, *words):
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    errors = [l for l in lines if "error" in l]
    assert errors, proc.stderr
    for w in words:
        assert w in proc.stderr, (w, proc.stderr)
    assert "AddressSanitizer" not in proc.stderr and "runtime error" not in proc.stderr


def test_daemon_mode_exit_status_says_mounted(testbed):
    mnt = tempfile.mkdtemp(prefix="irsafs-mnt-")
    try:
        proc = subprocess.run([irsafs_bin(), "demo-bucket", mnt], env=pod_env(testbed),
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert os.path.ismount(mnt)
        assert "hello.txt" in os.listdir(mnt)
    finally:
        subprocess.run(["fusermount3", "-u", "-z", mnt])
        os.rmdir(mnt)


def test_missing_bucket_fails_the_mount(testbed):
    proc, mounted = run_irsafs(["-f", "no-such-bucket"], pod_env(testbed))
    assert proc.returncode == 1 and not mounted
    assert_one_clear_line(proc, "bucket no-such-bucket does not exist")


def test_missing_bucket_fails_in_daemon_mode(testbed):
    proc, mounted = run_irsafs(["no-such-bucket"], pod_env(testbed))
    assert proc.returncode == 1 and not mounted
    assert "bucket no-such-bucket does not exist" in proc.stderr


def test_wrong_role_names_role_code_and_causes(testbed):
    env = pod_env(testbed, AWS_ROLE_ARN="arn:aws:iam:::role/no-such-role")
    proc, mounted = run_irsafs(["-f", "demo-bucket"], env)
    assert proc.returncode == 1 and not mounted
    assert_one_clear_line(proc, "arn:aws:iam:::role/no-such-role", "AccessDenied",
                          "trust policy", "eks.amazonaws.com/role-arn")


@pytest.mark.parametrize("claims", [["-s", "system:serviceaccount:demo:intruder"],
                                    ["-a", "not-sts"], ["-t", "-120"]],
                         ids=["wrong-subject", "wrong-audience", "expired"])
def test_bad_token_fails_closed(testbed, tmp_path, claims):
    tok = str(tmp_path / "token")
    testbed.mint(tok, *claims)
    env = pod_env(testbed, AWS_WEB_IDENTITY_TOKEN_FILE=tok,
                  # Even with static keys around, nothing falls back... they would win by
                  # precedence, so leave them out: the point is no other identity is tried.
                  )
    proc, mounted = run_irsafs(["-f", "demo-bucket"], env)
    assert proc.returncode == 1 and not mounted
    assert_one_clear_line(proc, "AssumeRoleWithWebIdentity", "AccessDenied")
    assert "mounted" not in proc.stderr


def test_token_file_missing(testbed):
    env = pod_env(testbed, AWS_WEB_IDENTITY_TOKEN_FILE="/nonexistent/token")
    proc, mounted = run_irsafs(["-f", "demo-bucket"], env)
    assert proc.returncode == 1 and not mounted
    assert_one_clear_line(proc, "/nonexistent/token", "No such file")


def test_half_configured_irsa_is_an_error(testbed):
    env = pod_env(testbed, AWS_WEB_IDENTITY_TOKEN_FILE=None)
    proc, mounted = run_irsafs(["-f", "demo-bucket"], env)
    assert proc.returncode == 1 and not mounted
    assert_one_clear_line(proc, "AWS_ROLE_ARN is set but AWS_WEB_IDENTITY_TOKEN_FILE is not")


def test_no_credentials_at_all(testbed):
    env = pod_env(testbed, AWS_WEB_IDENTITY_TOKEN_FILE=None, AWS_ROLE_ARN=None)
    proc, mounted = run_irsafs(["-f", "demo-bucket"], env)
    assert proc.returncode == 1 and not mounted
    assert_one_clear_line(proc, "no credentials", "AWS_ROLE_ARN")


def test_unreachable_endpoint_fails_within_budget(testbed):
    # A closed loopback port: connection refused, retried, then a clear failure.
    env = pod_env(testbed, AWS_ENDPOINT_URL="http://127.0.0.1:9")
    proc, mounted = run_irsafs(["-f", "--operation-timeout", "3", "demo-bucket"], env)
    assert proc.returncode == 1 and not mounted
    assert "127.0.0.1:9" in proc.stderr


@pytest.mark.parametrize("args,word", [
    (["--file-mode", "999", "b", "/mnt", "--no-mnt"], "--file-mode '999'"),
    (["--uid", "root", "b", "/mnt", "--no-mnt"], "--uid 'root'"),
    (["--list-page-size", "0", "b", "/mnt", "--no-mnt"], "--list-page-size '0'"),
    (["--endpoint-url", "ftp://x", "b", "/mnt", "--no-mnt"], "--endpoint-url 'ftp://x'"),
    (["--bogus", "b", "/mnt", "--no-mnt"], "unknown"),
    (["onlybucket", "--no-mnt"], "expected BUCKET and MOUNTPOINT"),
])
def test_bad_flags_give_one_line_and_exit_2(testbed, args, word):
    proc, _ = run_irsafs(args, pod_env(testbed))
    assert proc.returncode == 2, proc.stderr
    assert word in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_help_and_version(testbed):
    proc, _ = run_irsafs(["--help", "--no-mnt"], pod_env(testbed))
    assert proc.returncode == 0 and "usage: irsafs" in proc.stdout
    proc, _ = run_irsafs(["--version", "--no-mnt"], pod_env(testbed))
    assert proc.returncode == 0 and proc.stdout.startswith("irsafs ")


def test_debug_log_never_holds_the_token(testbed, mount):
    m = mount("demo-bucket", "--debug")
    os.listdir(m.dir)
    with open(m.path("hello.txt"), "rb") as f:
        f.read()
    with open(testbed.pod_env["AWS_WEB_IDENTITY_TOKEN_FILE"]) as f:
        token = f.read().strip()
    log = m.log()
    assert token not in log
    for part in token.split("."):
        assert part not in log
    assert "Authorization" not in log and "X-Amz-Security-Token" not in log
