"""The benchmark's results: medians with their spread, ratios to the reference, issue 16's
goals, a markdown table and a chart (PNG, matplotlib).

Every ratio is taken within one round (each round runs every client on every test, in
the same order), so the machine's drift between rounds does not enter it; a figure
is the median of the rounds' ratios, with their min and max.
"""
import os
import statistics

# The million-key test's size (bench/common.py), for its headings: "1M", or "200k" for
# MILLION_KEYS=200000.
_MK = int(os.environ.get("MILLION_KEYS", "1000000"))
MK = f"{_MK // 1000000}M" if _MK % 1000000 == 0 else f"{_MK // 1000}k" if _MK % 1000 == 0 else f"{_MK:,}"
MK_PAGES = f"{max(_MK // 1000, 1):,} pages"

# key, heading, sense (1: more is better, -1: less is better)
READ_COLUMNS = [
    ("seq_cold_mbs", "seq cold MB/s", 1), ("seq_warm_mbs", "seq warm MB/s", 1),
    ("seq4_mbs", "4 readers MB/s", 1), ("seq4_recv_ratio", "4 readers: received / read", -1),
    ("rand4k_iops", "rand 4k IOPS", 1), ("rand4k_warm_iops", "rand 4k again IOPS", 1),
    ("rand256k_iops", "rand 256k IOPS", 1), ("ttfb_ms", "TTFB ms", -1),
    ("seq_cold_cpu_per_gib", "CPU s/GiB (seq)", -1), ("seq4_rss_mib", "peak RSS MiB (4 readers)", -1),
    ("seq4_machine_cpu_per_gib", "machine CPU s/GiB (4 readers)", -1),
    ("seq_tls_mbs", "seq TLS MB/s", 1), ("seq_tls_cpu_per_gib", "CPU s/GiB (TLS)", -1),
]
META_COLUMNS = [
    ("ls_s", "`ls -l` 10k s", -1), ("cat_s", "cat 1000 s", -1), ("find_s", "find s", -1),
    ("stage_aws_s", "aws s3 sync s", -1), ("stage_cp_s", "cp -a s", -1),
    ("stage_tar_s", "tar s", -1), ("stage_rsync_s", "rsync -a s", -1),
    ("million_ls_s", f"`ls -l` {MK} s", -1), ("million_first_s", f"{MK}: first entry s", -1),
    ("million_names_s", f"{MK}: all names s", -1), ("million_rss_mib", f"{MK}: peak RSS MiB", -1),
]
REQ_COLUMNS = ["ttfb_req", "seq_req", "seq_warm_req", "seq4_req", "rand4k_req", "rand4k_warm_req",
               "rand256k_req", "ls_req", "cat_req", "find_req", "stage_req", "stage_cp_req",
               "stage_tar_req", "stage_rsync_req", "million_req"]

# Ratio to the reference: (label, key, sense, reference client, reference key, bar, clients).
# sense 1: client / reference; -1: reference / client. Either way, 1 is "as good as the
# reference" and more is better; the bar irsafs must reach (None: none) is in the same
# sense; clients: those the ratio is for (None: every client but the reference).
RATIOS = [
    ("seq cold (vs 8 GETs)", "seq_cold_mbs", 1, "direct", "seq4_mbs", 0.9, None),
    ("4 readers (vs 8 GETs)", "seq4_mbs", 1, "direct", "seq4_mbs", 0.9, None),
    ("rand 4k", "rand4k_iops", 1, "direct", "rand4k_iops", 0.8, None),
    ("rand 4k: --cache-dir (vs without)", "rand4k_iops", 1, "irsafs", "rand4k_iops", 0.8,
     ("irsafs-cache",)),
    ("rand 256k", "rand256k_iops", 1, "direct", "rand256k_iops", None, None),
    ("time to first byte", "ttfb_ms", -1, "direct", "ttfb_ms", 1 / 1.5, None),
    ("ls -l 10k", "ls_s", -1, "direct", "ls_s", 1 / 1.5, None),
    ("cat 1000", "cat_s", -1, "direct", "cat_s", None, None),
    ("find", "find_s", -1, "direct", "find_s", None, None),
    ("stage: cp -a (vs aws s3 sync)", "stage_cp_s", -1, "direct", "stage_aws_s", 1 / 0.67, None),
    ("stage: tar (vs aws s3 sync)", "stage_tar_s", -1, "direct", "stage_aws_s", 1 / 0.67, None),
    ("stage: rsync -a (vs aws s3 sync)", "stage_rsync_s", -1, "direct", "stage_aws_s", 1 / 0.67,
     None),
    (f"ls -l {MK} (vs {MK_PAGES})", "million_ls_s", -1, "direct", "million_ls_s", 1 / 1.5, None),
    ("seq over TLS (vs 8 GETs)", "seq_tls_mbs", 1, "direct", "seq_tls_mbs", 0.9, None),
]

# Issue 16's goals: (goal, what is measured, function of one round's raw -> value, bar, sense).
# sense -1: the value must be at most the bar; 1: at least.


def _pair(a_client, a_key, b_client, b_key):
    def f(rnd):
        a, b = rnd.get(a_client, {}).get(a_key), rnd.get(b_client, {}).get(b_key)
        return a / b if a is not None and b else None
    return f


def _one(client, key, field=None):
    def f(rnd):
        v = rnd.get(client, {}).get(key)
        if v is not None and field:
            v = v.get(field)
        return v
    return f


GOALS = [
    ("1. staging", "`irsafs exec -- cp -a` time / `aws s3 sync` time",
     _pair("irsafs", "stage_cp_s", "direct", "stage_aws_s"), 0.67, -1),
    ("1. staging", "`irsafs exec -- tar` time / `aws s3 sync` time",
     _pair("irsafs", "stage_tar_s", "direct", "stage_aws_s"), 0.67, -1),
    ("1. staging", "`irsafs exec -- rsync -a` time / `aws s3 sync` time",
     _pair("irsafs", "stage_rsync_s", "direct", "stage_aws_s"), 0.67, -1),
    ("2. four readers", "4 quarter readers / 8 ranged curls (MB/s)",
     _pair("irsafs", "seq4_mbs", "direct", "seq4_mbs"), 0.9, 1),
    ("2. four readers", "CPU of the whole machine (server too) per GiB, irsafs / 8 curls (stated)",
     _pair("irsafs", "seq4_machine_cpu_per_gib", "direct", "seq4_machine_cpu_per_gib"), None, -1),
    ("2. four readers", "bytes received / bytes read",
     _one("irsafs", "seq4_recv_ratio"), 1.05, -1),
    ("3. disk cache", "rand 4k IOPS with `--cache-dir` / without",
     _pair("irsafs-cache", "rand4k_iops", "irsafs", "rand4k_iops"), 0.8, 1),
    ("3. disk cache", "GETs of a second pass over the same ranges",
     _one("irsafs-cache", "rand4k_warm_req", "get"), 0, -1),
    ("4. a million keys", f"`ls -l` of {MK} keys: time / listing them directly ({MK_PAGES})",
     _pair("irsafs", "million_ls_s", "direct", "million_ls_s"), 1.5, -1),
    ("4. a million keys", "first entry / the direct listing's last page (time)",
     _pair("irsafs", "million_first_s", "direct", "million_ls_s"), 1.0, -1),
    ("4. a million keys", "peak RSS of `ls -l`, MiB (stated; bound: --metadata-cache-size + fixed)",
     _one("irsafs", "million_rss_mib"), None, -1),
    ("5. TLS", "seq over HTTPS / 8 ranged curls over HTTPS (MB/s)",
     _pair("irsafs", "seq_tls_mbs", "direct", "seq_tls_mbs"), 0.9, 1),
    ("5. TLS", "irsafs CPU s per GiB over HTTPS (stated)",
     _one("irsafs", "seq_tls_cpu_per_gib"), None, -1),
]


def fmt(v):
    if v is None:
        return "–"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def spread(vals):
    """median [min–max] of the values that are there, or None."""
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def fmt_spread(s, unit=""):
    if not s:
        return "–"
    if s["min"] == s["max"]:
        return f"{fmt(s['median'])}{unit}"
    return f"{fmt(s['median'])}{unit} [{fmt(s['min'])}–{fmt(s['max'])}]"


def rounds(raw):
    """raw (client -> list of rounds) as a list of rounds (client -> figures)."""
    n = max((len(v) for v in raw.values()), default=0)
    return [{c: reps[i] for c, reps in raw.items() if i < len(reps)} for i in range(n)]


def summarize(raw):
    summary = {}
    for client, reps in raw.items():
        s = {}
        keys = {k for rep in reps for k in rep}
        for k in keys:
            vals = [rep[k] for rep in reps if k in rep]
            if vals and isinstance(vals[0], dict):
                s[k] = {f: statistics.median(v[f] for v in vals) for f in vals[0]}
                s[k]["min_total"] = min(v["total"] for v in vals)
                s[k]["max_total"] = max(v["total"] for v in vals)
            elif vals and isinstance(vals[0], (int, float)):
                s[k] = spread(vals)
        summary[client] = s
    return summary


def ratios(raw):
    """client -> label -> spread of the per-round ratios, and the goal."""
    out = {}
    rs = rounds(raw)
    for client in raw:
        for label, key, sense, ref, ref_key, goal, only in RATIOS:
            if client == ref or (only and client not in only):
                continue
            vals = []
            for rnd in rs:
                a, b = rnd.get(client, {}).get(key), rnd.get(ref, {}).get(ref_key)
                if a and b:
                    vals.append(a / b if sense > 0 else b / a)
            s = spread(vals)
            if s:
                out.setdefault(client, {})[label] = dict(s, goal=goal)
    return out


def goals(raw):
    rs = rounds(raw)
    out = []
    for goal, what, f, bar, sense in GOALS:
        s = spread([f(r) for r in rs])
        met = None
        if s and bar is not None:
            met = s["median"] <= bar if sense < 0 else s["median"] >= bar
        out.append({"goal": goal, "what": what, "value": s, "bar": bar, "sense": sense, "met": met})
    return out


def _table(summary, columns):
    present = [c for c in columns if any(c[0] in s for s in summary.values())]
    if not present:
        return []
    hdr = ["client"] + [c[1] for c in present]
    lines = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for client, s in summary.items():
        lines.append("| " + " | ".join([client] + [fmt_spread(s.get(k)) for k, _, _ in present]) + " |")
    return lines + [""]


def markdown(raw, meta):
    summary = summarize(raw)
    lines = [f"Measured {meta['date']} on {meta['machine']}; radosgw {meta['rgw']} (memstore, loopback). "
             f"{meta['reps']} rounds: median [min–max]. Fresh mount per test, kernel caches dropped.",
             f"Versions: {meta['versions']}.", ""]
    lines += ["Reads:", ""] + _table(summary, READ_COLUMNS)
    lines += ["Listings and staging (direct: ListObjectsV2 and GETs on one connection; staging: "
              f"`aws s3 sync` of small/, {meta.get('small_files', 10000):,} × 4 KiB):", ""]
    lines += _table(summary, META_COLUMNS)
    lines += ["Direct: seq cold is one curl GET, 4 readers is 8 parallel ranged curl GETs (the ceiling), "
              "random reads are ranged GETs on one keep-alive connection. irsafs-cache is irsafs with "
              "`--cache-dir`; its \"again\" figures are a second pass over the same ranges, past the page "
              "cache. Staging through irsafs is `irsafs exec` timed whole (mount, copy, unmount); through "
              "s3fs and rclone, the copy on a mounted client.", ""]
    fb = [c for c, s in summary.items() if "stage_cp_fallback" in s]
    if fb:
        lines += [f"`cp -a` failed on {', '.join(fb)} (EIO to listxattr): their cp -a column is "
                  "`cp -r`.", ""]
    g = goals(raw)
    lines += ["Issue 16's goals (each round's ratio, then the median of the rounds):", "",
              "| goal | measured | value | bar | met |", "|---|---|---|---|---|"]
    for row in g:
        bar = "–" if row["bar"] is None else ("≤ " if row["sense"] < 0 else "≥ ") + fmt(row["bar"])
        met = {None: "–", True: "yes", False: "**no**"}[row["met"]]
        lines.append(f"| {row['goal']} | {row['what']} | {fmt_spread(row['value'])} | {bar} | {met} |")
    lines.append("")
    rt = ratios(raw)
    labels = [r[0] for r in RATIOS if any(r[0] in v for v in rt.values())]
    if labels:
        lines += ["Ratio to the reference, per round (1 = as good as direct; more is better; times "
                  "inverted):", "", "| client | " + " | ".join(labels) + " |",
                  "|" + "---|" * (len(labels) + 1)]
        for client, v in rt.items():
            lines.append("| " + " | ".join([client] + [fmt_spread(v.get(lb), "×") for lb in labels]) + " |")
        lines.append("")
    req = [k for k in REQ_COLUMNS if any(k in s for s in summary.values())]
    lines += ["S3 requests per test (median total: lists/HEADs/GETs, errors; MB sent by radosgw):", "",
              "| client | " + " | ".join(req) + " |", "|" + "---|" * (len(req) + 1)]
    for client, s in summary.items():
        row = [client]
        for k in req:
            v = s.get(k)
            if not v:
                row.append("–")
                continue
            rng = "" if v["min_total"] == v["max_total"] else f" [{v['min_total']:.0f}–{v['max_total']:.0f}]"
            row.append(f"{v['total']:.0f}{rng} ({v['list']:.0f}/{v['head']:.0f}/{v['get']:.0f}"
                       f"{', %d err' % v['err'] if v['err'] else ''}), {v['bytes'] / 1e6:.0f} MB")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def chart(raw, meta, path):
    """Every client's ratio to the reference, one group of bars per measure (log scale),
    with the min–max of the rounds and the bar irsafs must reach where there is one."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rt = ratios(raw)
    clients = [c for c in raw if c in rt and c != "direct"]
    labels = [r[0] for r in RATIOS if any(r[0] in rt[c] for c in clients)]
    if not labels:
        return False
    goal_of = {r[0]: r[5] for r in RATIOS}
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    color = {c: colors[i % len(colors)] for i, c in enumerate(clients)}
    rows = sum(max(1, sum(1 for c in clients if lb in rt[c])) for lb in labels)
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.3 * rows + 0.25 * len(labels)))
    y, ticks, drawn = 0.0, [], set()
    for lb in labels:
        have = [c for c in clients if lb in rt[c]]
        top = y
        for c in have:
            s = rt[c][lb]
            ax.barh(y, s["median"], height=0.8, color=color[c],
                    xerr=[[s["median"] - s["min"]], [s["max"] - s["median"]]],
                    error_kw={"elinewidth": 0.8, "capsize": 2},
                    label=None if c in drawn else c)
            ax.text(s["max"] * 1.04, y, f"{s['median']:.2f}×", va="center", fontsize=7)
            drawn.add(c)
            y += 1
        if goal_of.get(lb):
            ax.plot([goal_of[lb]] * 2, [top - 0.5, y - 0.5], color="black", linewidth=1.5)
        ticks.append(((top + y - 1) / 2, lb))
        y += 0.6
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_yticks([t for t, _ in ticks])
    ax.set_yticklabels([lb for _, lb in ticks])
    ax.set_ylim(y - 0.4, -0.7)
    ax.set_xlabel("ratio to the reference (1 = as good as direct curl / aws; more is better; "
                  "black: the bar irsafs must reach)")
    ax.set_title(f"irsafs and its peers against the reference, median of {meta['reps']} rounds "
                 f"[min–max]\n{meta['date']}, {meta['machine']}", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return os.path.exists(path)

def main(argv):
    """report.py OUT: write OUT/results.md and OUT/chart.png again from OUT/results.json."""
    import json
    out = argv[1] if len(argv) > 1 else os.environ.get("OUT", "/tmp/irsafs-bench")
    with open(os.path.join(out, "results.json")) as f:
        res = json.load(f)
    md = markdown(res["raw"], res["meta"])
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(md)
    chart(res["raw"], res["meta"], os.path.join(out, "chart.png"))
    print(md)
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main(sys.argv))
