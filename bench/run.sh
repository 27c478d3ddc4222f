#!/bin/sh
# bench/run.sh -- irsafs against s3fs, rclone mount and direct HTTP, on the local
# radosgw testbed, in one run on the same data. Not a test: it measures.
#
#   bench/run.sh                     # everything, 5 runs each (about 25 min)
#   REPS=1 TESTS="seq ttfb" CLIENTS="direct irsafs" bench/run.sh
#
# Installs s3fs, rclone, fio and gnuplot from Debian; builds irsafs (release)
# in build-bench/ unless IRSAFS_BIN is set; starts or reuses the testbed
# (tests/testbed/up.sh, DIR $TESTBED_DIR or /tmp/irsafs-testbed); builds the
# data set in $BUCKET (bench/dataset.py: 1 GiB + 100 MiB random objects,
# 10,000 x 4 KiB, a nested tree). Writes results.md, results.json, raw.json,
# chart.png and logs/ to $OUT (default /tmp/irsafs-bench). KEEP_BIG=0 deletes
# the two large objects at the end (the testbed keeps objects in RAM).
# Must run as root (drops the page cache between tests).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export TESTBED_DIR=${TESTBED_DIR:-/tmp/irsafs-testbed}
export BUCKET=${BUCKET:-bench-bucket}
export OUT=${OUT:-/tmp/irsafs-bench}
PY=/usr/bin/python3

need=""
command -v s3fs >/dev/null || need="$need s3fs"
command -v rclone >/dev/null || need="$need rclone"
command -v fio >/dev/null || need="$need fio"
command -v gnuplot >/dev/null || need="$need gnuplot-nox"
command -v fusermount3 >/dev/null || need="$need fuse3"
if [ -n "$need" ]; then
    echo "run.sh: installing$need" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y $need >/dev/null
fi

if [ -z "${IRSAFS_BIN:-}" ]; then
    [ -d "$ROOT/build-bench" ] || meson setup "$ROOT/build-bench" "$ROOT" --buildtype=release >/dev/null
    ninja -C "$ROOT/build-bench" fs/irsafs >/dev/null
    IRSAFS_BIN="$ROOT/build-bench/fs/irsafs"
fi
export IRSAFS_BIN

"$ROOT/tests/testbed/up.sh" "$TESTBED_DIR" >/dev/null
$PY "$ROOT/bench/dataset.py" "$TESTBED_DIR" "$BUCKET"

mkdir -p "$OUT"
export BENCH_MACHINE="$(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo)"
export BENCH_RGW="$(dpkg-query -W -f '${Version}' radosgw 2>/dev/null || echo unknown)"
export BENCH_VERSIONS="irsafs $("$IRSAFS_BIN" --version | awk '{print $2}'), s3fs $(dpkg-query -W -f '${Version}' s3fs), rclone $(dpkg-query -W -f '${Version}' rclone), fuse3 $(dpkg-query -W -f '${Version}' fuse3), curl $(dpkg-query -W -f '${Version}' curl)"
$PY "$ROOT/bench/bench.py"
if [ "${KEEP_BIG:-1}" = 0 ]; then
    $PY "$ROOT/bench/dataset.py" "$TESTBED_DIR" "$BUCKET" --drop-big
fi
echo "run.sh: results in $OUT/results.md, results.json, chart.png" >&2
