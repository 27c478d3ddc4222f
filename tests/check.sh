#!/usr/bin/env bash
# The test command: install what is needed, build (strict warnings as errors),
# run every test (unit, SigV4 vectors, XML fixtures, mount tests against the
# local radosgw testbed), then build again with ASan+UBSan and run them all
# again; then a ThreadSanitizer build runs the concurrent tests, valgrind
# memcheck one mount test, and each fuzz target gets a short run; last, the
# reliability table. Ends with "N passed, M failed".
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
run_suite() { # name, build dir, extra meson test arguments
	local name=$1 dir=$2 log="$2/meson-logs/testlog.txt" ok fail
	shift 2
	if meson test -C "$dir" --print-errorlogs --num-processes 1 "$@"; then :; fi
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
# The packaging suite (.deb, container recipe, manifests) ran with the gcc build,
# and so did the mount tests that mostly wait on timers (marked long_wait: a
# credential lifetime, an operation's budget), which take no path the rest
# does not.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	IRSAFS_SKIP_LONG_WAITS=1 run_suite "asan+ubsan build" build-asan --no-suite packaging

# A check outside meson test counts as one pass or one failure.
run_step() { # name, command...
	local name=$1
	shift
	if "$@"; then
		passed=$((passed + 1))
		summary+=("$name: passed")
	else
		failed=$((failed + 1))
		summary+=("$name: FAILED")
	fi
}
mount_pytest() { # IRSAFS_BIN, pytest arguments...
	IRSAFS_BIN=$1 PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -m pytest -q -p no:cacheprovider \
		-rs "${@:2}"
}

echo "== ThreadSanitizer: the concurrent tests (unit tests, 64-reader load test)"
[ -d build-tsan ] || meson setup build-tsan -Dwerror=true -Db_sanitize=thread -Db_lundef=false \
	>/dev/null
ninja -C build-tsan
TSAN_OPTIONS=halt_on_error=1 run_suite "tsan build" build-tsan --suite unit
TSAN_OPTIONS=halt_on_error=0 IRSAFS_REPORT_DIR=$src/build-tsan \
	IRSAFS_LOAD_SECONDS=${IRSAFS_TSAN_LOAD_SECONDS:-10} \
	run_step "tsan build: load test" mount_pytest "$src/build-tsan/app/irsafs" tests/mount/test_load.py

echo "== valgrind memcheck: one mount test"
vg=$src/build/irsafs-valgrind
printf '#!/bin/sh\nexec valgrind --quiet --error-exitcode=99 --leak-check=full %s %s "$@"\n' \
	"--errors-for-leak-kinds=definite --show-leak-kinds=definite --num-callers=30" \
	"$src/build/app/irsafs" >"$vg"
chmod +x "$vg"
run_step "valgrind: mount test" mount_pytest "$vg" \
	tests/mount/test_read.py -k test_odd_offsets_and_buffer_sizes

echo "== fuzz: each target for ${FUZZ_SECONDS:-20} s (clang, ASan+UBSan)"
run_step "fuzz" tests/fuzz/run.sh build-fuzz "${FUZZ_SECONDS:-20}"

echo "== reliability report (gcc build; tests/faultreport.py)"
/usr/bin/python3 tests/faultreport.py build || true

echo
for s in "${summary[@]}"; do echo "$s"; done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
