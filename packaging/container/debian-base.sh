#!/bin/sh
# Local stand-ins for debian:12 and debian:12-slim, built from Debian's own
# packages with mmdebstrap, for machines that reach a Debian mirror but no
# container registry (and for tests/packaging/check-image.sh):
#  - OUTDIR/debian-12.tar: a minbase bookworm with merged /usr and the same
#    apt sources as the official image (bookworm, -updates, -security);
#  - OUTDIR/debian-12-slim.tar: the same tree with documentation, manual pages
#    and translations removed, and a dpkg configuration that keeps later
#    package installs from adding them back (what the official -slim does).
# Import them as the Dockerfile's bases:
#   podman import --change 'CMD ["bash"]' OUTDIR/debian-12.tar localhost/debian:12
#   podman import --change 'CMD ["bash"]' OUTDIR/debian-12-slim.tar localhost/debian:12-slim
# Needs root and mmdebstrap. ARCH (default: the host's) builds another
# architecture's base, which needs qemu-user-static and binfmt-support.
#   usage: debian-base.sh OUTDIR
set -eu
out=${1:?usage: debian-base.sh OUTDIR}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org}
arch=${ARCH:-$(dpkg --print-architecture)}
hooks=/usr/share/mmdebstrap/hooks/merged-usr
command -v mmdebstrap >/dev/null 2>&1 || {
	echo "debian-base.sh: error: mmdebstrap is not installed (apt-get install mmdebstrap)" >&2
	exit 1
}
[ -d "$hooks" ] || {
	echo "debian-base.sh: error: $hooks is missing (mmdebstrap too old?)" >&2
	exit 1
}
mkdir -p "$out"
tmp=$(mktemp -d "$out/.base.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The full base. --hook-dir sets up merged /usr as bookworm's debootstrap does,
# instead of pulling in the usrmerge package (and perl with it). The apt
# configuration keeps downloaded packages out of image layers.
cat >"$tmp/container-clean" <<'EOF'
// A container base: apt-get deletes the packages it has installed.
APT::Keep-Downloaded-Packages "false";
EOF
mmdebstrap --quiet --variant=minbase --architectures="$arch" --hook-dir="$hooks" \
	--customize-hook="copy-in $tmp/container-clean /etc/apt/apt.conf.d" \
	bookworm "$tmp/debian-12.tar" \
	"deb $mirror/debian bookworm main" \
	"deb $mirror/debian bookworm-updates main" \
	"deb $mirror/debian-security bookworm-security main"

# The slim variant: drop what the dpkg configuration below excludes from now on.
root=$tmp/root
mkdir "$root"
tar -C "$root" --numeric-owner -xpf "$tmp/debian-12.tar"
cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
# A container base: no documentation, manual pages or translations
# (copyright files stay, as Debian's policy asks).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
find "$root/usr/share/doc" ! -type d ! -name copyright -delete
find "$root/usr/share/doc" -mindepth 1 -depth -type d -empty -delete
for d in man info groff lintian; do
	rm -rf "${root:?}/usr/share/$d"
	mkdir -p "$root/usr/share/$d"
done
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
tar -C "$root" --numeric-owner -cf "$tmp/debian-12-slim.tar" .

mv "$tmp/debian-12.tar" "$out/debian-12.tar"
mv "$tmp/debian-12-slim.tar" "$out/debian-12-slim.tar"
