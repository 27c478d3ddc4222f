"""The shipped sidecar (packaging/kubernetes/pod-sidecar.yaml), run the way a
node runs it: its probes and its irsafs arguments are taken from the manifest
text, so these tests check what ships.

A Pod is simulated with mount namespaces on this host:
- the node: a private mount namespace in which a tmpfs on /mnt stands for the
  node's disk and a second tmpfs on /mnt/s3, made shared, stands for the
  emptyDir (like the real one, it is a mount point before irsafs mounts);
- the sidecar runs in the node's namespace (Bidirectional propagation: its
  mounts are the node's);
- the app: a child namespace whose /mnt/s3 is a slave of the node's
  (HostToContainer): it sees what the sidecar mounts, and only that way.
The test reads through /proc/PID/root of each namespace's holder process.
"""
import errno
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import SRC, irsafs_bin, pod_env, sha256_file

sys.path.insert(0, os.path.join(SRC, "tests"))
import faultproxy  # noqa: E402

MANIFEST = os.path.join(SRC, "packaging", "kubernetes", "pod-sidecar.yaml")
PREFIX = "dir"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces and tmpfs need root")


def shipped():
    """The sidecar and app containers of pod-sidecar.yaml, placeholders filled in."""
    with open(MANIFEST) as f:
        text = f.read()
    values = {"BUCKET": "demo-bucket", "PREFIX": PREFIX}
    text = re.sub(r"\$\{([A-Z0-9_]+)\}", lambda m: values.get(m.group(1), "x"), text)
    pod = yaml.safe_load(text)
    side = [c for c in pod["spec"]["initContainers"] if c.get("restartPolicy") == "Always"][0]
    return side, pod["spec"]["containers"][0]


def wait_until(pred, what, limit=30, proc=None):
    deadline = time.monotonic() + limit
    while not pred():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"irsafs exited {proc.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Pod:
    def __init__(self, testbed, tmp_path):
        self.testbed = testbed
        self.tmp = tmp_path
        self.side, self.app = shipped()
        self.volume = self.side["volumeMounts"][0]["mountPath"]
        assert self.app["volumeMounts"][0]["mountPath"] == self.volume
        self.mountpoint = self.side["args"][-1]
        self.irsafs = None
        self.logs = []
        setup = (f"mount -t tmpfs node /mnt && mkdir -p {self.volume} && "
                 f"mount -t tmpfs emptydir {self.volume} && mount --make-shared {self.volume} && "
                 f"echo ready && exec sleep 3600")
        self.node = self._holder(["unshare", "-m", "--propagation", "private", "--",
                                  "sh", "-c", setup])
        self.app_ns = self._holder(["nsenter", "-t", str(self.node.pid), "-m", "--",
                                    "unshare", "-m", "--propagation", "unchanged", "--", "sh",
                                    "-c", f"mount --make-rslave {self.volume} && echo ready && "
                                    f"exec sleep 3600"])

    @staticmethod
    def _holder(argv):
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        line = p.stdout.readline()
        if line.strip() != b"ready":
            p.kill()
            p.wait()
            raise AssertionError(f"{argv}: did not start (said {line!r})")
        return p

    def node_path(self, *parts):
        return os.path.join(f"/proc/{self.node.pid}/root" + self.mountpoint, *parts)

    def app_path(self, *parts):
        return os.path.join(f"/proc/{self.app_ns.pid}/root" + self.mountpoint, *parts)

    def in_node(self, argv, **kw):
        argv = [irsafs_bin() if a == "irsafs" else a for a in argv]
        return subprocess.run(["nsenter", "-t", str(self.node.pid), "-m", "--", *argv],
                              capture_output=True, text=True, timeout=60, **kw)

    def probe(self, kind):
        """Run the manifest's startupProbe, livenessProbe or readinessProbe; its exit status."""
        r = self.in_node(self.side[kind]["exec"]["command"])
        return r.returncode, r.stdout + r.stderr

    def start(self, env=None):
        """Start irsafs with the manifest's arguments, as the sidecar container does."""
        log = open(self.tmp / f"irsafs-{len(self.logs)}.log", "w+b")
        self.logs.append(log)
        self.irsafs = subprocess.Popen(
            ["nsenter", "-t", str(self.node.pid), "-m", "--", irsafs_bin(), *self.side["args"]],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env or pod_env(self.testbed))
        for kind in ("startupProbe", "livenessProbe"):
            wait_until(lambda: self.probe(kind)[0] == 0, f"the {kind} to pass",
                       proc=self.irsafs)
        return self.irsafs

    def log(self, i=-1):
        self.logs[i].seek(0)
        return self.logs[i].read().decode("utf-8", "replace")

    def app_reads(self, rel):
        """rel as the app's user reads it in the app's namespace: (exit status, bytes)."""
        uid = str(self.app["securityContext"]["runAsUser"])
        gid = str(self.app["securityContext"]["runAsGroup"])
        r = subprocess.run(["nsenter", "-t", str(self.app_ns.pid), "-m", "--", "setpriv",
                            "--reuid", uid, "--regid", gid, "--clear-groups", "cat",
                            os.path.join(self.mountpoint, rel)],
                           capture_output=True, timeout=60)
        return r.returncode, r.stdout

    def close(self):
        if self.irsafs and self.irsafs.poll() is None:
            self.irsafs.send_signal(signal.SIGCONT)
            self.irsafs.terminate()
            try:
                self.irsafs.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.irsafs.kill()
                self.irsafs.wait()
        # Killing the holders ends their namespaces, and every mount in them.
        for p in (self.app_ns, self.node):
            p.kill()
            p.wait()
        for log in self.logs:
            log.close()


@pytest.fixture
def pod(testbed, tmp_path):
    p = Pod(testbed, tmp_path)
    yield p
    p.close()


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def json_levels(text):
    return [json.loads(x)["level"] for x in text.splitlines() if x.startswith("{")]


def test_the_startup_probe_waits_for_the_fuse_mount_not_the_emptydir(pod, testbed):
    # The old probe passed on the bare emptyDir, which is a mount point already.
    assert pod.in_node(["mountpoint", "-q", pod.volume]).returncode == 0
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        rc, out = pod.probe(kind)
        assert rc != 0, f"{kind} passed before irsafs mounted: {out}"
    pod.start()
    # The emptyDir starts empty: irsafs made its mount point there.
    assert "created the mount point " + pod.mountpoint in pod.log()
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        rc, out = pod.probe(kind)
        assert rc == 0, f"{kind} failed on a live mount: {out}"
    # The app (another namespace, HostToContainer) reads the bucket as its own user.
    rc, data = pod.app_reads("a.txt")
    assert rc == 0 and sha256_hex(data) == testbed.objects()["dir/a.txt"]["sha256"]
    assert set(json_levels(pod.log())) <= {"notice", "info"}, pod.log()


def test_a_killed_sidecar_comes_back_and_the_app_reads_again(pod, testbed):
    want = testbed.objects()["dir/a.txt"]["sha256"]
    first = pod.start()
    assert pod.app_reads("a.txt")[1] and sha256_file(pod.app_path("a.txt")) == want
    first.kill()            # what the OOM killer does
    first.wait()
    # The mount is dead, but the volume's root is a plain directory: the
    # runtime can stat it, so the restarted container can be created.
    with pytest.raises(OSError) as e:
        os.statvfs(pod.node_path())
    assert e.value.errno == errno.ENOTCONN
    os.stat(f"/proc/{pod.node.pid}/root{pod.volume}")
    os.stat(f"/proc/{pod.app_ns.pid}/root{pod.volume}")
    # Every probe of the restarted container fails until it has mounted
    # again: the dead mount is still in the mount table.
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        rc, out = pod.probe(kind)
        assert rc != 0 and "dead irsafs mount" in out, f"{kind}: {out}"
    assert pod.app_reads("a.txt")[0] != 0

    # The restarted sidecar: the same arguments, the same (dead) mount point.
    pod.start()
    assert "was a dead mount of demo-bucket" in pod.log()
    assert pod.probe("livenessProbe")[0] == 0
    rc, data = pod.app_reads("a.txt")
    assert rc == 0 and sha256_hex(data) == want
    assert sha256_file(pod.app_path("a.txt")) == want


def all_stopped(pid):
    states = []
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/stat") as f:
            states.append(f.read().rsplit(")", 1)[1].split()[0])
    return all(s in ("T", "t") for s in states)


def test_liveness_fails_for_a_hung_daemon_and_passes_while_s3_throttles(pod, testbed):
    proxy = faultproxy.FaultProxy(upstream=("127.0.0.1", 7480)).start()
    try:
        env = pod_env(testbed, AWS_ENDPOINT_URL=proxy.url,
                      AWS_ENDPOINT_URL_STS=testbed.pod_env["AWS_ENDPOINT_URL"])
        daemon = pod.start(env)
        # Every S3 request is throttled from now on; a reader waits in retries.
        proxy.add("slowdown", kind="any")
        reader = subprocess.Popen(["cat", pod.node_path("sub", "deep.txt")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until(lambda: sum(proxy.stats()["injected"].values()) >= 2, "a throttled request")
        rc, out = pod.probe("livenessProbe")
        assert rc == 0, f"liveness failed while S3 throttles: {out}"
        assert reader.poll() is None, "the reader was not waiting on S3"
        # A stopped daemon answers nothing: the probe gives up and says so.
        daemon.send_signal(signal.SIGSTOP)
        try:
            wait_until(lambda: all_stopped(daemon.pid), "every irsafs thread to stop")
            rc, out = pod.probe("livenessProbe")
        finally:
            daemon.send_signal(signal.SIGCONT)
        assert rc != 0 and "did not answer" in out, out
        assert pod.probe("livenessProbe")[0] == 0
        proxy.clear()
        reader.wait(timeout=60)
    finally:
        proxy.stop()


def test_a_second_irsafs_on_a_live_mount_refuses_to_stack(pod, testbed):
    pod.start()
    r = pod.in_node([irsafs_bin(), *pod.side["args"]], env=pod_env(testbed))
    assert r.returncode == 1
    assert "already an irsafs mount (of demo-bucket)" in r.stdout + r.stderr
    assert pod.probe("livenessProbe")[0] == 0


def test_a_dead_mount_of_another_file_system_is_left_alone(tmp_path, testbed):
    # Only irsafs's own dead mounts are detached: a dead sshfs (here a FUSE
    # mount whose daemon is gone, of another type) is reported, not touched.
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    mnt = tmp_path / "other"
    mnt.mkdir()
    fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    data = f"fd={fd},rootmode=40000,user_id=0,group_id=0".encode()
    if libc.mount(b"u@h:/", str(mnt).encode(), b"fuse.sshfs", 1, data) != 0:
        os.close(fd)
        pytest.fail("mount(2) failed: " + os.strerror(ctypes.get_errno()))
    try:
        os.close(fd)    # no daemon: the mount is dead
        r = subprocess.run([irsafs_bin(), "-f", "demo-bucket", str(mnt)], capture_output=True,
                           text=True, env=pod_env(testbed), timeout=60)
        assert r.returncode == 1
        assert "dead mount (transport endpoint not connected) of type fuse.sshfs" in r.stderr
        with open("/proc/self/mountinfo") as f:
            assert any(f" {mnt} " in x and "fuse.sshfs" in x for x in f)
    finally:
        libc.umount2(str(mnt).encode(), 2)


def test_the_mount_point_is_created_when_missing_but_not_its_parents(tmp_path, testbed):
    r = subprocess.run([irsafs_bin(), "-f", "demo-bucket", str(tmp_path / "a" / "b")],
                       capture_output=True, text=True, env=pod_env(testbed), timeout=60)
    assert r.returncode == 1
    assert "does not exist and cannot be created" in r.stderr
    assert not (tmp_path / "a").exists()
