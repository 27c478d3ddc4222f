#!/bin/sh
# Check packaging/Dockerfile with what runs on a Debian 12 host, without a
# container engine (check-image.sh builds and runs the image itself):
#  - its shape: a build stage and a runtime stage on bases passed as build
#    arguments, defaulting to debian:12 and debian:12-slim pinned by digest;
#    irsafs as the entrypoint, every COPY source present; the OCI labels, with
#    meson.build's version and license; a .dockerignore that keeps .git and
#    build trees out of the context but nothing the build needs;
#  - every package in its lists exists in Debian 12 (apt-cache);
#  - the build stage's step (container/build.sh) builds, tests and installs;
#  - the runtime packages cover every shared library the installed irsafs
#    and irsafs-csi load (ldd, dpkg -S, apt-cache depends --recurse);
#  - the runtime layout step (container/runtime-setup.sh) on a scratch root.
#   usage: check-container.sh SRC WORKDIR
set -eu
src=$1
work=$2
skip() {
	echo "SKIP: $*"
	exit 77
}
case ${SANITIZE:-none} in none | '') ;; *) skip "sanitizer build: the container check runs with the plain build only" ;; esac
for t in apt-cache dpkg ldd meson ninja; do
	command -v $t >/dev/null 2>&1 || skip "$t is not installed"
done
apt-cache show --no-all-versions libc6 >/dev/null 2>&1 ||
	skip "apt has no package lists (run apt-get update)"
df=$src/packaging/Dockerfile
c=$src/packaging/container
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() {
	echo "FAIL: $*"
	failed=$((failed + 1))
}
check() { # description, command...
	d=$1
	shift
	if "$@" >/dev/null 2>&1; then ok; else bad "$d"; fi
}

# Shape: two stages on bases given as build arguments, whose defaults are the
# official Debian 12 images pinned by the digest of their multi-arch index.
froms=$(grep -E '^FROM ' "$df" | tr -s ' ')
[ "$(printf '%s\n' "$froms" | sed -n 1p)" = 'FROM ${BUILD_IMAGE} AS build' ] && ok ||
	bad "first stage is not 'FROM \${BUILD_IMAGE} AS build'"
[ "$(printf '%s\n' "$froms" | sed -n 2p)" = 'FROM ${RUNTIME_IMAGE}' ] && ok ||
	bad "runtime stage is not 'FROM \${RUNTIME_IMAGE}'"
[ "$(printf '%s\n' "$froms" | wc -l)" = 2 ] && ok || bad "expected two stages"
check "BUILD_IMAGE defaults to debian:12 pinned by digest" \
	grep -qxE 'ARG BUILD_IMAGE=docker\.io/library/debian:12@sha256:[0-9a-f]{64}' "$df"
check "RUNTIME_IMAGE defaults to debian:12-slim pinned by digest" \
	grep -qxE 'ARG RUNTIME_IMAGE=docker\.io/library/debian:12-slim@sha256:[0-9a-f]{64}' "$df"
check "entrypoint is /usr/bin/irsafs" grep -qx 'ENTRYPOINT \["/usr/bin/irsafs"\]' "$df"
check "runtime copies only /out/usr from the build stage" grep -qx 'COPY --from=build /out/usr/ /usr/' "$df"
for f in $(grep -E '^COPY ' "$df" | grep -v -- '--from' | awk '{for (i = 2; i < NF; i++) print $i}'); do
	[ "$f" = . ] && continue
	check "COPY source $f exists" test -e "$src/$f"
done

# OCI labels (check-image.sh checks their values in a built image).
for l in title description version revision source licenses base.name; do
	check "label org.opencontainers.image.$l" grep -q "org\.opencontainers\.image\.$l=" "$df"
done
mversion=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$src/meson.build" | head -1)
mlicense=$(sed -n "s/^ *license *: *'\([^']*\)'.*/\1/p" "$src/meson.build" | head -1)
check "ARG VERSION defaults to meson.build's version ($mversion)" grep -qx "ARG VERSION=$mversion" "$df"
check "the licenses label is meson.build's license ($mlicense)" \
	grep -q "org\.opencontainers\.image\.licenses=\"$mlicense\"" "$df"

# .dockerignore keeps .git and build trees out, and nothing the build needs.
di=$src/.dockerignore
for p in .git build 'build-*'; do
	check ".dockerignore excludes $p" grep -qxF "$p" "$di"
done
needed=$(cd "$src" && find . \( -path ./.git -o -path ./build -o -path './build-*' \) -prune -o \
	\( -name meson.build -o -name meson_options.txt -o -path './packaging/container/*' \) -print |
	sed 's|^\./||')
# (A pattern is a glob: no file name expansion while the loop reads them.)
set -f
for p in $(grep -v -e '^#' -e '^$' "$di"); do
	hit=
	for f in $needed; do
		# shellcheck disable=SC2254 # the pattern is meant to match
		case $f in $p | $p/*) hit=$f ;; esac
	done
	[ -z "$hit" ] && ok || bad ".dockerignore pattern '$p' drops $hit, which the build needs"
done
set +f
for s in build.sh runtime-setup.sh build-packages.txt runtime-packages.txt; do
	check "the Dockerfile uses container/$s" grep -q "$s" "$df"
done

# Packages.
pkgs() { grep -v '^#' "$1" | grep -v '^$'; }
for p in $(pkgs "$c/build-packages.txt") $(pkgs "$c/runtime-packages.txt"); do
	check "package $p is in Debian 12 (apt-cache show)" apt-cache show --no-all-versions "$p"
done

# The build stage's step, for real.
rm -rf "$work"
mkdir -p "$work"
if sh "$c/build.sh" "$src" "$work/build" "$work/out" >"$work/build.log" 2>&1; then
	ok
else
	tail -20 "$work/build.log"
	bad "container/build.sh failed (log: $work/build.log)"
	echo "$passed passed, $failed failed"
	exit 1
fi
check "the installed irsafs runs" "$work/out/usr/bin/irsafs" --version
check "the installed irsafs-csi runs" "$work/out/usr/bin/irsafs-csi" --version
IRSAFS_BIN=$work/out/usr/bin/irsafs check "the installed mount.irsafs runs" \
	"$work/out/usr/sbin/mount.irsafs" b /mnt -f -o prefix=x

# Runtime libraries are covered by the runtime packages.
closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
	--no-replaces --no-enhances $(pkgs "$c/runtime-packages.txt") 2>/dev/null |
	grep -v '^ ' | sed 's/:.*//' | sort -u)
for lib in $(ldd "$work/out/usr/bin/irsafs" "$work/out/usr/bin/irsafs-csi" |
	awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u); do
	owner=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "/usr$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null || true)
	owner=$(printf '%s' "$owner" | head -1 | sed 's/:.*//')
	if [ -z "$owner" ]; then
		bad "no package owns $lib"
	elif printf '%s\n' "$closure" | grep -qx "$owner"; then
		ok
	else
		bad "$lib comes from $owner, which the runtime packages do not pull in"
	fi
done

# Runtime layout.
root=$work/root
mkdir -p "$root/etc"
sh "$c/runtime-setup.sh" "$root" && ok || bad "runtime-setup.sh failed"
check "user irsafs (65532) exists" grep -q '^irsafs:x:65532:65532:' "$root/etc/passwd"
check "user_allow_other is set" grep -qx user_allow_other "$root/etc/fuse.conf"
check "/mnt/s3 exists" test -d "$root/mnt/s3"
sh "$c/runtime-setup.sh" "$root" && ok || bad "runtime-setup.sh is not idempotent"
check "runtime-setup.sh twice adds one user" test "$(grep -c '^irsafs:' "$root/etc/passwd")" = 1

rm -rf "$work/build"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
