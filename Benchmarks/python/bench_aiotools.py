#!/usr/bin/env python3
"""The Python aiotools side of the AsyncTools benchmarks.

Each workload mirrors a Swift one in Sources/AsyncToolsBenchmarks with the same group name and
size, and prints one JSON line in the same format (variant "aiotools"). Run through
`Benchmarks/run`, which installs aiotools 2.2.4 into Benchmarks/.venv first.

usage: bench_aiotools.py list | run GROUP [--quick]
"""
import asyncio
import json
import os
import resource
import statistics
import sys
import time

import aiotools

WORKLOADS = {}


def workload(group, operations, quick_operations, runs=5):
    def register(fn):
        WORKLOADS[group] = (fn, operations, quick_operations, runs)
        return fn
    return register


@workload("virtual-sleeps", 1_000_000, 100_000, runs=3)
def virtual_sleeps(n):
    tasks = 1000
    sleeps = n // tasks

    async def one(task):
        for _ in range(sleeps):
            await asyncio.sleep((task % 97 + 1) / 1000)

    async def main():
        vclock = aiotools.VirtualClock()
        with vclock.patch_loop():
            await asyncio.gather(*(one(t) for t in range(tasks)))

    asyncio.run(main())
    return {}


@workload("scope-1M", 1_000_000, 100_000, runs=3)
def scope(n):
    async def noop():
        pass

    async def main():
        async with aiotools.TaskScope() as ts:
            for _ in range(n):
                ts.create_task(noop())

    asyncio.run(main())
    return {}


@workload("supervisor-1M", 1_000_000, 100_000, runs=3)
def supervisor(n):
    async def noop():
        pass

    async def main():
        async with aiotools.Supervisor() as sv:
            for _ in range(n):
                sv.create_task(noop())

    asyncio.run(main())
    return {}


@workload("persistent-1M", 1_000_000, 100_000, runs=3)
def persistent(n):
    async def noop():
        pass

    async def main():
        ctx = aiotools.TaskContext()
        for i in range(n):
            ctx.create_task(noop())
            if i % 10_000 == 0:
                await asyncio.sleep(0)
        while ctx._tasks:
            await asyncio.sleep(0)
        await ctx.aclose()

    asyncio.run(main())
    return {}


@workload("race", 10_000, 2_000)
def race(n):
    async def value(x):
        await asyncio.sleep(0)
        return x

    async def main():
        for _ in range(n):
            await aiotools.race([value(1), value(2), value(3), value(4)])

    asyncio.run(main())
    return {}


@workload("gather-safe", 10_000, 2_000)
def gather_safe(n):
    async def value(x):
        await asyncio.sleep(0)
        return x

    async def main():
        for _ in range(n):
            await aiotools.gather_safe([value(1), value(2), value(3), value(4)])

    asyncio.run(main())
    return {}


def _cache_hits(n, tasks):
    @aiotools.lru_cache(maxsize=128)
    async def compute(key):
        return key * 2

    async def worker(count):
        for i in range(count):
            await compute(i & 63)

    async def main():
        for k in range(64):
            await compute(k)
        await asyncio.gather(*(worker(n // tasks) for _ in range(tasks)))

    asyncio.run(main())
    return {}


@workload("cache-hits-1task", 1_000_000, 200_000)
def cache_hits_1(n):
    return _cache_hits(n, 1)


@workload("cache-hits-8tasks", 1_000_000, 200_000)
def cache_hits_8(n):
    return _cache_hits(n, 8)


@workload("timers-1000x10ms", 500, 100, runs=3)
def timers(n):
    """1,000 timers at 10 ms for n ticks' worth of time: ticks delivered and lateness."""
    timers_count = 1000
    interval = 0.01
    duration = n * interval
    ticks = [0]

    async def tick(_interval):
        ticks[0] += 1

    async def main():
        handles = [aiotools.create_timer(tick, interval) for _ in range(timers_count)]
        await asyncio.sleep(duration)
        for h in handles:
            await aiotools.cancel_and_wait(h)

    asyncio.run(main())
    expected = timers_count * (n + 1)
    return {"ticks_delivered_ratio": ticks[0] / expected}


@workload("process-fork", 200, 50)
def process_spawn(n):
    def child():
        return 0

    async def main():
        for _ in range(n):
            p = await aiotools.afork(child)
            await p.wait()

    asyncio.run(main())
    return {}


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime


def main(argv):
    if len(argv) >= 1 and argv[0] == "list":
        for name in WORKLOADS:
            print(name)
        return 0
    if len(argv) < 2 or argv[0] != "run" or argv[1] not in WORKLOADS:
        print(__doc__, file=sys.stderr)
        return 2
    fn, operations, quick_operations, runs = WORKLOADS[argv[1]]
    quick = "--quick" in argv
    n = quick_operations if quick else operations
    if quick:
        runs = max(3, runs // 2)
    fn(n)  # warm-up
    walls, cpus, extras = [], [], []
    for _ in range(runs):
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        extras.append(fn(n))
        walls.append(time.perf_counter() - t0)
        cpus.append(cpu_seconds() - c0)
    result = {
        "group": argv[1],
        "variant": "aiotools",
        "language": "python",
        "operations": n,
        "runs": runs,
        "wall_ns_median": int(statistics.median(walls) * 1e9),
        "wall_ns_min": int(min(walls) * 1e9),
        "cpu_ns_median": int(statistics.median(cpus) * 1e9),
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    for key in sorted({k for e in extras for k in e}):
        result[key] = statistics.median(e[key] for e in extras if key in e)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
