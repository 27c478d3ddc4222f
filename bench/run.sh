#!/bin/sh
# bench/run.sh -- irsafs against aws s3 sync, s3fs, rclone mount and direct HTTP, on the
# local radosgw testbed, in one run on the same data. Not a test: it measures.
#
#   bench/run.sh                     # everything but the million keys, 5 rounds
#   REPS=1 TESTS="seq ttfb" CLIENTS="direct irsafs" bench/run.sh
#   TESTS="million" CLIENTS="direct irsafs" bench/run.sh    # opt-in: 1,000,000 keys
#   PUBLISH=1 bench/run.sh           # also copy results.md and chart.png to bench/results/
#   TLS=aws bench/run.sh             # seq-tls against the testbed's AWS mode (HTTPS on 443)
#
# Installs what it runs from Debian (awscli, python3-matplotlib, fio, rsync, s3fs,
# rclone, fuse3); builds irsafs (release) in build-bench/ unless IRSAFS_BIN is set;
# starts or reuses the testbed (tests/testbed/up.sh, DIR $TESTBED_DIR or
# /tmp/irsafs-testbed); builds the data set in $BUCKET (bench/dataset.py: 1 GiB + 100
# MiB random objects, 10,000 x 4 KiB, a nested tree) and, when TESTS names million,
# the million-key bucket (once per testbed; it takes a while: see the README). Writes
# results.md, results.json, raw.json, chart.png and logs/ to $OUT (default
# /tmp/irsafs-bench). KEEP_BIG=0 deletes the two large objects at the end (the testbed
# keeps objects in RAM). TLS=aws starts the testbed's AWS mode (tests/testbed/aws-up.sh:
# HTTPS for s3.REGION.amazonaws.com on loopback, with a test CA) and runs the benchmark
# inside tests/testbed/aws-run, where those names resolve, with TLS_ENDPOINT and
# TLS_CA_BUNDLE pointing at it. bench/bench.py lists every setting. Must run as root (drops
# the page cache between tests).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export TESTBED_DIR=${TESTBED_DIR:-/tmp/irsafs-testbed}
export BUCKET=${BUCKET:-bench-bucket}
export OUT=${OUT:-/tmp/irsafs-bench}
PY=/usr/bin/python3
CLIENTS=${CLIENTS:-direct irsafs irsafs-cache s3fs rclone-off rclone-full rclone-smt}
TESTS=${TESTS:-ttfb seq seq4 rand4k rand256k ls cat find stage seq-tls}
export CLIENTS TESTS

need=""
have() { command -v "$1" >/dev/null; }
case " $CLIENTS " in *" s3fs "*) have s3fs || need="$need s3fs" ;; esac
case " $CLIENTS " in *" rclone"*) have rclone || need="$need rclone" ;; esac
have fio || need="$need fio"
have rsync || need="$need rsync"
[ -x /usr/bin/aws ] || need="$need awscli"
$PY -c 'import matplotlib' 2>/dev/null || need="$need python3-matplotlib"
have fusermount3 || need="$need fuse3"
[ "${TLS:-}" != aws ] || have stunnel4 || need="$need stunnel4"
if [ -n "$need" ]; then
    echo "run.sh: installing$need" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y $need >/dev/null
fi

if [ -z "${IRSAFS_BIN:-}" ]; then
    [ -d "$ROOT/build-bench" ] || meson setup "$ROOT/build-bench" "$ROOT" --buildtype=release >/dev/null
    ninja -C "$ROOT/build-bench" app/irsafs >/dev/null
    IRSAFS_BIN="$ROOT/build-bench/app/irsafs"
fi
export IRSAFS_BIN

"$ROOT/tests/testbed/up.sh" "$TESTBED_DIR" >/dev/null
$PY "$ROOT/bench/dataset.py" "$TESTBED_DIR" "$BUCKET"
case " $TESTS " in *" million "*) $PY "$ROOT/bench/dataset.py" "$TESTBED_DIR" "$BUCKET" --million ;; esac

RUN=""
if [ "${TLS:-}" = aws ]; then
    "$ROOT/tests/testbed/aws-up.sh" "$TESTBED_DIR" >/dev/null
    export TLS_ENDPOINT="https://s3.${REGION:-us-east-1}.amazonaws.com"
    export TLS_CA_BUNDLE="$TESTBED_DIR/aws/ca.pem"
    RUN="$ROOT/tests/testbed/aws-run $TESTBED_DIR"
fi

mkdir -p "$OUT"
ver() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo none; }
export BENCH_MACHINE="$(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r), $(nproc) cores ($(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo)"
export BENCH_RGW="$(ver radosgw)"
export BENCH_VERSIONS="irsafs $("$IRSAFS_BIN" --version | awk '{print $2}'), awscli $(ver awscli), s3fs $(ver s3fs), rclone $(ver rclone), fuse3 $(ver fuse3), curl $(ver curl), fio $(ver fio), rsync $(ver rsync), tar $(ver tar)"
$RUN $PY "$ROOT/bench/bench.py"
if [ "${KEEP_BIG:-1}" = 0 ]; then
    $PY "$ROOT/bench/dataset.py" "$TESTBED_DIR" "$BUCKET" --drop-big
fi
if [ "${PUBLISH:-0}" = 1 ]; then
    mkdir -p "$ROOT/bench/results"
    cp "$OUT/results.md" "$OUT/chart.png" "$ROOT/bench/results/"
    echo "run.sh: copied results.md and chart.png to bench/results/ (the README shows them)" >&2
fi
echo "run.sh: results in $OUT/results.md, results.json, chart.png" >&2
