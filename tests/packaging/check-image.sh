#!/bin/sh
# Build the container image and run it the way the shipped manifests do, with
# podman, against the testbed. No registry is needed:
#  1. the bases: debian:12 and debian:12-slim stand-ins built from Debian's
#     packages (packaging/container/debian-base.sh, mmdebstrap) and imported;
#  2. packaging/Dockerfile built with podman build on those bases (build args);
#     its OCI labels, `irsafs --version` and `irsafs-csi --version` checked;
#  3. the staging Pod (packaging/kubernetes/pod-staging.yaml) run with
#     `podman kube play`: its init container (`irsafs exec ... cp`) copies the
#     prefix, and the unprivileged app sees every file with the testbed
#     manifest's sha256; with a bucket the role may not read, the init
#     container fails and the app never starts;
#  4. the sidecar Pod (pod-sidecar.yaml): irsafs mounts over FUSE inside its
#     privileged container on a volume shared with rshared propagation
#     (Bidirectional), the app (uid 1000, no capabilities, no_new_privs) reads
#     through its rslave view (HostToContainer), sha256 checked; the sidecar's
#     exec probes pass; killed (SIGKILL) and started again, the sidecar mounts
#     again and the running app reads through the new mount; stopped (SIGTERM)
#     it unmounts cleanly (exit 0).
# tests/packaging/kube_local.py renders each manifest for podman and the
# testbed and says what it changes. Everything podman keeps (storage, the
# bases, the build's layer cache) lives in WORKDIR, so a second run rebuilds
# only what changed. The mirror is needed only while a base or an apt layer is
# not yet cached. Skips (77), with the reason, where podman cannot run
# containers. IMAGE_CHECK_BUILD_ONLY=1 stops after step 2 (no testbed).
#   usage: check-image.sh SRC WORKDIR
set -eu
src=$1
work=$2
case $work in /*) ;; *) work=$PWD/$work ;; esac
skip() {
	echo "SKIP: $*"
	exit 77
}
case ${SANITIZE:-none} in none | '') ;; *) skip "sanitizer build: the image is built and run with the plain build only" ;; esac
[ "$(id -u)" = 0 ] || skip "needs root (podman with FUSE, privileged containers and mount propagation)"
for t in podman mmdebstrap timeout mount umount; do
	command -v $t >/dev/null 2>&1 || skip "$t is not installed (tests/deps.sh installs podman, mmdebstrap, catatonit and runc)"
done
/usr/bin/python3 -c 'import yaml' 2>/dev/null || skip "python3-yaml is not installed"
[ -e /dev/fuse ] || skip "/dev/fuse is missing"
# The OCI runtime needs the cgroup file system at /sys/fs/cgroup.
cgfs=$(stat -f -c %T /sys/fs/cgroup 2>/dev/null || echo missing)
case $cgfs in
cgroup2fs) ;;
tmpfs) mountpoint -q /sys/fs/cgroup/memory 2>/dev/null ||
	skip "/sys/fs/cgroup has no cgroup hierarchies mounted: the OCI runtime cannot create containers" ;;
*) skip "/sys/fs/cgroup is $cgfs, not a cgroup file system, so the OCI runtime cannot create containers (ip netns exec remounts /sys: enter only the network namespace, nsenter --net=/run/netns/NAME)" ;;
esac
# crun refuses a hybrid hierarchy whose cgroup2 part has controllers ("cgroups
# in hybrid mode not supported"); runc accepts it.
runtime=crun
v2ctl=$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null || true)
if [ -n "$v2ctl" ]; then
	command -v runc >/dev/null 2>&1 ||
		skip "cgroup v1 with controllers on the cgroup2 hierarchy ($v2ctl): crun refuses that, and runc is not installed"
	runtime=runc
fi

t_start=$(date +%s)
since() { echo $(($(date +%s) - $1)); }
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() {
	echo "FAIL: $*"
	failed=$((failed + 1))
}
finish() {
	echo "$passed passed, $failed failed ($(since "$t_start") s in all)"
	[ "$failed" = 0 ]
	exit $?
}

# podman's state, configured for this directory only (and for this podman
# version: delete WORKDIR when podman changes). Without CAP_SYS_RESOURCE
# (a VM or container that lacks it) podman's default rlimits for a container
# are above what it may set, and podman itself runs with RLIMIT_NPROC 32768:
# ask for what the calling process has.
mkdir -p "$work/conf" "$work/base" "$work/storage" "$work/run" "$work/kube" "$work/log"
limit() { awk -v n="$1" 'index($0, n) == 1 {print $(NF - 1)}' /proc/self/limits; }
nofile=$(limit 'Max open files')
nproc=$(limit 'Max processes')
[ "$nofile" = unlimited ] && nofile=1048576
[ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
cat >"$work/conf/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
log_driver = "k8s-file"
[engine]
tmp_dir = "$work/run/libpod"
runtime = "$runtime"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
storage_conf() { # driver
	cat >"$work/conf/storage.conf" <<EOF
[storage]
driver = "$1"
graphroot = "$work/storage"
runroot = "$work/run"
EOF
}
export CONTAINERS_CONF="$work/conf/containers.conf" CONTAINERS_STORAGE_CONF="$work/conf/storage.conf"
storage_conf overlay
# Overlay on overlay (a CI container's file system) does not work; vfs does.
if ! podman info >"$work/log/info.log" 2>&1; then
	storage_conf vfs
	podman info >"$work/log/info.log" 2>&1 || skip "podman info fails: $(tail -1 "$work/log/info.log")"
fi

image=localhost/irsafs:check
base=localhost/debian:12
slim=localhost/debian:12-slim
pods="irsafs-staging-demo irsafs-sidecar-demo"
shared=$work/vol-sidecar # (a previous run's, if it was interrupted)
cleanup() {
	for p in $pods; do podman pod rm -f -t 1 "$p" >/dev/null 2>&1 || true; done
	if [ -n "$shared" ]; then
		grep -F " $shared" /proc/self/mountinfo | awk '{print $5}' | sort -r |
			while read -r m; do umount -l "$m" 2>/dev/null || true; done
	fi
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
cleanup

# 1. The bases, kept between runs (delete WORKDIR/base to refresh them).
t=$(date +%s)
if [ ! -s "$work/base/debian-12.tar" ] || [ ! -s "$work/base/debian-12-slim.tar" ]; then
	rc=0
	timeout 420 sh "$src/packaging/container/debian-base.sh" "$work/base" >"$work/log/base.log" 2>&1 || rc=$?
	if [ $rc = 124 ]; then
		skip "building the Debian base took over 420 s (slow mirror or machine; log: $work/log/base.log)"
	elif [ $rc != 0 ]; then
		tail -5 "$work/log/base.log"
		skip "could not build the Debian base with mmdebstrap (no mirror? log: $work/log/base.log)"
	fi
	podman rmi -f "$base" "$slim" >/dev/null 2>&1 || true
fi
for v in 12 12-slim; do
	if ! podman image exists "localhost/debian:$v"; then
		podman import -q --change 'CMD ["bash"]' \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			"$work/base/debian-$v.tar" "localhost/debian:$v" >/dev/null
	fi
done
echo "bases ready in $(since "$t") s"

# 2. The image. --network host: the apt steps reach the mirror (when not cached).
# The build stage is tagged too, or pruning would drop its cached layers (no
# tagged image descends from them).
t=$(date +%s)
version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$src/meson.build" | head -1)
revision=$(git -C "$src" rev-parse HEAD 2>/dev/null || echo unknown)
: >"$work/log/build.log"
deadline=$(($(date +%s) + 600))
build() { # podman build arguments...
	left=$((deadline - $(date +%s)))
	[ $left -gt 0 ] || return 124
	timeout $left podman build --pull=never --layers --network host -f "$src/packaging/Dockerfile" \
		--build-arg BUILD_IMAGE="$base" --build-arg RUNTIME_IMAGE="$slim" \
		--build-arg REVISION="$revision" "$@" "$src" >>"$work/log/build.log" 2>&1
}
rc=0
build --target build -t localhost/irsafs-build:check && build -t "$image" || rc=$?
if [ $rc = 124 ]; then
	skip "building the image took over 600 s (slow mirror or machine; log: $work/log/build.log)"
elif [ $rc != 0 ]; then
	tail -20 "$work/log/build.log"
	if grep -qE 'Temporary failure resolving|Could not resolve|Failed to fetch|Network is unreachable' \
		"$work/log/build.log"; then
		skip "the image's apt steps cannot reach the Debian mirror and are not cached yet"
	fi
	bad "podman build failed (log: $work/log/build.log)"
	finish
fi
ok
podman image prune -f >/dev/null 2>&1 || true
mb() { podman image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1e6}'; }
echo "image built in $(since "$t") s: $image $(mb "$image"); bases $base $(mb "$base"), $slim $(mb "$slim")"

label() { podman image inspect --format "{{index .Labels \"org.opencontainers.image.$1\"}}" "$image"; }
[ "$(label version)" = "$version" ] && ok || bad "label version is '$(label version)', meson.build says $version"
[ "$(label revision)" = "$revision" ] && ok || bad "label revision is '$(label revision)', not $revision"
[ "$(label licenses)" = Apache-2.0 ] && ok || bad "label licenses is '$(label licenses)'"
[ "$(label title)" = irsafs ] && ok || bad "label title is '$(label title)'"
[ -n "$(label description)" ] && ok || bad "no description label"
[ "$(label base.name)" = "$slim" ] && ok || bad "label base.name is '$(label base.name)', not $slim"
podman image inspect --format '{{json .Labels}}' "$image" | grep -q '"org.opencontainers.image.source"' &&
	ok || bad "no source label"
out=$(podman run --rm --network none "$image" --version 2>&1) || true
[ "$out" = "irsafs $version" ] && ok || bad "irsafs --version in the image says '$out'"
out=$(podman run --rm --network none --entrypoint irsafs-csi "$image" --version 2>&1) || true
[ "$out" = "irsafs-csi $version" ] && ok || bad "irsafs-csi --version in the image says '$out'"
out=$(podman run --rm --network none --entrypoint sh "$image" -c \
	'id -u irsafs; grep -cx user_allow_other /etc/fuse.conf; command -v fusermount3; command -v mount.irsafs' \
	2>&1) || true
out=$(printf '%s' "$out" | tr '\n' ' ')
[ "$out" = "65532 1 /usr/bin/fusermount3 /usr/sbin/mount.irsafs" ] && ok || bad "runtime layout in the image: $out"
if [ "${IMAGE_CHECK_BUILD_ONLY:-0}" = 1 ]; then
	echo "IMAGE_CHECK_BUILD_ONLY=1: not running the Pods"
	finish
fi

# The testbed (started or reused) and what it holds under the prefix.
tbdir=${IRSAFS_TESTBED_DIR:-/tmp/irsafs-testbed}
eval "$("$src/tests/testbed/up.sh" "$tbdir")"
prefix=dir
expected=$work/expected.txt
/usr/bin/python3 - "$tbdir/seed/manifest.json" "$prefix/" >"$expected" <<'EOF'
import json, sys
objs = json.load(open(sys.argv[1]))["buckets"]["demo-bucket"]
p = sys.argv[2]
for k in sorted(k for k in objs if k.startswith(p) and not k.endswith("/")):
    print("%s  ./%s" % (objs[k]["sha256"], k[len(p):]))
EOF
[ -s "$expected" ] || { bad "the testbed manifest has nothing under $prefix/"; finish; }

render() { # manifest, volume dir, bucket: sets POD, CTR_*, APP_PATH, SHARED_DIR
	vars=$(/usr/bin/python3 "$src/tests/packaging/kube_local.py" "$src/packaging/kubernetes/$1" \
		"$work/kube/$1" "$2" IMAGE="$image" APP_IMAGE="$slim" \
		TESTBED_ROLE_ARN="$AWS_ROLE_ARN" TESTBED_TOKEN_DIR="$(dirname "$AWS_WEB_IDENTITY_TOKEN_FILE")" \
		TESTBED_ENDPOINT="$AWS_ENDPOINT_URL" AWS_REGION="$AWS_REGION" \
		NAMESPACE=demo SERVICE_ACCOUNT=reader BUCKET="$3" PREFIX="$prefix") || {
		bad "kube_local.py could not render $1"
		finish
	}
	eval "$vars"
}
play() { # manifest: podman kube play, bounded
	timeout 180 podman kube play --replace "$work/kube/$1" >"$work/log/$1.log" 2>&1
}
state() { podman inspect --format '{{.State.Status}}' "$1" 2>/dev/null || echo missing; }
# What CONTAINER sees under DIR: "sha256  ./path" lines, sorted like $expected.
sums() { timeout 120 podman exec "$1" sh -c 'cd "$1" && find . -type f -exec sha256sum {} +' sh "$2" | LC_ALL=C sort -k 2; }
files_match() { # container, dir
	sums "$1" "$2" >"$work/got.txt" 2>&1 && LC_ALL=C sort -k 2 "$expected" | cmp -s - "$work/got.txt"
}
same_files() { # container, dir, what
	if files_match "$1" "$2"; then ok; else
		bad "$3: the files under $2 differ from the testbed manifest's $prefix/"
		LC_ALL=C sort -k 2 "$expected" | diff - "$work/got.txt" | head -10
	fi
}
unprivileged() { # container, dir: uid/gid 1000, no capabilities, no_new_privs, read-only
	out=$(podman exec "$1" sh -c 'id -u; id -g; sed -n "s/^\(CapEff\|NoNewPrivs\):[[:space:]]*//p" /proc/self/status' |
		tr '\n' ' ')
	[ "$out" = "1000 1000 0000000000000000 1 " ] && ok ||
		bad "$1 is not uid/gid 1000 without capabilities and with no_new_privs: $out"
	if podman exec "$1" sh -c 'echo x >"$1/irsafs-write-test"' sh "$2" 2>/dev/null; then
		bad "$1 could write to $2"
	else ok; fi
}

# 3. The staging Pod.
t=$(date +%s)
vol=$work/vol-staging
rm -rf "$vol"
render pod-staging.yaml "$vol" demo-bucket
if play pod-staging.yaml; then ok; else
	cat "$work/log/pod-staging.yaml.log"
	bad "podman kube play pod-staging.yaml failed"
fi
[ "$(state "$CTR_APP")" = running ] && ok || bad "the staging Pod's app is $(state "$CTR_APP"), not running"
same_files "$CTR_APP" "$APP_PATH" "staging Pod"
unprivileged "$CTR_APP" "$APP_PATH"
podman pod rm -f -t 1 "$POD" >/dev/null 2>&1 || true
# A bucket the role may not list: cp fails, so the init container fails and
# the app never starts.
rm -rf "$vol"
render pod-staging.yaml "$vol" other-bucket
if play pod-staging.yaml; then bad "kube play succeeded although the init container could not copy"; else ok; fi
[ "$(state "$CTR_APP")" = created ] && ok || bad "after a failed init container the app is $(state "$CTR_APP")"
podman logs "$CTR_STAGE" 2>&1 | grep -q 'AccessDenied' && ok ||
	bad "the failed init container's log does not say AccessDenied: $(podman logs "$CTR_STAGE" 2>&1 | tail -3)"
[ -z "$(find "$vol" -type f)" ] && ok || bad "the failed staging left files: $(find "$vol" -type f | head -3)"
podman pod rm -f -t 1 "$POD" >/dev/null 2>&1 || true
echo "staging Pod checked in $(since "$t") s"

# 4. The sidecar Pod. The shared volume's host directory is made a shared mount
# (a kubelet's pod volumes are), so the sidecar's mount propagates through it.
t=$(date +%s)
vol=$work/vol-sidecar
rm -rf "$vol"
render pod-sidecar.yaml "$vol" demo-bucket
shared=$SHARED_DIR
mount --bind "$shared" "$shared"
mount --make-shared "$shared"
if play pod-sidecar.yaml; then ok; else
	cat "$work/log/pod-sidecar.yaml.log"
	bad "podman kube play pod-sidecar.yaml failed"
fi
# The startup probe's job: wait (up to 60 s) until the app sees the mount.
i=0
while ! podman exec "$CTR_APP" cat /proc/self/mountinfo 2>/dev/null |
	awk -v p="$APP_PATH" '$5 == p && / - fuse\.irsafs /' | grep -q .; do
	i=$((i + 1))
	if [ $i -gt 60 ] || [ "$(state "$CTR_IRSAFS")" != running ]; then
		podman logs "$CTR_IRSAFS" 2>&1 | tail -10
		bad "the app never saw a fuse.irsafs mount at $APP_PATH (sidecar: $(state "$CTR_IRSAFS"))"
		finish
	fi
	sleep 1
done
ok
awk -v p="$shared" 'index($5, p) == 1 && / - fuse\.irsafs /' /proc/self/mountinfo | grep -q . && ok ||
	bad "the sidecar's mount did not propagate to the host directory $shared (Bidirectional)"
# The sidecar's probes, as the kubelet would run them, pass once it has mounted.
while read -r probe; do
	if eval "timeout 30 podman exec $probe" >/dev/null 2>&1; then ok; else
		bad "the sidecar's probe '$probe' fails with the mount up"
	fi
done <"$work/kube/pod-sidecar.yaml.probes"
same_files "$CTR_APP" "$APP_PATH" "sidecar Pod"
unprivileged "$CTR_APP" "$APP_PATH"
# A sidecar killed (OOM, SIGKILL) and started again, as the kubelet restarts
# it, detaches its dead mount and mounts again at the same place; the new
# mount reaches the running app through HostToContainer (up to 60 s).
podman kill -s KILL "$CTR_IRSAFS" >/dev/null 2>&1 || true
code=$(timeout 30 podman wait "$CTR_IRSAFS" 2>&1) || true
[ "$code" = 137 ] && ok || bad "podman kill -s KILL: the sidecar's exit is '$code', not 137"
[ "$(state "$CTR_IRSAFS")" = running ] || timeout 60 podman start "$CTR_IRSAFS" >/dev/null 2>&1 || true
i=0
until files_match "$CTR_APP" "$APP_PATH"; do
	i=$((i + 1))
	if [ $i -gt 60 ]; then
		podman logs "$CTR_IRSAFS" 2>&1 | tail -5
		bad "after the sidecar was killed and started again the app does not read $APP_PATH: $(head -3 "$work/got.txt")"
		break
	fi
	sleep 1
done
[ $i -gt 60 ] || ok
# A native sidecar is stopped after the app, with SIGTERM: irsafs unmounts
# and exits 0.
podman stop -t 1 "$CTR_APP" >/dev/null 2>&1 || true
timeout 60 podman stop -t 20 "$CTR_IRSAFS" >/dev/null 2>&1 || true
code=$(podman inspect --format '{{.State.ExitCode}}' "$CTR_IRSAFS" 2>/dev/null || echo none)
[ "$code" = 0 ] && ok || bad "the sidecar exited $code on SIGTERM, not 0"
awk -v p="$shared" 'index($5, p) == 1 && / - fuse\.irsafs /' /proc/self/mountinfo | grep -q . &&
	bad "the FUSE mount outlived the sidecar" || ok
echo "sidecar Pod checked in $(since "$t") s"
finish
