#!/usr/bin/env python3
"""Turns the JSON lines of Benchmarks/run into the ratio table of BENCHMARKS.md."""
import json
import platform
import os
import sys

# group -> list of (baseline variant, metric, max ratio of AsyncTools ÷ baseline, what it means)
# Metrics: "wall" and "cpu" per operation (lower is better for AsyncTools).
TARGETS = {
    "scope-1M": [("raw-discarding-group", "wall", 1.25)],
    "supervisor-1M": [("raw-discarding-group", "wall", 1.25)],
    "persistent-1M": [("raw-discarding-group", "wall", 1.5)],
    "race": [("hand-written-group", "wall", 1.2)],
    "gather-safe": [("hand-written-group", "wall", 1.2)],
    "cache-hits-1task": [("mutex-dictionary", "wall", 2.0), ("aiotools", "wall", 0.05)],
    "cache-hits-8tasks": [("mutex-dictionary", "wall", 2.0), ("actor-dictionary", "wall", 0.2),
                          ("aiotools", "wall", 0.05)],
    "timers-1000x10ms": [("AsyncTimerSequence", "cpu", 1.2)],
    # Echo: CPU is the server's CPU per round trip; wall / op is 1 / throughput, so "throughput
    # ≥ 0.95× plain NIO" is "wall ≤ 1/0.95 = 1.053×".
    "echo-1worker": [("plain-nio", "cpu", 1.1), ("aiotools", "cpu", 0.7), ("plain-nio", "wall", 1.053)],
    "echo-2workers": [("plain-nio", "cpu", 1.1), ("aiotools", "cpu", 0.7), ("plain-nio", "wall", 1.053)],
}

# group -> list of (field of the AsyncTools row, upper limit): absolute targets.
ABSOLUTE_TARGETS = {
    "echo-1worker": [("sigterm_to_exit_ms", 250), ("killed_worker_noticed_ms", 50)],
    "echo-2workers": [("sigterm_to_exit_ms", 250), ("killed_worker_noticed_ms", 50)],
}


def per_op(row, metric):
    return row[f"{metric}_ns_median"] / row["operations"]


def fmt_ns(ns):
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    groups = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print()
    print("| group | variant | operations | wall / op | CPU / op | peak RSS | AsyncTools ÷ this (wall, CPU) | extra |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    verdicts = []
    for group, members in groups.items():
        ours = next((r for r in members if r["variant"] == "asynctools"), None)
        for row in sorted(members, key=lambda r: r["variant"] != "asynctools"):
            ratio = ""
            if ours is not None and row is not ours:
                ratio = f"{per_op(ours, 'wall') / per_op(row, 'wall'):.2f}× , {per_op(ours, 'cpu') / per_op(row, 'cpu'):.2f}×"
            extra = ", ".join(f"{k}={v:.3g}" for k, v in row.items()
                              if k not in {"group", "variant", "language", "operations", "runs", "wall_ns_median",
                                           "wall_ns_min", "cpu_ns_median", "peak_rss_kib"})
            print(f"| {group} | {row['variant']} | {row['operations']:,} | {fmt_ns(per_op(row, 'wall'))} | "
                  f"{fmt_ns(per_op(row, 'cpu'))} | {row['peak_rss_kib'] / 1024:.0f} MiB | {ratio} | {extra} |")
        for baseline, metric, limit in TARGETS.get(group, []):
            other = next((r for r in members if r["variant"] == baseline), None)
            if ours is None or other is None:
                continue
            ratio = per_op(ours, metric) / per_op(other, metric)
            verdicts.append(f"| {group} | {metric} vs {baseline} | ≤ {limit}× | {ratio:.2f}× | "
                            f"{'met' if ratio <= limit else 'MISSED'} |")
        for field, limit in ABSOLUTE_TARGETS.get(group, []):
            if ours is None or field not in ours:
                continue
            verdicts.append(f"| {group} | {field} | ≤ {limit} | {ours[field]:.3g} | "
                            f"{'met' if ours[field] <= limit else 'MISSED'} |")
    if verdicts:
        print()
        print("| group | target | limit | measured | verdict |")
        print("|---|---|---:|---:|---|")
        for line in verdicts:
            print(line)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/latest.jsonl")
