#!/bin/sh
# The build stage's one step, also run on the host by check-container.sh:
# configure a release build of SRC, build it, run the unit tests, and
# install into DESTDIR with prefix /usr.
#   usage: build.sh SRC BUILDDIR DESTDIR
set -eu
src=$1
build=$2
dest=$3
meson setup "$build" "$src" --prefix=/usr --buildtype=release >/dev/null
ninja -C "$build" >/dev/null
meson test -C "$build" --suite unit --print-errorlogs >/dev/null
DESTDIR=$dest meson install -C "$build" --no-rebuild >/dev/null
test -x "$dest/usr/bin/irsafs"
test -x "$dest/usr/bin/irsafs-csi"
test -x "$dest/usr/sbin/mount.irsafs"
test -f "$dest/usr/share/man/man1/irsafs.1"
