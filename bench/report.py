#!/usr/bin/env python3
"""Turns bench/load.py's JSON into the markdown tables of docs/benchmarks.md and a chart.

Usage: report.py RESULTS.json MARKDOWN_OUT [CHART_PNG]
Medians over rounds; ratios are gateway / reference of the medians of the same run.
"""

import json
import statistics
import sys
from collections import defaultdict

# (gateway row, reference row) for each store; the fs pair last.
PAIRS = [("gateway-cache/{s}", "s3-gateway-cache/{s}"), ("gateway-cache/{s}", "direct/{s}"),
         ("gateway/{s}", "s3-gateway/{s}"), ("gateway/{s}", "direct/{s}"), ("gateway/{s}", "nginx-proxy/{s}"),
         ("gateway/{s}", "gateway-before/{s}")]
FS_PAIRS = [("gateway/fs", "nginx-static/fs")]


def summarize(runs):
    cells = defaultdict(list)
    for r in runs:
        cells[(r["config"], r["size"], r["concurrency"])].append(r)
    out = {}
    for key, rs in cells.items():
        seconds = [r["duration_us"] / 1e6 for r in rs]
        out[key] = {
            "rps": statistics.median(r["requests"] / s for r, s in zip(rs, seconds, strict=True)),
            "mbps": statistics.median(r["bytes"] / s / 1e6 for r, s in zip(rs, seconds, strict=True)),
            "p50_ms": statistics.median(r["p50_us"] / 1000 for r in rs),
            "p99_ms": statistics.median(r["p99_us"] / 1000 for r in rs),
            "max_ms": max(r["max_us"] / 1000 for r in rs),
            "cpu_us_per_req": statistics.median(r["cpu_s"] / r["requests"] * 1e6 for r in rs if r["requests"]),
            "store_cpu_us_per_req": statistics.median(r["store_cpu_s"] / r["requests"] * 1e6 for r in rs
                                                      if r["requests"]) if rs[0].get("store_cpu_s") is not None
            else None,
            "peak_rss_mib": max((r["peak_rss_kib"] or 0) / 1024 for r in rs) or None,
            "errors": sum(r["errors"] + r["non2xx"] for r in rs),
            "rounds": len(rs),
        }
    return out


def fmt(value, digits=0):
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def pairs(report):
    stores = sorted({row.split("/")[1] for row in report["settings"]["rows"]} - {"fs"},
                    key=lambda s: (s != "minio", s))
    return [(a.format(s=s), b.format(s=s)) for s in stores for a, b in PAIRS] + FS_PAIRS


def tables(report):
    s = summarize(report["runs"])
    rows = report["settings"]["rows"]
    labels = report["settings"]["sizes"] + (["hotset"] if report["settings"].get("hotset") else [])
    lines = []
    for label in labels:
        title = label if label != "hotset" else (f"hot set: {report['settings']['hotset']} objects of 10–50 KB, "
                                                 "Zipf(1.0) popularity")
        lines.append(f"\n#### {title}\n")
        lines.append("| config/store | c | req/s | MB/s | p50 ms | p99 ms | max ms | CPU µs/req | store CPU µs/req "
                     "| peak RSS MiB | errors |")
        lines.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        levels = sorted({k[2] for k in s if k[1] == label})
        for c in levels:
            for row in rows:
                m = s.get((row, label, c))
                if not m:
                    continue
                lines.append(
                    f"| {row} | {c} | {fmt(m['rps'])} | {fmt(m['mbps'], 1)} | {fmt(m['p50_ms'], 2)} "
                    f"| {fmt(m['p99_ms'], 2)} | {fmt(m['max_ms'], 1)} | {fmt(m['cpu_us_per_req'])} "
                    f"| {fmt(m['store_cpu_us_per_req'])} | {fmt(m['peak_rss_mib'], 1)} | {m['errors']} |"
                )
    lines.append("\n#### Ratios (gateway ÷ reference, medians of the same run)\n")
    lines.append("| pair | size | c | req/s | MB/s | p99 (lower is better) |")
    lines.append("|---|---|--:|--:|--:|--:|")
    for a, b in pairs(report):
        for label in labels:
            for c in sorted({k[2] for k in s if k[1] == label}):
                ma, mb = s.get((a, label, c)), s.get((b, label, c))
                if not ma or not mb:
                    continue
                p99 = ma["p99_ms"] / mb["p99_ms"] if mb["p99_ms"] else None
                rps = ma["rps"] / mb["rps"] if mb["rps"] else None
                lines.append(f"| {a} ÷ {b} | {label} | {c} | {fmt(rps, 2)} "
                             f"| {ma['mbps'] / mb['mbps']:.2f} | {fmt(p99, 2)} |")
    if report.get("herd"):
        lines.append("\n#### Herd: one new 1 MB object, 256 connections send their first GET at once\n")
        lines.append("| config/store | GETs reaching MinIO | last byte after | errors |")
        lines.append("|---|--:|--:|--:|")
        for h in report["herd"]:
            lines.append(f"| {h['config']} | {h['storage_reads']} | {h['last_byte_s'] * 1000:,.0f} ms | {h['errors']} |")
    memory = report.get("memory")
    if memory:
        lines.append(f"\nMemory: with the cache holding {memory['cache_bytes'] / 2**20:.1f} MiB (cache.max_bytes "
                     f"64 MiB), {memory['concurrency']} concurrent {memory['size']} downloads peaked at "
                     f"{memory['peak_rss_kib'] / 1024:.1f} MiB RSS ({memory['requests']} downloads, "
                     f"{memory['errors']} errors).")
    ready = report["start_to_ready_ms"]
    lines.append(f"\nProcess start to `/readyz` 200 (fs backend, {len(ready)} starts): median "
                 f"{statistics.median(ready):.1f} ms, max {max(ready):.1f} ms.")
    return "\n".join(lines), s


def chart(summary, report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = report["settings"]["sizes"] + (["hotset"] if report["settings"].get("hotset") else [])
    shown = [p for p in pairs(report) if any(k[0] == p[0] for k in summary) and any(k[0] == p[1] for k in summary)]
    fig, axes = plt.subplots(1, len(shown), figsize=(4.5 * len(shown), 4), sharey=True, squeeze=False)
    for ax, (a, b) in zip(axes[0], shown, strict=False):
        levels = sorted({k[2] for k in summary if k[0] == a})
        width = 0.8 / len(levels)
        for i, c in enumerate(levels):
            ratios = []
            for label in labels:
                ma, mb = summary.get((a, label, c)), summary.get((b, label, c))
                ratios.append(ma["rps"] / mb["rps"] if ma and mb else 0)
            ax.bar([x + i * width for x in range(len(labels))], ratios, width, label=f"c={c}")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks([x + width * (len(levels) - 1) / 2 for x in range(len(labels))], labels)
        ax.set_title(f"{a}\n÷ {b}", fontsize=9)
        ax.set_yscale("log")
    axes[0][0].set_ylabel("requests/s ratio")
    axes[0][0].legend()
    fig.suptitle("image-gateway relative to each reference (median of rounds; 1.0 = equal)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    report = json.load(open(sys.argv[1]))
    text, summary = tables(report)
    with open(sys.argv[2], "w") as f:
        f.write(text + "\n")
    if len(sys.argv) > 3:
        chart(summary, report, sys.argv[3])
    print(text)


if __name__ == "__main__":
    main()
