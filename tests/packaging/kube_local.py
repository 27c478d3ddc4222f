#!/usr/bin/python3
"""Render a shipped Pod manifest (packaging/kubernetes/pod-*.yaml) for
`podman kube play` against the local testbed; used by check-image.sh.

    kube_local.py MANIFEST OUT.yaml VOLDIR KEY=VALUE...

KEY=VALUE pairs fill the manifest's ${NAME} placeholders (every one used must
be given). Besides that, the Pod is changed only where podman or the testbed
differ from an EKS node, each change named here:
  - what the EKS Pod Identity webhook adds to a Pod whose ServiceAccount has
    a role: AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE and the projected token
    (here the testbed's token directory, as a hostPath), in every container
    that runs the irsafs image (TESTBED_ROLE_ARN, TESTBED_TOKEN_DIR);
  - AWS_ENDPOINT_URL (TESTBED_ENDPOINT), since the testbed is not AWS;
  - hostNetwork, since the testbed listens on the host's 127.0.0.1;
  - images: debian:12-slim becomes APP_IMAGE, and nothing is pulled;
  - a native sidecar (an init container with restartPolicy: Always, Kubernetes
    1.29) becomes the first ordinary container: podman 4.3 runs every init
    container to completion before the app starts, so it would wait forever;
  - a Pod with init containers gets restartPolicy: Never: podman 4.3 gives
    its init containers the Pod's restart policy, so under the default
    (Always) a finished init container runs again and again;
  - probes are taken out: podman 4.3 runs a livenessProbe through systemd
    timers (there may be no systemd) and ignores the others. The exec probes
    of the irsafs containers are written to OUT.probes instead, one shell-quoted
    command per line, "CONTAINER COMMAND...", for the test to run itself;
  - an emptyDir becomes a hostPath directory VOLDIR/NAME: podman's emptyDir
    is a named volume, and mount propagation works only on bind mounts.
Prints shell assignments for the test: POD, each container's podman name
(CTR_<NAME>), APP_PATH and, for a sidecar, SHARED_DIR. APP_PATH is where the
app should see the data: for a sidecar, its mount point carried over to the
app's volumeMount of the same volume; for an init container, the app's
volumeMount of a volume the init container writes to. SHARED_DIR is the host
directory of the sidecar's shared volume.
"""

import os
import re
import shlex
import sys

import yaml

TOKEN_MOUNT = "/var/run/secrets/eks.amazonaws.com/serviceaccount"


def fail(msg):
    sys.exit("kube_local.py: error: " + msg)


def substitute(text, values):
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))
    missing = sorted(used - set(values))
    if missing:
        fail("no value given for placeholder(s) " + ", ".join(missing))
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: values[m.group(1)], text)


def shell_name(name):
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def main():
    if len(sys.argv) < 4:
        fail("usage: kube_local.py MANIFEST OUT.yaml VOLDIR KEY=VALUE...")
    src, out, voldir = sys.argv[1:4]
    values = dict(a.split("=", 1) for a in sys.argv[4:])
    for k in ("IMAGE", "APP_IMAGE", "TESTBED_ROLE_ARN", "TESTBED_TOKEN_DIR", "TESTBED_ENDPOINT"):
        if k not in values:
            fail("%s=... is required" % k)
    with open(src, encoding="utf-8") as f:
        pod = yaml.safe_load(substitute(f.read(), values))
    if pod.get("kind") != "Pod":
        fail("%s is not a Pod" % src)
    spec = pod["spec"]
    spec["hostNetwork"] = True

    inits = spec.get("initContainers", [])
    sidecars = [c for c in inits if c.get("restartPolicy") == "Always"]
    spec["initContainers"] = [c for c in inits if c not in sidecars]
    if spec["initContainers"]:
        spec["restartPolicy"] = "Never"
    else:
        del spec["initContainers"]
    for c in sidecars:
        del c["restartPolicy"]
    spec["containers"] = sidecars + spec.get("containers", [])

    probes = []
    for c in spec.get("initContainers", []) + spec["containers"]:
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = c.pop(kind, None)
            if probe and "exec" in probe and c["image"] == values["IMAGE"]:
                argv = ["%s-%s" % (pod["metadata"]["name"], c["name"])] + probe["exec"]["command"]
                probes.append(" ".join(shlex.quote(a) for a in argv))
        c["imagePullPolicy"] = "Never"
        if c["image"] in ("debian:12-slim", "docker.io/library/debian:12-slim"):
            c["image"] = values["APP_IMAGE"]
        if c["image"] != values["IMAGE"]:
            continue
        env = c.setdefault("env", [])
        names = {e["name"] for e in env}
        for name, value in (("AWS_ROLE_ARN", values["TESTBED_ROLE_ARN"]),
                            ("AWS_WEB_IDENTITY_TOKEN_FILE", TOKEN_MOUNT + "/token"),
                            ("AWS_ENDPOINT_URL", values["TESTBED_ENDPOINT"])):
            if name not in names:
                env.append({"name": name, "value": value})
        c.setdefault("volumeMounts", []).append(
            {"name": "aws-iam-token", "mountPath": TOKEN_MOUNT, "readOnly": True})
    vols = spec.setdefault("volumes", [])
    vols.append({"name": "aws-iam-token",
                 "hostPath": {"path": values["TESTBED_TOKEN_DIR"], "type": "Directory"}})
    for v in vols:
        if "emptyDir" in v:
            path = os.path.join(voldir, v["name"])
            os.makedirs(path, exist_ok=True)
            del v["emptyDir"]
            v["hostPath"] = {"path": path, "type": "Directory"}

    with open(out, "w", encoding="utf-8") as f:
        yaml.safe_dump(pod, f, sort_keys=False)
    with open(out + ".probes", "w", encoding="utf-8") as f:
        f.write("".join(p + "\n" for p in probes))

    name = pod["metadata"]["name"]
    print("POD=%s" % name)
    for c in spec.get("initContainers", []) + spec["containers"]:
        print("CTR_%s=%s-%s" % (shell_name(c["name"]), name, c["name"]))
    # A staging Pod: where the app sees what an init container wrote.
    for i in spec.get("initContainers", []):
        shared = {m["name"] for m in i.get("volumeMounts", [])} - {"aws-iam-token"}
        for a in spec["containers"]:
            for am in a.get("volumeMounts", []):
                if am["name"] in shared:
                    print("APP_PATH=%s" % am["mountPath"].rstrip("/"))
                    break
            else:
                continue
            break
    for s in sidecars:
        # The mount point is irsafs's last positional argument.
        mountpoint = s["args"][-1]
        for m in s.get("volumeMounts", []):
            base = m["mountPath"].rstrip("/")
            if mountpoint == base or mountpoint.startswith(base + "/"):
                break
        else:
            fail("sidecar %s mounts on %s, which is on no volume" % (s["name"], mountpoint))
        rel = mountpoint[len(base):]
        vol = next(v for v in vols if v["name"] == m["name"])
        apps = [c for c in spec["containers"] if c is not s]
        for a in apps:
            for am in a.get("volumeMounts", []):
                if am["name"] == m["name"]:
                    print("APP_PATH=%s" % (am["mountPath"].rstrip("/") + rel))
                    print("SHARED_DIR=%s" % vol["hostPath"]["path"])
                    break


if __name__ == "__main__":
    main()
