#!/usr/bin/env python3
"""Turns package-benchmark's per-sample export of the `Comparisons` target into the JSON lines of
`Benchmarks/run` (one row per "group/variant" benchmark, medians over the measured iterations).

usage: package_benchmark_rows.py DIR   (DIR holds the files written by
       `swift package benchmark baseline read NAME --format histogramSamples --path DIR`)

Each file is `<baseline>.<target>.<benchmark>.<metric>.histogram.samples.tsv`: a header line
"<metric> (<unit>)" then one sample per line.
"""
import glob
import json
import os
import statistics
import sys

SCALES = {"": 1, "#": 1, "ns": 1, "μs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9, "K": 1e3, "M": 1e6, "G": 1e9}
# package-benchmark's metric descriptions -> the row fields report.py reads.
FIELDS = {"Time (wall clock)": "wall_ns", "Time (total CPU)": "cpu_ns", "Malloc (total)": "mallocs",
          "Memory (resident peak)": "peak_rss_bytes", "operations": "operations"}


def read_samples(path):
    with open(path) as handle:
        header = handle.readline().strip()
        values = [float(line) for line in handle if line.strip()]
    name, _, unit = header.rpartition(" (")
    if not unit.endswith(")"):
        name, unit = header, ")"
    return name.strip(), SCALES.get(unit[:-1].strip(), 1), values


def main(directory):
    rows = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.Comparisons.*.histogram.samples.tsv"))):
        stem = os.path.basename(path)[: -len(".histogram.samples.tsv")]
        benchmark = stem.split(".Comparisons.", 1)[1].rsplit(".", 1)[0]
        metric, scale, values = read_samples(path)
        if not values:
            continue
        group, _, variant = benchmark.partition("_") if "/" not in benchmark else benchmark.partition("/")
        row = rows.setdefault(benchmark, {"group": group, "variant": variant, "language": "swift"})
        median = statistics.median(values) * scale
        if metric in FIELDS:
            field = FIELDS[metric]
            row[field + ("_median" if field in ("wall_ns", "cpu_ns") else "")] = median
            if field == "wall_ns":
                row["wall_ns_min"] = min(values) * scale
                row["runs"] = len(values)
        elif metric.endswith("_x1000"):
            row[metric[: -len("_x1000")]] = median / 1000
    for row in rows.values():
        row["operations"] = int(row.get("operations", 1))
        row["peak_rss_kib"] = int(row.pop("peak_rss_bytes", 0) / 1024)
        print(json.dumps(row))


if __name__ == "__main__":
    main(sys.argv[1])
