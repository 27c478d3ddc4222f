"""The EKS path: irsafs exec (init containers), the lifecycle a Pod drives
(SIGTERM, SIGINT, SIGUSR1, busy mounts, a sidecar restarted over its dead
mount), log formats, a FUSE fd passed in by a privileged helper, and the
mount.irsafs helper that fstab and `mount -t irsafs` use."""
import ctypes
import errno
import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import BAD_LINE, Mount, irsafs_bin, pod_env, sha256_file

HELLO = b"hello from irsafs\n"
SUMMARY = re.compile(r"summary: objects opened (\d+), bytes read (\d+), S3 requests (\d+), "
                     r"listings (\d+), time ([\d.]+) s, ([\d.]+) MB/s, (\S+) exited (\d+)")


def run_exec(testbed, *args, env=None, timeout=120):
    mnt = tempfile.mkdtemp(prefix="irsafs-exec-")
    proc = subprocess.run([irsafs_bin(), "exec", *[a.replace("{MNT}", mnt) for a in args]],
                          stdin=subprocess.DEVNULL, capture_output=True,
                          env=env or pod_env(testbed), timeout=timeout)
    mounted = os.path.ismount(mnt)
    if mounted:
        subprocess.run(["fusermount3", "-u", "-z", mnt], check=False)
    os.rmdir(mnt)
    return proc, mnt, mounted


def clean_log(text, allowed=()):
    return [line for line in text.splitlines()
            if BAD_LINE.search(line) and not any(re.search(p, line) for p in allowed)]


def wait_for(pred, what, proc=None, limit=30):
    deadline = time.monotonic() + limit
    while not pred():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"irsafs exited {proc.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Daemon(Mount):
    """A foreground mount that the test stops itself (the fixture's unmount
    expects exit 0, and these tests check other statuses)."""

    def __init__(self, testbed, *args, expect_log=(), **env):
        super().__init__(testbed, "demo-bucket", list(args), pod_env(testbed, **env),
                         list(expect_log))

    def stop(self, sig):
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=60)
        return rc

    def cleanup(self):
        if os.path.ismount(self.dir):
            subprocess.run(["fusermount3", "-u", "-z", self.dir], check=False)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            os.rmdir(self.dir)
        except OSError:
            pass
        os.unlink(self.errfile.name)


@pytest.fixture
def daemon(testbed):
    made = []

    def make(*args, expect_log=(), **env):
        d = Daemon(testbed, *args, expect_log=expect_log, **env)
        made.append(d)
        return d

    yield make
    for d in made:
        d.cleanup()


# --- irsafs exec ----------------------------------------------------------

def test_exec_runs_the_command_on_the_mount_and_exits_with_its_status(testbed, tmp_path):
    out = tmp_path / "out"
    proc, mnt, mounted = run_exec(testbed, "demo-bucket", "{MNT}", "--", "sh", "-c",
                                  f'cat "$0/hello.txt" > {out}; exit 7', "{MNT}")
    err = proc.stderr.decode()
    assert proc.returncode == 7, err
    assert out.read_bytes() == HELLO
    assert not mounted, "exec left its mount behind"
    m = SUMMARY.search(err)
    assert m, err
    opened, nbytes, requests = int(m.group(1)), int(m.group(2)), int(m.group(3))
    assert (opened, nbytes) == (1, len(HELLO)), m.group(0)
    # At least the mount check's listing and the GET of hello.txt.
    assert requests >= 2, m.group(0)
    assert m.group(7) == "sh" and m.group(8) == "7"
    assert len(SUMMARY.findall(err)) == 1
    assert clean_log(err) == []


def test_exec_stages_a_tree_byte_for_byte(testbed, tmp_path):
    dest = tmp_path / "data"
    dest.mkdir()
    proc, _, mounted = run_exec(testbed, "--prefix", "dir", "demo-bucket", "{MNT}", "--",
                                "cp", "-a", "{MNT}/.", str(dest))
    assert proc.returncode == 0, proc.stderr.decode()
    assert not mounted
    want = testbed.visible_files(prefix="dir/")
    got = {os.path.relpath(os.path.join(r, f), dest): os.path.join(r, f)
           for r, _, fs in os.walk(dest) for f in fs}
    assert sorted(got) == sorted(want)
    for rel, meta in want.items():
        assert sha256_file(got[rel]) == meta["sha256"], rel
    m = SUMMARY.search(proc.stderr.decode())
    assert m and int(m.group(1)) == len(want)
    assert int(m.group(2)) == sum(v["size"] for v in want.values())


def test_exec_with_a_failed_mount_never_runs_the_command(testbed, tmp_path):
    marker = tmp_path / "ran"
    proc, _, mounted = run_exec(testbed, "no-such-bucket", "{MNT}", "--", "touch", str(marker))
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert not marker.exists()
    assert not mounted
    assert "bucket no-such-bucket does not exist" in err
    assert "summary:" not in err


def test_exec_without_a_command_is_a_usage_error(testbed):
    for args in (["demo-bucket", "/mnt"], ["demo-bucket", "/mnt", "--"]):
        proc = subprocess.run([irsafs_bin(), "exec", *args], capture_output=True, text=True,
                              env=pod_env(testbed))
        assert proc.returncode == 2
        assert "-- COMMAND" in proc.stderr


def test_exec_of_a_missing_command_exits_127_and_unmounts(testbed):
    proc, _, mounted = run_exec(testbed, "demo-bucket", "{MNT}", "--", "/no/such/program")
    err = proc.stderr.decode()
    assert proc.returncode == 127, err
    assert "cannot run /no/such/program: No such file or directory" in err
    assert not mounted


def test_exec_runs_a_script_without_shebang_with_sh(testbed, tmp_path):
    # execvp and shells run an executable the kernel refuses (ENOEXEC) with
    # /bin/sh; posix_spawnp does not, so irsafs exec once exited 126 here.
    script = tmp_path / "stage"
    out = tmp_path / "out"
    script.write_text(f'cat "$1/hello.txt" > {out}\nexit 3\n')
    script.chmod(0o755)
    env = pod_env(testbed)
    env["PATH"] = f"{tmp_path}:{env.get('PATH', '/usr/bin:/bin')}"
    for cmd in (str(script), "stage"):
        out.unlink(missing_ok=True)
        proc, _, mounted = run_exec(testbed, "demo-bucket", "{MNT}", "--", cmd, "{MNT}", env=env)
        err = proc.stderr.decode()
        assert proc.returncode == 3, err
        assert out.read_bytes() == HELLO
        assert not mounted


def test_exec_passes_sigterm_to_the_command(testbed, tmp_path):
    ready = tmp_path / "ready"
    mnt = tempfile.mkdtemp(prefix="irsafs-exec-")
    script = f'trap "exit 42" TERM; ls "$0" > /dev/null && touch {ready}; ' \
             f'while :; do sleep 0.05; done'
    proc = subprocess.Popen([irsafs_bin(), "exec", "demo-bucket", mnt, "--", "sh", "-c", script,
                             mnt], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=pod_env(testbed))
    try:
        wait_for(ready.exists, "the command to start", proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", "-z", mnt], check=False)
    assert proc.returncode == 42, err.decode()
    assert not os.path.ismount(mnt)
    os.rmdir(mnt)
    assert "sh exited 42" in err.decode()


# --- lifecycle ------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_unmounts_cleanly_and_exits_0(testbed, daemon, sig):
    d = daemon()
    with open(d.path("hello.txt"), "rb") as f:
        assert f.read() == HELLO
    assert d.stop(sig) == 0, d.log()
    assert not os.path.ismount(d.dir)
    assert "unmounting " + d.dir in d.log()
    assert d.unexpected_lines() == []


def test_stop_while_busy_detaches_lazily_serves_open_files_and_exits_3(testbed, daemon):
    # When the last file closes, the kernel ends the connection and may drop
    # the RELEASE it had queued for that file: irsafs then closes it at exit.
    d = daemon(expect_log=[r"is busy .*detached it lazily", r"closed 1 open file"])
    want = testbed.objects()["big.bin"]
    fd = os.open(d.path("big.bin"), os.O_RDONLY)
    try:
        head = os.pread(fd, 5, 0)
        d.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: not os.path.ismount(d.dir), "the lazy detach", d.proc)
        # Gone from the namespace, but the open file still reads, to the last byte.
        rest = b""
        while True:
            b = os.pread(fd, 1 << 20, 5 + len(rest))
            if not b:
                break
            rest += b
        assert hashlib.sha256(head + rest).hexdigest() == want["sha256"]
        assert d.proc.poll() is None, "irsafs exited while a file was still open"
    finally:
        os.close(fd)
    # The last close ends the connection; irsafs says it was busy.
    assert d.proc.wait(timeout=60) == 3, d.log()
    assert "is busy" in d.log() and "serving the files still open" in d.log()
    assert d.unexpected_lines() == []


def fuse_connection(path):
    """The directory of path's FUSE connection under /sys/fs/fuse/connections."""
    dev = os.stat(path).st_dev
    conn = f"/sys/fs/fuse/connections/{os.minor(dev)}"
    if not os.path.isdir(conn) and not os.path.ismount("/sys/fs/fuse/connections"):
        subprocess.run(["mount", "-t", "fusectl", "fusectl", "/sys/fs/fuse/connections"],
                       check=False, capture_output=True)
    if not os.path.isdir(conn):
        pytest.skip("no fusectl: cannot mount /sys/fs/fuse/connections")
    return conn


def test_a_connection_aborted_after_the_stop_exits_3_and_closes_what_is_open(testbed, daemon):
    # Once the connection is aborted the kernel never sends the RELEASE of the
    # file or the RELEASEDIR of the directory still open: irsafs closes them
    # at exit (LeakSanitizer, on in the ASan run, sees the leak otherwise).
    # However the kernel ends the connection (gone, or aborted), the stop
    # signal came first: the exit is the busy one.
    d = daemon(expect_log=[r"is busy .*detached it lazily", r"closed 2 open files or directories"])
    size = testbed.objects()["big.bin"]["size"]
    fd = os.open(d.path("big.bin"), os.O_RDONLY)
    dfd = os.open(d.dir, os.O_RDONLY | os.O_DIRECTORY)
    assert "big.bin" in os.listdir(dfd)
    try:
        assert len(os.pread(fd, 1 << 20, 0)) == 1 << 20
        conn = fuse_connection(d.path("big.bin"))
        d.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: not os.path.ismount(d.dir), "the lazy detach", d.proc)
        with open(os.path.join(conn, "abort"), "w") as f:
            f.write("1")
        with pytest.raises(OSError) as e:
            os.pread(fd, 4096, size - 4096)  # never read: not in the page cache
        assert e.value.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    finally:
        try:
            os.close(fd)  # the flush fails on a dead connection; the fd is closed
        except OSError:
            pass
        os.close(dfd)
    assert d.proc.wait(timeout=60) == 3, d.log()
    assert "closed 2 open files or directories whose release the kernel dropped" in d.log()
    assert d.unexpected_lines() == []


def test_external_unmount_exits_0(testbed, daemon):
    d = daemon()
    subprocess.run(["fusermount3", "-u", d.dir], check=True)
    assert d.proc.wait(timeout=60) == 0, d.log()


def test_sigusr1_writes_the_counters_to_the_log(testbed, daemon):
    d = daemon()
    with open(d.path("hello.txt"), "rb") as f:
        assert f.read() == HELLO
    d.proc.send_signal(signal.SIGUSR1)
    wait_for(lambda: "counters:" in d.log(), "the counters line", d.proc)
    line = [x for x in d.log().splitlines() if "counters:" in x][0]
    assert re.search(r"objects opened 1, bytes read 18, S3 requests \d+, listings \d+$", line), line
    # The signal did not stop the mount.
    with open(d.path("hello.txt"), "rb") as f:
        assert f.read() == HELLO
    assert d.stop(signal.SIGTERM) == 0, d.log()
    assert d.unexpected_lines() == []


def test_a_restarted_sidecar_replaces_its_dead_mount(testbed, daemon):
    first = daemon()
    first.proc.kill()
    first.proc.wait()
    with pytest.raises(OSError) as e:
        os.statvfs(first.dir)
    assert e.value.errno == errno.ENOTCONN
    # The same directory, as a restarted sidecar container would use it.
    proc = subprocess.Popen([irsafs_bin(), "-f", "demo-bucket", first.dir],
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=pod_env(testbed))
    try:
        wait_for(lambda: os.path.exists(os.path.join(first.dir, "hello.txt")),
                 "the new mount", proc)
        with open(os.path.join(first.dir, "hello.txt"), "rb") as f:
            assert f.read() == HELLO
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    assert "was a dead mount" in err.decode()
    assert not os.path.ismount(first.dir)


# --- logs -----------------------------------------------------------------

def test_json_log_format_gives_one_object_per_line(testbed, daemon):
    d = daemon("--log-format", "json")
    with open(d.path("hello.txt"), "rb") as f:
        f.read()
    assert d.stop(signal.SIGTERM) == 0, d.log()
    lines = d.log().splitlines()
    assert lines
    records = [json.loads(x) for x in lines]
    for r in records:
        assert set(r) == {"time", "level", "tag", "msg"}, r
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["time"])
        assert r["level"] in ("error", "warning", "notice", "info", "debug")
    msgs = [r["msg"] for r in records]
    assert any(m == f"mounted s3://demo-bucket/ on {d.dir}, read-only" for m in msgs), msgs
    assert any(m.startswith("identity: arn:aws:sts:::assumed-role/s3-reader/") for m in msgs)


def test_log_level_error_keeps_only_errors(testbed, daemon):
    d = daemon("--log-level", "error")
    os.listdir(d.dir)
    assert d.stop(signal.SIGTERM) == 0, d.log()
    assert d.log() == ""


def test_bad_log_flags_are_usage_errors(testbed):
    for args in (["--log-format", "xml"], ["--log-level", "loud"]):
        proc = subprocess.run([irsafs_bin(), *args, "demo-bucket", "/mnt"], capture_output=True,
                              text=True, env=pod_env(testbed))
        assert proc.returncode == 2
        assert args[0] in proc.stderr


# --- a FUSE fd passed in by a privileged helper (CSI style) ----------------

def test_mountpoint_dev_fd_n_serves_a_mount_made_by_someone_else(testbed, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting /dev/fuse by hand needs root")
    libc = ctypes.CDLL(None, use_errno=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    try:
        # What a privileged helper does: mount with the fd, then hand the fd over.
        data = f"fd={fd},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
        if libc.mount(b"irsafs", str(mnt).encode(), b"fuse.irsafs", 1, data) != 0:  # MS_RDONLY
            pytest.fail("mount(2) failed: " + os.strerror(ctypes.get_errno()))
        proc = subprocess.Popen([irsafs_bin(), "-f", "demo-bucket", f"/dev/fd/{fd}"],
                                stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=pod_env(testbed), pass_fds=(fd,))
    finally:
        os.close(fd)
    try:
        with open(mnt / "hello.txt", "rb") as f:
            assert f.read() == HELLO
        assert sha256_file(mnt / "dir" / "a.txt") == testbed.objects()["dir/a.txt"]["sha256"]
        assert stat.S_IMODE(os.stat(mnt / "hello.txt").st_mode) == 0o444
        # The helper unmounts; irsafs sees the connection end and exits 0.
        assert libc.umount2(str(mnt).encode(), 0) == 0, os.strerror(ctypes.get_errno())
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        if os.path.ismount(mnt):
            libc.umount2(str(mnt).encode(), 2)
    assert proc.returncode == 0, err.decode()
    assert f"on /dev/fd/{fd}, read-only" in err.decode()
    assert clean_log(err.decode()) == []


# --- mount.irsafs (fstab, mount -t irsafs) --------------------------------

def mount_helper():
    path = os.environ.get("MOUNT_IRSAFS")
    if not path or not os.access(path, os.X_OK):
        pytest.skip("MOUNT_IRSAFS is not set to the built mount.irsafs (run through meson test)")
    return path


def test_mount_helper_maps_fstab_options_and_detaches(testbed, tmp_path):
    helper = mount_helper()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = pod_env(testbed, IRSAFS_BIN=irsafs_bin())
    proc = subprocess.run([helper, "demo-bucket", str(mnt), "-o",
                           "rw,prefix=dir,allow_other,uid=1234,gid=2345,file_mode=0440,"
                           "_netdev,nofail,noauto,x-systemd.automount,defaults"],
                          capture_output=True, text=True, env=env, timeout=120)
    try:
        assert proc.returncode == 0, proc.stderr
        assert os.path.ismount(mnt), "the helper returned before the mount was ready"
        assert sorted(os.listdir(mnt)) == ["a.txt", "sub"]
        st = os.stat(mnt / "a.txt")
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 2345, 0o440)
        with open("/proc/self/mountinfo") as f:
            line = [x for x in f if f" {mnt} " in x][0]
        assert "allow_other" in line and " ro" in line and "fuse.irsafs" in line
    finally:
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", str(mnt)], check=False)


def test_mount_helper_rejects_unknown_options(testbed, tmp_path):
    helper = mount_helper()
    proc = subprocess.run([helper, "demo-bucket", str(tmp_path), "-o", "prefix=dir,colour=blue"],
                          capture_output=True, text=True,
                          env=pod_env(testbed, IRSAFS_BIN=irsafs_bin()))
    assert proc.returncode != 0
    assert "colour=blue" in proc.stderr
    assert not os.path.ismount(tmp_path)


def test_mount_helper_fake_mount_does_nothing(testbed, tmp_path):
    helper = mount_helper()
    proc = subprocess.run([helper, "demo-bucket", str(tmp_path), "-f", "-v", "-o", "prefix=dir"],
                          capture_output=True, text=True,
                          env=pod_env(testbed, IRSAFS_BIN=irsafs_bin()))
    assert proc.returncode == 0, proc.stderr
    assert "--prefix dir" in proc.stdout + proc.stderr
    assert not os.path.ismount(tmp_path)


def help_options():
    """(name, takes a value) for every long option irsafs --help lists."""
    out = subprocess.run([irsafs_bin(), "--help"], capture_output=True, text=True,
                         check=True).stdout
    opts = []
    for line in out.splitlines():
        if not line.startswith("  -"):
            continue
        term = re.split(r"\s{2,}", line.strip())[0]
        for m in re.finditer(r"--([a-z][a-z-]*)( [A-Z]+)?", term):
            opts.append((m.group(1), bool(m.group(2))))
    assert len(opts) > 20, out
    return opts


# The helper runs irsafs detached; these make no sense as mount options.
NOT_MOUNT_OPTIONS = {"foreground", "help", "version"}


def test_mount_helper_accepts_every_option_irsafs_has(testbed, tmp_path):
    helper = mount_helper()
    opts = [(n, v) for n, v in help_options() if n not in NOT_MOUNT_OPTIONS]
    mapped = []
    for i, (name, takes_value) in enumerate(opts):
        # Underscores, as fstab lines spell them; dashes work too.
        spelled = name.replace("-", "_") if i % 2 else name
        mapped.append((f"{spelled}=v{i}" if takes_value else spelled,
                       f"--{name} v{i}" if takes_value else f"--{name}"))
    proc = subprocess.run([helper, "demo-bucket", str(tmp_path), "-f", "-v", "-o",
                           ",".join(o for o, _ in mapped)],
                          capture_output=True, text=True,
                          env=pod_env(testbed, IRSAFS_BIN=irsafs_bin()))
    assert proc.returncode == 0, proc.stderr
    for o, flag in mapped:
        assert f" {flag} " in proc.stdout, (o, flag, proc.stdout)
    for name in NOT_MOUNT_OPTIONS:
        proc = subprocess.run([helper, "demo-bucket", str(tmp_path), "-f", "-o", name],
                              capture_output=True, text=True,
                          env=pod_env(testbed, IRSAFS_BIN=irsafs_bin()))
        assert proc.returncode == 2 and f"unknown mount option '{name}'" in proc.stderr


def test_mount_helper_refuses_a_value_for_a_flag_and_none_for_an_option(testbed, tmp_path):
    helper = mount_helper()
    for o, want in (("strict=yes", "takes no value"), ("prefix", "needs a value")):
        proc = subprocess.run([helper, "demo-bucket", str(tmp_path), "-f", "-o", o],
                              capture_output=True, text=True,
                              env=pod_env(testbed, IRSAFS_BIN=irsafs_bin()))
        assert proc.returncode == 2 and want in proc.stderr, proc.stderr


def test_the_same_mount_twice_leaves_one_mount(testbed, tmp_path):
    helper = mount_helper()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = pod_env(testbed, IRSAFS_BIN=irsafs_bin())
    argv = [helper, "demo-bucket", str(mnt), "-o", "prefix=dir,_netdev"]
    try:
        first = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        assert first.returncode == 0, first.stderr
        second = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode == 1
        assert f"{mnt} is already an irsafs mount (of demo-bucket)" in second.stderr
        with open("/proc/self/mountinfo") as f:
            lines = [x for x in f if f" {mnt} " in x]
        assert len(lines) == 1, lines
        # Named as the fstab line names it, so mount -a sees it is mounted.
        assert " - fuse.irsafs demo-bucket " in lines[0]
        assert sorted(os.listdir(mnt)) == ["a.txt", "sub"]
    finally:
        for _ in range(3):
            if os.path.ismount(mnt):
                subprocess.run(["fusermount3", "-u", "-z", str(mnt)], check=False)


# --- the IAM templates, applied to the testbed's IAM and STS ---------------

def template(name, **values):
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "packaging", "kubernetes", name)
    with open(path) as f:
        text = f.read()
    return re.sub(r"\$\{([A-Z0-9_]+)\}", lambda m: values[m.group(1)], text)


# (PREFIX as a user types it, the policy file, the key the role may read,
# one the role must not read)
RENDERINGS = [
    ("team-a", "iam-policy.json", "team-a/x.txt", "team-b/x.txt"),
    ("team-a/", "iam-policy.json", "team-a/sub/y.txt", "team-b/x.txt"),
    ("", "iam-policy-bucket.json", "hello.txt", None),
]


def key_prefix(prefix):
    """What the README derives: one trailing slash, or empty for the whole bucket."""
    out = subprocess.run(["sh", "-c", "printf %s \"$1\" | sed 's|^/*||; s|/*$||; s|.$|&/|'",
                          "sh", prefix], capture_output=True, text=True, check=True).stdout
    return out


@pytest.mark.parametrize("prefix,policy_file,allowed,denied", RENDERINGS,
                         ids=["prefix", "prefix-with-slash", "whole-bucket"])
def test_the_iam_and_trust_policy_templates_grant_exactly_the_prefix(testbed, mount, tmp_path,
                                                                     prefix, policy_file,
                                                                     allowed, denied):
    import s3admin
    values = dict(AWS_ACCOUNT_ID="", OIDC_PROVIDER="127.0.0.1:8088", NAMESPACE="demo",
                  SERVICE_ACCOUNT="irsafs-template", BUCKET="demo-bucket", PREFIX=prefix,
                  KEY_PREFIX=key_prefix(prefix))
    trust = template("trust-policy.json", **values)
    policy = template(policy_file, **values)
    doc = json.loads(policy)
    for st in doc["Statement"]:
        for r in [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]:
            assert "//" not in r.split(":::", 1)[-1], r
    iam = s3admin.Client.from_env_file(os.path.join(testbed.dir, "state", "iamadmin.env"))
    role = "irsafs-eks-template"
    r = iam.iam("CreateRole", {"RoleName": role, "Path": "/", "AssumeRolePolicyDocument": trust},
                check=False)
    if not r.ok:  # made by an earlier run: bring it up to date
        assert r.error_code == "EntityAlreadyExists", r
        iam.iam("UpdateAssumeRolePolicy", {"RoleName": role, "PolicyDocument": trust})
    iam.iam("PutRolePolicy", {"RoleName": role, "PolicyName": "irsafs-read",
                              "PolicyDocument": policy})
    token = str(tmp_path / "token")
    testbed.mint(token, "-s", "system:serviceaccount:demo:irsafs-template")
    env = pod_env(testbed, AWS_ROLE_ARN=f"arn:aws:iam:::role/{role}",
                  AWS_WEB_IDENTITY_TOKEN_FILE=token)

    m = mount("demo-bucket", "--prefix", prefix, env=env)
    mounted = key_prefix(prefix)
    # Every file's top-level name lists (folder markers add empty directories).
    want = {x.split("/")[0] for x in testbed.visible_files(prefix=mounted)}
    assert want <= set(os.listdir(m.dir))
    rel = allowed[len(mounted):]
    assert sha256_file(m.path(rel)) == testbed.objects()[allowed]["sha256"]
    if denied:
        # The rest of the bucket is out of reach: listing it is denied.
        rest = denied.rsplit("/", 1)[0]
        proc = subprocess.run([irsafs_bin(), "exec", "--prefix", rest, "demo-bucket",
                               str(tmp_path), "--", "ls", str(tmp_path)],
                              capture_output=True, text=True, env=env)
        assert proc.returncode != 0
        assert "Permission denied" in proc.stderr
    # The trust policy admits only its service account.
    other = str(tmp_path / "other-token")
    testbed.mint(other, "-s", "system:serviceaccount:demo:someone-else")
    proc = subprocess.run([irsafs_bin(), "-f", "demo-bucket", str(tmp_path)], capture_output=True,
                          text=True, env=dict(env, AWS_WEB_IDENTITY_TOKEN_FILE=other))
    assert proc.returncode == 1
    assert "AccessDenied" in proc.stderr
