#!/usr/bin/env python3
"""Turns the JSON lines of Benchmarks/run into the ratio table of BENCHMARKS.md."""
import json
import platform
import os
import statistics
import sys

# group -> list of (baseline variant, metric, max ratio of AsyncTools ÷ baseline[, the AsyncTools variant if not
# "asynctools"]). Metrics: "wall" and "cpu" per operation (lower is better for AsyncTools).
TARGETS = {
    "scope-1M": [("raw-discarding-group", "wall", 1.25)],
    "supervisor-1M": [("raw-discarding-group", "wall", 1.25)],
    "persistent-1M": [("raw-discarding-group", "wall", 1.5)],
    "race": [("hand-written-group", "wall", 1.2)],
    "gather-safe": [("hand-written-group", "wall", 1.2)],
    # Issue #16 item 7: hits within 1.25× the Mutex dictionary (both closure forms), ≥ 5× the actor at 8 tasks.
    "cache-hits-1task": [("mutex-dictionary", "cpu", 1.25), ("mutex-dictionary", "cpu", 1.25, "asynctools-keyed"),
                         ("aiotools", "wall", 0.05)],
    "cache-hits-8tasks": [("mutex-dictionary", "cpu", 1.25), ("mutex-dictionary", "cpu", 1.25, "asynctools-keyed"),
                          ("actor-dictionary", "wall", 0.2), ("aiotools", "wall", 0.05)],
    "timers-1000x10ms": [("AsyncTimerSequence", "cpu", 1.2),
                         ("AsyncTimerSequence", "cpu", 1.2, "asynctools-async-body"),
                         ("AsyncTimerSequence-task-per-tick", "cpu", 1.2, "asynctools-async-body")],
    # Echo: CPU is the server's CPU per round trip; wall / op is 1 / throughput, so "throughput
    # ≥ 0.95× plain NIO" is "wall ≤ 1/0.95 = 1.053×".
    "echo-1worker": [("plain-nio", "cpu", 1.1), ("aiotools", "cpu", 0.7), ("plain-nio", "wall", 1.053)],
    "echo-2workers": [("plain-nio", "cpu", 1.1), ("aiotools", "cpu", 0.7), ("plain-nio", "wall", 1.053)],
}

# group -> list of (field of the AsyncTools row, upper limit): absolute targets.
ABSOLUTE_TARGETS = {
    # Every tick due was delivered, in every round (ticks_missing is judged on the worst round).
    "timers-1000x10ms": [("ticks_missing", 0), ("ticks_missing", 0, "asynctools-async-body")],
    "echo-1worker": [("sigterm_to_exit_ms", 250), ("killed_worker_noticed_ms", 50)],
    "echo-2workers": [("sigterm_to_exit_ms", 250), ("killed_worker_noticed_ms", 50)],
}


# Extra figures where the worst round matters more than the median (every tick delivered in every round).
WORST_OF_ROUNDS = {"ticks_missing"}
# Fields of a row that are not extra figures.
NOT_EXTRA = {"group", "variant", "language", "operations", "runs", "wall_ns_median", "wall_ns_min", "cpu_ns_median",
             "peak_rss_kib", "round"}


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


def spread(values, fmt):
    """The median of `values`, and their range when there is more than one: "1.02× (0.98–1.05)"."""
    middle = fmt(statistics.median(values))
    if len(values) < 2:
        return middle
    return f"{middle} ({fmt(min(values))}–{fmt(max(values))})"


def ratio_fmt(value):
    return f"{value:.2f}×"


def ratios(ours, other, metric):
    """AsyncTools ÷ `other` per round, over the rounds both ran in (a round where `other` measured no CPU at all,
    below the 10 ms resolution of package-benchmark's CPU figure, has no ratio)."""
    return [per_op(ours[r], metric) / per_op(other[r], metric) for r in sorted(ours)
            if r in other and per_op(other[r], metric) > 0]


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    # group -> variant -> round -> row (rows without a round are round 1: a file from before rounds)
    groups = {}
    for row in rows:
        groups.setdefault(row["group"], {}).setdefault(row["variant"], {})[row.get("round", 1)] = row
    rounds = max((row.get("round", 1) for row in rows), default=1)
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    if rounds > 1:
        print(f"Rounds: {rounds}. Each figure is the median of the rounds (each round's own figure is the median of "
              "its runs), with the spread of the rounds (min–max) in brackets; a ratio is taken within each round.")
    print()
    print("| group | variant | operations | wall / op | CPU / op | peak RSS | AsyncTools ÷ this (wall, CPU) | extra |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    verdicts = []
    for group, variants in groups.items():
        ours = variants.get("asynctools")
        for variant in sorted(variants, key=lambda v: v != "asynctools"):
            by_round = variants[variant]
            sample = next(iter(by_round.values()))
            ratio = ""
            if ours is not None and variant != "asynctools":
                wall, cpu = ratios(ours, by_round, "wall"), ratios(ours, by_round, "cpu")
                if wall:
                    ratio = f"{spread(wall, ratio_fmt)} , {spread(cpu, ratio_fmt) if cpu else 'no CPU ratio'}"
            extras = []
            for key in sample:
                if key in NOT_EXTRA:
                    continue
                values = [row[key] for row in by_round.values() if key in row]
                if not all(isinstance(v, (int, float)) for v in values):
                    # Figures that are not numbers (the echo benchmark's per-round connection split): every round's.
                    extras.append(f"{key}=" + " / ".join(str(v) for v in values))
                elif key in WORST_OF_ROUNDS and len(values) > 1:
                    extras.append(f"{key}={max(values):.3g} (worst round)")
                else:
                    extras.append(f"{key}={statistics.median(values):.3g}")
            walls = [per_op(row, "wall") for row in by_round.values()]
            cpus = [per_op(row, "cpu") for row in by_round.values()]
            rss = statistics.median(row["peak_rss_kib"] for row in by_round.values()) / 1024
            print(f"| {group} | {variant} | {sample['operations']:,} | {spread(walls, fmt_ns)} | "
                  f"{spread(cpus, fmt_ns)} | {rss:.0f} MiB | {ratio} | {', '.join(extras)} |")
        for baseline, metric, limit, *variant in TARGETS.get(group, []):
            mine = variants.get(variant[0]) if variant else ours
            other = variants.get(baseline)
            if mine is None or other is None:
                continue
            values = ratios(mine, other, metric)
            if not values:
                continue
            median = statistics.median(values)
            label = f"{variant[0]} " if variant else ""
            verdicts.append(f"| {group} | {label}{metric} vs {baseline} | ≤ {limit}× | {spread(values, ratio_fmt)} | "
                            f"{'met' if median <= limit else 'MISSED'} |")
        for field, limit, *variant in ABSOLUTE_TARGETS.get(group, []):
            mine = variants.get(variant[0]) if variant else ours
            values = [row[field] for row in (mine or {}).values() if field in row]
            if not values:
                continue
            field = f"{variant[0]} {field}" if variant else field
            judged = max(values) if field.split()[-1] in WORST_OF_ROUNDS else statistics.median(values)
            verdicts.append(f"| {group} | {field} | ≤ {limit} | {spread(values, lambda v: f'{v:.3g}')} | "
                            f"{'met' if judged <= limit else 'MISSED'} |")
    if verdicts:
        print()
        print("| group | target | limit | measured (median of rounds, spread) | verdict |")
        print("|---|---|---:|---:|---|")
        for line in verdicts:
            print(line)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/latest.jsonl")
