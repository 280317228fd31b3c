#!/usr/bin/env python3
"""Turns bench/load.py's JSON into the markdown tables of docs/benchmarks.md and a chart.

Usage: report.py RESULTS.json MARKDOWN_OUT [CHART_PNG]
Medians over rounds; ratios are gateway / reference of the medians of the same run.
"""

import json
import statistics
import sys
from collections import defaultdict

PAIRS = [("gateway-s3", "direct"), ("gateway-s3", "nginx-proxy"), ("gateway-fs", "nginx-static"),
         ("gateway-fs-inline", "nginx-static")]


def summarize(runs):
    cells = defaultdict(list)
    for r in runs:
        cells[(r["config"], r["size"], r["concurrency"])].append(r)
    out = {}
    for key, rs in cells.items():
        seconds = [r["duration_us"] / 1e6 for r in rs]
        gb = [r["bytes"] / 1e9 for r in rs]
        out[key] = {
            "rps": statistics.median(r["requests"] / s for r, s in zip(rs, seconds)),
            "mbps": statistics.median(r["bytes"] / s / 1e6 for r, s in zip(rs, seconds)),
            "p50_ms": statistics.median(r["p50_us"] / 1000 for r in rs),
            "p99_ms": statistics.median(r["p99_us"] / 1000 for r in rs),
            "max_ms": max(r["max_us"] / 1000 for r in rs),
            "cpu_s_per_gb": statistics.median(r["cpu_s"] / g for r, g in zip(rs, gb) if g > 0) if any(gb) else None,
            "garage_cpu_s_per_gb": statistics.median(r["garage_cpu_s"] / g for r, g in zip(rs, gb) if g > 0)
            if any(gb) else None,
            "peak_rss_mib": max((r["peak_rss_kib"] or 0) / 1024 for r in rs) or None,
            "errors": sum(r["errors"] + r["non2xx"] for r in rs),
            "rounds": len(rs),
        }
    return out


def fmt(value, digits=0):
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def tables(report):
    s = summarize(report["runs"])
    configs = [c for c in ["gateway-s3", "direct", "nginx-proxy", "gateway-fs", "gateway-fs-inline", "nginx-static"]
               if any(k[0] == c for k in s)]
    sizes = report["settings"]["sizes"]
    levels = report["settings"]["concurrency"]
    lines = []
    for size in sizes:
        lines.append(f"\n#### {size}\n")
        lines.append("| config | c | req/s | MB/s | p50 ms | p99 ms | max ms | server CPU s/GB | Garage CPU s/GB "
                     "| peak RSS MiB | errors |")
        lines.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for c in levels:
            for config in configs:
                m = s.get((config, size, c))
                if not m:
                    continue
                garage = m["garage_cpu_s_per_gb"] if config in ("gateway-s3", "nginx-proxy") else None
                lines.append(
                    f"| {config} | {c} | {fmt(m['rps'])} | {fmt(m['mbps'], 1)} | {fmt(m['p50_ms'], 2)} "
                    f"| {fmt(m['p99_ms'], 2)} | {fmt(m['max_ms'], 1)} | {fmt(m['cpu_s_per_gb'], 2)} "
                    f"| {fmt(garage, 2)} | {fmt(m['peak_rss_mib'], 1)} | {m['errors']} |"
                )
    lines.append("\n#### Ratios (gateway ÷ reference, medians of the same run)\n")
    lines.append("| pair | size | c | req/s | MB/s | p99 (lower is better) |")
    lines.append("|---|---|--:|--:|--:|--:|")
    for a, b in PAIRS:
        for size in sizes:
            for c in levels:
                ma, mb = s.get((a, size, c)), s.get((b, size, c))
                if not ma or not mb:
                    continue
                p99 = ma["p99_ms"] / mb["p99_ms"] if mb["p99_ms"] else None
                rps = ma["rps"] / mb["rps"] if mb["rps"] else None
                lines.append(f"| {a} ÷ {b} | {size} | {c} | {fmt(rps, 2)} "
                             f"| {ma['mbps'] / mb['mbps']:.2f} | {fmt(p99, 2)} |")
    ready = report["start_to_ready_ms"]
    lines.append(f"\nProcess start to `/readyz` 200 (fs backend, {len(ready)} starts): median "
                 f"{statistics.median(ready):.1f} ms, max {max(ready):.1f} ms.")
    return "\n".join(lines), s


def chart(summary, report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = report["settings"]["sizes"]
    levels = report["settings"]["concurrency"]
    pairs = [p for p in PAIRS if any(k[0] == p[0] for k in summary) and any(k[0] == p[1] for k in summary)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 4), sharey=True)
    for ax, (a, b) in zip(axes if len(pairs) > 1 else [axes], pairs):
        width = 0.8 / len(levels)
        for i, c in enumerate(levels):
            ratios = []
            for size in sizes:
                ma, mb = summary.get((a, size, c)), summary.get((b, size, c))
                ratios.append(ma["mbps"] / mb["mbps"] if ma and mb else 0)
            ax.bar([x + i * width for x in range(len(sizes))], ratios, width, label=f"c={c}")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks([x + width * (len(levels) - 1) / 2 for x in range(len(sizes))], sizes)
        ax.set_title(f"{a} ÷ {b}")
        ax.set_ylabel("throughput ratio (bytes/s)")
        ax.set_yscale("log")
    axes_list = axes if len(pairs) > 1 else [axes]
    axes_list[0].legend()
    fig.suptitle("image-gateway throughput relative to each reference (median of rounds; 1.0 = equal)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


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
