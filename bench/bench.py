#!/usr/bin/python3
"""irsafs against its peers on the local radosgw: the measuring half of bench/run.sh.

Each round runs every test of every client, in the same order; REPS rounds. Every
test runs on a fresh mount, and every test of every client, direct included,
starts the same way (common.settle: kernel caches dropped, then one HEAD of
another key). Each test is bracketed by two anonymous marker requests so the S3
requests it caused can be counted from radosgw's access log (only lines for the
test's bucket count, so other traffic on the testbed does not). For FUSE clients
the daemon's peak RSS (VmHWM) and CPU seconds (utime + stime) are read from /proc
before unmounting; for direct, the CPU of the curl and aws processes.

Tests (TESTS):
  ttfb seq seq4 rand4k rand256k ls cat find   reads and listings (see README)
  stage      10,000 x 4 KiB: `aws s3 sync` (direct) against `irsafs exec -- cp -a`,
             `tar` and `rsync -a` (irsafs), and `cp -a` on a mount (s3fs, rclone)
  million    opt-in: one directory of MILLION_KEYS keys (bucket MILLION_BUCKET, built
             once per testbed by dataset.py --million): `ls -l`, first entry, all names,
             peak RSS (irsafs) against ListObjectsV2 page by page (direct)
  seq-tls    cold sequential read over HTTPS (irsafs) against 8 ranged curls over HTTPS;
             runs when TLS_ENDPOINT is set (run.sh sets it with TLS=aws: the testbed's
             AWS mode), else skipped

Clients (CLIENTS): direct irsafs irsafs-cache s3fs rclone-off rclone-full rclone-smt.
irsafs-cache is irsafs with --cache-dir, in seq, rand4k and rand256k only.

Configuration (environment; run.sh sets the first ones):
  TESTBED_DIR, BUCKET, IRSAFS_BIN, OUT, REPS (5), FIO_RUNTIME (5), TTFB_SAMPLES (3),
  CLIENTS, TESTS (all but million), IRSAFS_ARGS (extra flags), BIG_MIB (1024: the big
  object), SMALL_FILES (10000), MILLION_KEYS (1000000), MILLION_BUCKET (bench-million),
  ENDPOINT (http://127.0.0.1:7480) and CA_BUNDLE for every client, TLS_ENDPOINT,
  TLS_CA_BUNDLE and TLS_RESOLVE (curl --resolve HOST:443:ADDR) for seq-tls, RGW_LOG
  (TESTBED_DIR/log/rgw.log).
"""
import json
import os
import sys
import time

from common import (BIG_MIB, FIO_RUNTIME, IRSAFS_ARGS, OUT, REPS, SMALL_FILES, TLS_ENDPOINT,
                    log)
from report import chart, goals, markdown, summarize
from workloads import applies, run_test

CLIENTS = os.environ.get("CLIENTS", "direct irsafs irsafs-cache s3fs rclone-off rclone-full "
                         "rclone-smt").split()
TESTS = os.environ.get("TESTS", "ttfb seq seq4 rand4k rand256k ls cat find stage seq-tls").split()


def main():
    os.makedirs(os.path.join(OUT, "logs"), exist_ok=True)
    tests = list(TESTS)
    if "seq-tls" in tests and not TLS_ENDPOINT:
        log("seq-tls skipped: TLS_ENDPOINT is not set (start tests/testbed's AWS mode and "
            "set TLS_ENDPOINT, TLS_CA_BUNDLE)")
        tests.remove("seq-tls")
    raw = {c: [] for c in CLIENTS}
    for rep in range(REPS):
        for client in CLIENTS:
            res = {}
            for test in tests:
                if not applies(client, test):
                    continue
                t0 = time.monotonic()
                try:
                    res.update(run_test(client, test))
                except Exception as e:  # one broken run must not lose the others
                    log(f"{client} {test} round {rep + 1}: {str(e)[:300]}")
                    res[test + "_error"] = str(e)[:300]
                log(f"round {rep + 1}/{REPS} {client:12s} {test:9s} {time.monotonic() - t0:7.1f} s")
            raw[client].append(res)
        with open(os.path.join(OUT, "raw.json"), "w") as f:
            json.dump(raw, f, indent=1)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": os.environ.get("BENCH_MACHINE", ""),
        "rgw": os.environ.get("BENCH_RGW", ""),
        "reps": REPS, "fio_runtime": FIO_RUNTIME, "irsafs_args": IRSAFS_ARGS,
        "versions": os.environ.get("BENCH_VERSIONS", ""), "tests": tests, "clients": CLIENTS,
        "big_mib": BIG_MIB, "small_files": SMALL_FILES,
    }
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"meta": meta, "summary": summarize(raw), "goals": goals(raw), "raw": raw}, f,
                  indent=1, default=str)
    md = markdown(raw, meta)
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(md)
    if not chart(raw, meta, os.path.join(OUT, "chart.png")):
        log("no chart: no ratio to draw")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
