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
import re
import statistics
import sys

SCALES = {"#": 1, "ns": 1, "μs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9, "K": 1e3, "M": 1e6, "G": 1e9}
# package-benchmark's metric names (as in the file names) -> the row fields report.py reads.
FIELDS = {"wallClock": "wall_ns", "cpuTotal": "cpu_ns", "mallocCountTotal": "mallocs",
          "peakMemoryResident": "peak_rss_bytes", "operations": "operations"}


def read_samples(path):
    """The samples of one file, in base units (ns, counts): the header's trailing "(unit)" scales them."""
    with open(path) as handle:
        header = handle.readline().strip()
        values = [float(line) for line in handle if line.strip()]
    unit = re.search(r"\(([^()]*)\)$", header)
    return (SCALES.get(unit.group(1), 1) if unit else 1), values


def round_significant(value, digits=3):
    """Operation counts are round numbers; the histogram returns them to within 0.1 %."""
    if value <= 0:
        return 0
    scale = 10 ** max(0, len(str(int(value))) - digits)
    return int(round(value / scale) * scale)


def main(directory):
    rows = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.Comparisons.*.histogram.samples.tsv"))):
        stem = os.path.basename(path)[: -len(".histogram.samples.tsv")]
        benchmark, metric = stem.split(".Comparisons.", 1)[1].rsplit(".", 1)
        scale, values = read_samples(path)
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
        row["operations"] = round_significant(row.get("operations", 1))
        row["peak_rss_kib"] = int(row.pop("peak_rss_bytes", 0) / 1024)
        print(json.dumps(row))


if __name__ == "__main__":
    main(sys.argv[1])
