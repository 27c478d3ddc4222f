#!/bin/sh
# Build the Debian package from packaging/debian with the standard tools
# (dpkg-buildpackage, debhelper), check it with lintian (no warning allowed),
# install it, and mount the testbed bucket with the installed binary, with
# `mount -t irsafs` and `mount -t fuse.irsafs` (the installed helper), and from
# an fstab line mounted twice (one mount is left). Removes the package
# afterwards unless it was installed before.
#   usage: check-deb.sh SRC WORKDIR
set -eu
src=$1
work=$2
skip() {
	echo "SKIP: $*"
	exit 77
}
case ${SANITIZE:-none} in none | '') ;; *) skip "sanitizer build: the .deb is built and tested with the plain build only" ;; esac
[ "$(id -u)" = 0 ] || skip "needs root (dpkg -i, mount)"
for t in dpkg-buildpackage dh dpkg-deb apt-get fusermount3; do
	command -v $t >/dev/null 2>&1 || skip "$t is not installed (tests/deps.sh installs debhelper and dpkg-dev)"
done
[ -e /dev/fuse ] || skip "/dev/fuse is missing"
apt-cache show --no-all-versions libc6 >/dev/null 2>&1 ||
	skip "apt has no package lists (run apt-get update)"
if dpkg-query -W -f='${Status}' irsafs 2>/dev/null | grep -q "install ok installed"; then
	skip "an irsafs package is already installed; not replacing it"
fi

passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() {
	echo "FAIL: $*"
	failed=$((failed + 1))
}
installed=0
cleanup() {
	for m in "$work/m1" "$work/m2" "$work/m3"; do
		mountpoint -q "$m" 2>/dev/null && umount -l "$m" 2>/dev/null || true
	done
	if [ "$installed" = 1 ]; then
		dpkg --purge irsafs >/dev/null 2>&1 || true
	fi
}
trap cleanup EXIT

version=$(dpkg-parsechangelog -l "$src/packaging/debian/changelog" -S Version)
rm -rf "$work"
tree=$work/irsafs-$version
mkdir -p "$tree"
# The source as it is (tracked and new files), without build output.
(cd "$src" && tar --exclude='./build*' --exclude='./.git' --exclude='node_modules' \
	--exclude='__pycache__' --exclude='.pytest_cache' -cf - .) | tar -C "$tree" -xf -
cp -r "$src/packaging/debian" "$tree/debian"
if (cd "$tree" && DEB_BUILD_OPTIONS=nocheck dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
	ok
else
	tail -30 "$work/build.log"
	bad "dpkg-buildpackage failed (log: $work/build.log)"
	echo "$passed passed, $failed failed"
	exit 1
fi
deb=$(ls "$work"/irsafs_"$version"_*.deb)
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/irsafs ./usr/bin/irsafs-csi ./usr/sbin/mount.irsafs ./usr/share/man/man1/irsafs.1.gz \
	./usr/share/man/man8/mount.irsafs.8.gz ./usr/share/man/man8/irsafs-csi.8.gz; do
	printf '%s\n' "$contents" | grep -q " $f\$" && ok || bad "$f is not in the package"
done
printf '%s\n' "$contents" | grep -q ' ./usr/sbin/mount.fuse.irsafs -> mount.irsafs$' && ok ||
	bad "./usr/sbin/mount.fuse.irsafs is not a link to mount.irsafs"
# lintian: no error and no warning (informational tags are allowed).
if command -v lintian >/dev/null 2>&1; then
	if lintian --fail-on error,warning "$deb" >"$work/lintian.log" 2>&1; then ok; else
		grep -v 'running with root privileges' "$work/lintian.log"
		bad "lintian found errors or warnings"
	fi
else
	bad "lintian is not installed (tests/deps.sh installs it)"
fi
depends=$(dpkg-deb -f "$deb" Depends)
for p in libfuse3-3 libcurl4 libssl3 libxml2 libjson-c5 libnghttp2-14 libprotobuf-c1 fuse3; do
	printf '%s\n' "$depends" | grep -q "$p" && ok || bad "Depends lacks $p: $depends"
done
# Every dependency resolves from Debian 12 itself.
if apt-get install --simulate -qq "$deb" >"$work/simulate.log" 2>&1; then ok; else
	cat "$work/simulate.log"
	bad "apt-get cannot resolve the package's dependencies"
fi
if dpkg -i "$deb" >"$work/install.log" 2>&1; then
	installed=1
	ok
else
	cat "$work/install.log"
	bad "dpkg -i failed"
	echo "$passed passed, $failed failed"
	exit 1
fi
man -w irsafs >/dev/null 2>&1 && ok || bad "man -w irsafs finds no page"
man -w mount.irsafs >/dev/null 2>&1 && ok || bad "man -w mount.irsafs finds no page"
[ "$(/usr/bin/irsafs --version)" = "irsafs $version" ] && ok || bad "/usr/bin/irsafs --version"
[ "$(/usr/bin/irsafs-csi --version)" = "irsafs-csi $version" ] && ok || bad "/usr/bin/irsafs-csi --version"

# The testbed's Pod environment.
tbdir=${IRSAFS_TESTBED_DIR:-/tmp/irsafs-testbed}
eval "$("$src/tests/testbed/up.sh" "$tbdir")"
export AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE AWS_REGION AWS_ENDPOINT_URL
hello=$(printf 'hello from irsafs\n' | sha256sum)

# 1. The installed binary, detached (no -f): it returns once the mount is ready.
mkdir -p "$work/m1" "$work/m2"
if /usr/bin/irsafs demo-bucket "$work/m1" 2>"$work/m1.log"; then ok; else bad "irsafs exited $?: $(cat "$work/m1.log")"; fi
[ "$(sha256sum <"$work/m1/hello.txt")" = "$hello" ] && ok || bad "hello.txt through /usr/bin/irsafs"
fusermount3 -u "$work/m1" && ok || bad "fusermount3 -u"

# 2. mount -t irsafs: mount(8) finds /sbin/mount.irsafs, which maps -o to flags.
if mount -t irsafs demo-bucket "$work/m2" -o prefix=dir,allow_other,uid=1234,gid=2345,_netdev,nofail \
	2>"$work/m2.log"; then ok; else bad "mount -t irsafs: $(cat "$work/m2.log")"; fi
[ "$(ls "$work/m2" | tr '\n' ' ')" = "a.txt sub " ] && ok || bad "listing through mount -t irsafs: $(ls "$work/m2")"
[ "$(stat -c %u:%g "$work/m2/a.txt")" = "1234:2345" ] && ok || bad "uid/gid through mount -t irsafs"
grep " $work/m2 " /proc/self/mountinfo | grep -q allow_other && ok || bad "allow_other is not in effect"
umount "$work/m2" && ok || bad "umount"

# 3. mount -t fuse.irsafs, the type the mounts carry: mount(8) finds
#    /sbin/mount.fuse.irsafs.
mkdir -p "$work/m3" "$work/m4"
if mount -t fuse.irsafs demo-bucket "$work/m3" -o prefix=dir 2>"$work/m3.log"; then ok; else
	bad "mount -t fuse.irsafs: $(cat "$work/m3.log")"
fi
[ "$(ls "$work/m3" | tr '\n' ' ')" = "a.txt sub " ] && ok || bad "listing through mount -t fuse.irsafs"
umount "$work/m3" && ok || bad "umount of the fuse.irsafs mount"

# 4. One fstab line mounted twice, by its mount point and by mount -a, in a
#    private mount namespace with its own /etc/fstab: one mount is left.
printf 'demo-bucket %s irsafs prefix=dir,_netdev,nofail 0 0\n' "$work/m4" >"$work/fstab"
if unshare -m --propagation private sh -c '
	mount --bind "$1/fstab" /etc/fstab || exit 10
	mount "$1/m4" || exit 11
	if mount "$1/m4" 2>"$1/m4.log"; then exit 12; fi
	grep -q "is already an irsafs mount" "$1/m4.log" || exit 13
	mount -a || exit 14
	[ "$(grep -c " $1/m4 " /proc/self/mountinfo)" = 1 ] || exit 15
	[ "$(cat "$1/m4/a.txt")" = "dir/a.txt line 1" ] || exit 16
	umount "$1/m4" || exit 17
' sh "$work"; then ok; else bad "the fstab line mounted twice (step $?; see $work/m4.log)"; fi

dpkg --purge irsafs >/dev/null 2>&1 && ok || bad "dpkg --purge"
installed=0
[ ! -e /usr/bin/irsafs ] && ok || bad "/usr/bin/irsafs left behind"
rm -rf "$tree"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
