#!/bin/sh
# The layering rules of README.md's Layout, checked on the source tree:
#
#   app/ (irsafs)   csi/ (irsafs-csi)
#     |
#   fs/ -> cache/ -> s3/ -> auth/ -> http/ -> core/
#
# A folder includes its own headers and those of the folders below it, and
# nothing else. Above s3/, only the store interface (s3/store.h) is seen;
# app/ alone also makes the S3 store (s3/s3.h) and is the only code besides
# s3/ that includes http/ or auth/. No S3 or STS error code is compared
# above the layer that parses it. Prints one line per broken rule and exits
# 1; exit 0 when the tree keeps them all.
#
# usage: tests/check-layers.sh [SOURCE_ROOT]
set -eu
root=${1:-$(dirname "$0")/..}
cd "$root"

allowed() { # folder -> the folders it may include
	case $1 in
	app) echo "app fs cache s3 auth http core" ;;
	csi) echo "csi core" ;;
	fs) echo "fs cache s3 core" ;;
	cache) echo "cache s3 core" ;;
	s3) echo "s3 auth http core" ;;
	auth) echo "auth http core" ;;
	http) echo "http core" ;;
	core) echo "core" ;;
	esac
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
bad=0
complain() {
	echo "check-layers: $*"
	bad=1
}

for dir in app csi fs cache s3 auth http core; do
	[ -d "$dir" ] || { complain "$dir/ is missing (run from the source root)"; continue; }
	ok=$(allowed "$dir")
	# file:line:#include "folder/name.h"
	grep -Hn '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$dir"/*.c "$dir"/*.h 2>/dev/null |
	while IFS= read -r line; do
		hdr=$(printf '%s\n' "$line" | sed 's/.*include[[:space:]]*"\([^"]*\)".*/\1/')
		where=$(printf '%s\n' "$line" | cut -d: -f1,2)
		case $hdr in
		config.h) continue ;;	# meson's, made in the build directory
		*/*) to=${hdr%%/*} ;;
		*) echo "check-layers: $where includes \"$hdr\": name headers by folder (\"core/log.h\")"; continue ;;
		esac
		case " $ok " in
		*" $to "*) ;;
		*) echo "check-layers: $where includes $hdr: $dir/ may include only $ok"; continue ;;
		esac
		if [ "$to" = s3 ] && [ "$dir" != s3 ] && [ "$hdr" != s3/store.h ] &&
		   ! { [ "$dir" = app ] && [ "$hdr" = s3/s3.h ]; }; then
			echo "check-layers: $where includes $hdr: above s3/ only s3/store.h is seen (app/ may make the store: s3/s3.h)"
		fi
	done
done > "$out" || true
if [ -s "$out" ]; then
	cat "$out"
	bad=1
fi

# S3 and STS error codes are compared where they are parsed (s3/, auth/,
# core/err.c's table), never above.
codes='AccessDenied|NoSuchKey|NoSuchBucket|SlowDown|InvalidIdentityToken|IDPCommunicationError|ExpiredToken|InvalidObjectState|PreconditionFailed|RequestTimeTooSkewed'
hits=$(grep -HnE "\"($codes)\"" app/*.c fs/*.c cache/*.c fs/*.h cache/*.h app/*.h 2>/dev/null |
	grep -E 'str(n?cmp|str|casecmp)' || true)
if [ -n "$hits" ]; then
	printf '%s\n' "$hits" | sed 's/^/check-layers: an error code compared above s3\/: /'
	bad=1
fi

if [ "$bad" = 0 ]; then
	echo "check-layers: the include graph keeps the layers (app fs cache s3 auth http core; csi)"
fi
exit $bad
