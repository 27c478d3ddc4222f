#!/usr/bin/python3
"""faultreport: the reliability table, from what the fault and load tests saw.

Each test module (test_faults, test_load, test_zz_server_restart) saves its
rows with save(module, rows) into DIR/fault-report/MODULE.json, replacing its
own previous rows, and render(DIR) writes DIR/fault-report.md from all of
them. DIR is $IRSAFS_REPORT_DIR (meson sets the build directory), else
/tmp/irsafs-fault-report. Run it as a program to print the table:

    tests/faultreport.py [DIR]

A row: fault, how it was applied (rate, count, window), the operations a
user made (open+read+hash or a directory listing), the HTTP requests the
proxy saw and how many it broke, irsafs's retries (its "retry in" log lines),
the operations that failed and with which errno, and the bytes whose SHA-256
was checked.
"""
import json
import os
import sys
import tempfile

COLUMNS = ("fault", "applied", "budget", "ops", "requests", "injected", "retried",
           "failed (errno)", "bytes verified")


def report_dir():
    d = os.environ.get("IRSAFS_REPORT_DIR") or os.path.join(tempfile.gettempdir(),
                                                             "irsafs-fault-report")
    os.makedirs(d, exist_ok=True)
    return d


def save(module, rows, directory=None):
    d = os.path.join(directory or report_dir(), "fault-report")
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, module + ".json.tmp")
    with open(tmp, "w") as f:
        json.dump(rows, f, indent=1)
    os.replace(tmp, os.path.join(d, module + ".json"))
    return render(directory)


def _fmt_failed(failed):
    if not failed:
        return "0"
    return ", ".join("%d %s" % (n, e) for e, n in sorted(failed.items()))


def _fmt_bytes(n):
    if n >= 1 << 20:
        return "%.1f MiB" % (n / (1 << 20))
    if n >= 1 << 10:
        return "%.1f KiB" % (n / (1 << 10))
    return "%d B" % n


def table(rows):
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [r["fault"], r["applied"], r.get("budget", ""), str(r["ops"]),
                 str(r.get("requests", "")), str(r.get("injected", "")),
                 str(r.get("retried", "")), _fmt_failed(r.get("failed", {})),
                 _fmt_bytes(r.get("bytes", 0))]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out) + "\n"


def render(directory=None):
    directory = directory or report_dir()
    d = os.path.join(directory, "fault-report")
    rows = []
    if os.path.isdir(d):
        for name in sorted(os.listdir(d)):
            if name.endswith(".json"):
                with open(os.path.join(d, name)) as f:
                    rows += json.load(f)
    text = table(rows)
    with open(os.path.join(directory, "fault-report.md"), "w") as f:
        f.write(text)
    return text


if __name__ == "__main__":
    sys.stdout.write(render(sys.argv[1] if len(sys.argv) > 1 else None))
