#!/bin/sh
# The runtime stage's layout step: a non-root user for the fd-passing mode,
# user_allow_other so a non-root irsafs may use --allow-other, and the
# directory the manifests mount on. Takes ROOT ("/" in the image) so
# check-container.sh can run it against a scratch tree.
#   usage: runtime-setup.sh ROOT
set -eu
root=${1:-/}
uid=65532
mkdir -p "$root/etc" "$root/mnt/s3"
if ! grep -q '^irsafs:' "$root/etc/passwd" 2>/dev/null; then
	echo "irsafs:x:$uid:$uid:irsafs:/nonexistent:/usr/sbin/nologin" >>"$root/etc/passwd"
	echo "irsafs:x:$uid:" >>"$root/etc/group"
fi
touch "$root/etc/fuse.conf"
grep -qx 'user_allow_other' "$root/etc/fuse.conf" || echo user_allow_other >>"$root/etc/fuse.conf"
chown "$uid:$uid" "$root/mnt/s3" 2>/dev/null || true
