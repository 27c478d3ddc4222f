#!/usr/bin/env bash
# Install what irsafs needs to build, to run the local testbed and to run every
# test, from Debian 12's own packages. Run as root. Installs only what is missing.
set -euo pipefail

pkgs=(
	# build
	meson ninja-build pkg-config gcc clang libclang-rt-14-dev
	libfuse3-dev libcurl4-openssl-dev libssl-dev libxml2-dev libjson-c-dev
	libmicrohttpd-dev
	# build: irsafs-csi (HTTP/2 and the CSI messages)
	libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler
	# run
	fuse3 ca-certificates
	# testbed: radosgw + a tiny OIDC issuer; its AWS mode adds TLS (stunnel4)
	radosgw ceph-mon ceph-osd ceph-common python3 openssl curl stunnel4
	# tests
	python3-pytest python3-yaml attr valgrind findutils coreutils strace rsync
	# tests: the CSI plugin, driven as the kubelet does (gRPC stubs made at test time)
	python3-grpcio python3-grpc-tools procps
	# packaging tests: the .deb build and lintian, the man page, mount -t
	debhelper dpkg-dev lintian groff-base man-db util-linux mount
	# the image test: a Debian base from packages, podman build and kube play
	# (catatonit: the Pod's infra container; runc: crun refuses a cgroup v1
	# host whose cgroup2 hierarchy has controllers)
	mmdebstrap podman catatonit runc
)

if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: error: run as root (it installs Debian packages with apt-get)" >&2
	exit 1
fi
missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
# The manifest check runs node (kubernetes-models from npm); any node >= 14 will do.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps.sh: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -e /dev/fuse ]; then
	echo "deps.sh: error: /dev/fuse is missing: load the fuse module (modprobe fuse) or run the container with --device /dev/fuse" >&2
	exit 1
fi
