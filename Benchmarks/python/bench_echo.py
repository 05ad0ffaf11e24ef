#!/usr/bin/env python3
"""The echo-server benchmark: AsyncTools' Examples/EchoServer against a plain SwiftNIO echo server
and Python aiotools' `start_server` echo server, with the same load generator in the same run.

For every round and every server (interleaved, so that a machine whose load drifts treats them
alike): start the server in its own session on a free port of 127.0.0.1, wait until every worker
is ready and one echo round trip succeeds, warm it up, drive it with `echo-load` for the duration,
and measure the SERVER's CPU time over that window (utime + stime from /proc of the server process
and all its descendants); then SIGTERM it while its workers are idle and time until it has exited
(pidfd). Afterwards, for AsyncTools only: SIGKILL one idle worker and time until the main process
logs that it stops the server (and until it has exited).

Prints one JSON line per (group, variant) in the format of Sources/AsyncToolsBenchmarks/Harness.swift,
with medians over the rounds: `operations` = round trips of a round, `wall_ns_median` such that
wall / op = 1 / throughput, `cpu_ns_median` such that CPU / op (report.py) = server CPU per round
trip; plus the load generator's own CPU, latency percentiles, SIGTERM-to-exit and, for AsyncTools,
killed-worker times. Server CPU comes from /proc (clock ticks, 10 ms each: a 5 s round is counted
to about 1 %).

usage: bench_echo.py list
       bench_echo.py run --echo-server PATH --echo-load PATH --plain-nio PATH [--python VENV_PYTHON]
                         [--quick] [--filter REGEX]
Without --python the aiotools variants are skipped.
"""
import argparse
import json
import os
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GROUPS = {1: "echo-1worker", 2: "echo-2workers"}
# asynctools-kernel: the same echo-server with `--accept-balancing kernel` (whichever worker the
# kernel wakes takes the connection), to show what the least-connections balancing changes.
VARIANTS = ["asynctools", "asynctools-kernel", "plain-nio", "aiotools"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def names():
    return [f"{GROUPS[w]}/{v}" for w in GROUPS for v in VARIANTS]


class Output:
    """Collects the lines a process writes to one pipe, with the monotonic time they arrived."""

    def __init__(self, pipe):
        self.lines = []
        self.condition = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe):
        for raw in pipe:
            with self.condition:
                self.lines.append((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))
                self.condition.notify_all()
        pipe.close()

    def text(self):
        with self.condition:
            return "\n".join(line for _, line in self.lines)


LIVE_SERVERS = set()


def kill_live_servers(signum, _frame):
    """The driver itself is stopped (e.g. `timeout` in Benchmarks/run): take every server along."""
    for server in list(LIVE_SERVERS):
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    sys.exit(128 + signum)


class Server:
    """One server under test: its own session (so that aiotools' `os.kill(0, SIGINT)` and any
    leftover stays in its process group), stdout and stderr read by threads, a pidfd for exit."""

    def __init__(self, argv):
        self.argv = argv
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, start_new_session=True)
        self.pid = self.process.pid
        LIVE_SERVERS.add(self)
        self.pidfd = os.pidfd_open(self.pid)
        self.stdout = Output(self.process.stdout)
        self.stderr = Output(self.process.stderr)

    def wait_for(self, pattern, count=1, timeout=30.0):
        """Waits until `count` lines (stdout or stderr, in total) match; returns the matches with
        their arrival times."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        drained = False
        while True:
            if not drained and self.exited(0):
                # It has exited: what it wrote is all in the pipes; let the readers reach EOF.
                drained = True
                for output in (self.stdout, self.stderr):
                    output.thread.join(5)
            found = [(t, m) for output in (self.stdout, self.stderr)
                     for t, line in list(output.lines) for m in regex.finditer(line)]
            if len(found) >= count:
                return sorted(found, key=lambda item: item[0])
            remaining = deadline - time.monotonic()
            if remaining <= 0 or drained:
                raise RuntimeError(f"{self.argv[0]}: no {count}× /{pattern}/ within {timeout} s; "
                                   f"output:\n{self.stdout.text()}\n{self.stderr.text()}")
            with self.stdout.condition:
                self.stdout.condition.wait(min(remaining, 0.01))

    def exited(self, timeout):
        return bool(select.select([self.pidfd], [], [], timeout)[0])

    def descendants(self):
        children = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
                    children.setdefault(ppid, []).append(int(entry))
                except (OSError, IndexError, ValueError):
                    pass
        found, queue = [], [self.pid]
        while queue:
            pid = queue.pop()
            found.append(pid)
            queue.extend(children.get(pid, []))
        return found

    def cpu_ns(self, pids):
        """utime + stime of the given processes (all their threads, dead ones included)."""
        total = 0
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                pass
        return total * 1_000_000_000 // CLOCK_TICKS

    def peak_rss_kib(self, pids):
        """The sum of the processes' peak resident set sizes (VmHWM): the server's footprint."""
        total = 0
        for pid in pids:
            try:
                with open(f"/proc/{pid}/status") as status:
                    total += next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
            except (OSError, StopIteration, ValueError):
                pass
        return total

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Sends `sig` and returns (milliseconds until the process exited, exit status)."""
        start = time.monotonic()
        os.kill(self.pid, sig)
        if not self.exited(timeout):
            self.kill_all()
            return float("inf"), None
        elapsed = (time.monotonic() - start) * 1000
        status = self.process.wait()
        return elapsed, status

    def kill_all(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def close(self):
        """Reaps the server and reports whether anything of its session outlived it."""
        if self.process.poll() is None:
            self.kill_all()
        leftover = False
        try:
            os.killpg(self.pid, 0)
            leftover = True
            time.sleep(0.2)  # a worker that is just exiting (its parent is gone) gets a moment
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.close(self.pidfd)
        LIVE_SERVERS.discard(self)
        for output in (self.stdout, self.stderr):
            output.thread.join(5)
        return leftover


def probe(port, timeout=10.0):
    """One echo round trip with a fresh connection: the server accepts and answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
                connection.sendall(b"ping")
                if connection.recv(16) == b"ping":
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"127.0.0.1:{port} does not echo")
        time.sleep(0.01)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(variant, workers, args):
    """Starts one server and waits until it serves; returns (server, port)."""
    try:
        return start_server(variant, workers, args)
    except BaseException:
        for server in list(LIVE_SERVERS):  # the one that did not come up
            server.close()
        raise


def start_server(variant, workers, args):
    if variant.startswith("asynctools"):
        balancing = ["--accept-balancing", "kernel"] if variant == "asynctools-kernel" else []
        server = Server([args.echo_server, "--port", "0", "--workers", str(workers), "--wait-timeout", "5"]
                        + balancing)
        port = int(server.wait_for(r"listening on 127\.0\.0\.1:(\d+)")[0][1].group(1))
        server.wait_for(r"worker \d+ is ready", count=workers)
    elif variant == "plain-nio":
        server = Server([args.plain_nio, "--port", "0", "--threads", str(workers)])
        port = int(server.wait_for(r"listening on 127\.0\.0\.1:(\d+)")[0][1].group(1))
    else:
        port = free_port()
        server = Server([args.python, os.path.join(HERE, "aiotools_echo_server.py"), str(port), str(workers)])
        server.wait_for(r"\[\d+\] started", count=workers)
    probe(port)
    return server, port


def load(args, port, duration, spread=None):
    """Runs echo-load; with `spread` (a list), appends how the connections are spread over the
    server's processes halfway through (established sockets per process, from `ss`)."""
    process = subprocess.Popen(
        [args.echo_load, "--port", str(port), "--connections", str(args.connections),
         "--duration", str(duration)], stdout=subprocess.PIPE)
    if spread is not None:
        time.sleep(duration / 2)
        spread.append(connections_per_process(port))
    stdout, _ = process.communicate(timeout=duration + 60)
    report = json.loads(stdout)
    if process.returncode != 0:
        raise RuntimeError(f"echo-load failed: {report}")
    return report


def connections_per_process(port):
    """The server's established connections on `port`, counted per owning process (sorted)."""
    output = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                            stdout=subprocess.PIPE, text=True, check=False).stdout
    counts = {}
    for pid in re.findall(r"pid=(\d+)", output):
        counts[pid] = counts.get(pid, 0) + 1
    return sorted(counts.values())


def one_round(variant, workers, args, duration, warmup):
    server, port = start(variant, workers, args)
    try:
        load(args, port, warmup)
        pids = server.descendants()
        cpu_before = server.cpu_ns(pids)
        spread = []
        report = load(args, port, duration, spread if workers > 1 else None)
        cpu = server.cpu_ns(pids) - cpu_before
        rss = server.peak_rss_kib(pids)
        time.sleep(0.2)  # the load generator's connections are closed: the workers are idle
        sigterm_ms, status = server.stop(signal.SIGTERM)
    finally:
        leftover = server.close()
    return {"load": report, "server_cpu_ns": cpu, "peak_rss_kib": rss, "sigterm_to_exit_ms": sigterm_ms,
            "spread": spread[0] if spread else None,
            "exit_status": status, "leftover": leftover}


def killed_worker(workers, args):
    """SIGKILLs one idle worker of an AsyncTools echo server (default policy: stop the server);
    returns (ms until the main process logs that it stops, ms until it has exited)."""
    server, _ = start("asynctools", workers, args)
    try:
        victims = [pid for pid in server.descendants() if pid != server.pid]
        killed_at = time.monotonic()
        os.kill(victims[0], signal.SIGKILL)
        try:
            noticed_at = server.wait_for(r"stopping \d+ worker", timeout=10)[0][0]
        except RuntimeError as error:
            raise RuntimeError(f"{error}\nprocesses: {victims} of {server.pid}; now: {server.descendants()}; "
                               f"victim: {open(f'/proc/{victims[0]}/stat').read() if os.path.exists(f'/proc/{victims[0]}') else 'gone'}")
        if not server.exited(10):
            raise RuntimeError("the server did not exit after a worker was killed")
        exited_at = time.monotonic()
    finally:
        server.close()
    return (noticed_at - killed_at) * 1000, (exited_at - killed_at) * 1000


def main():
    if sys.argv[1:] == ["list"]:
        print("\n".join(names()))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--echo-server", required=True)
    parser.add_argument("--echo-load", required=True)
    parser.add_argument("--plain-nio", required=True)
    parser.add_argument("--python")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--filter", default=".")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, kill_live_servers)
    signal.signal(signal.SIGINT, kill_live_servers)
    duration, warmup, runs = (2.0, 0.3, 3) if args.quick else (5.0, 0.5, 5)

    selected = [(w, v) for w in GROUPS for v in VARIANTS
                if re.search(args.filter, f"{GROUPS[w]}/{v}") and (v != "aiotools" or args.python)]
    rounds = {key: [] for key in selected}
    failed = set()
    for round_index in range(runs):
        for workers, variant in selected:
            if (workers, variant) in failed:
                continue
            print(f"  round {round_index + 1}/{runs}: {GROUPS[workers]}/{variant}", file=sys.stderr)
            try:
                rounds[(workers, variant)].append(one_round(variant, workers, args, duration, warmup))
            except Exception as error:  # reported and skipped, like a failing benchmark in `run`
                print(f"  {GROUPS[workers]}/{variant} failed: {error}", file=sys.stderr)
                failed.add((workers, variant))

    for workers, variant in selected:
        results = rounds[(workers, variant)]
        if (workers, variant) in failed or not results:
            continue

        def median(values):
            return statistics.median(values)

        # Per-round-trip figures are medians over the rounds: report.py divides by `operations`,
        # so wall / op = 1 / (median throughput) and CPU / op = median server CPU per round trip.
        operations = int(median([r["load"]["round_trips"] for r in results]))
        throughput = median([r["load"]["round_trips_per_s"] for r in results])
        cpu_per_op = median([r["server_cpu_ns"] / max(1, r["load"]["round_trips"]) for r in results])
        row = {
            "group": GROUPS[workers], "variant": variant, "language": "swift" if variant != "aiotools" else "python",
            "operations": operations, "runs": len(results),
            "wall_ns_median": round(operations / throughput * 1e9),
            "wall_ns_min": round(operations / max(r["load"]["round_trips_per_s"] for r in results) * 1e9),
            "cpu_ns_median": round(cpu_per_op * operations),
            "peak_rss_kib": max(r["peak_rss_kib"] for r in results),
            "round_trips_per_s": median([r["load"]["round_trips_per_s"] for r in results]),
            "loadgen_cpu_ns": median([r["load"]["cpu_ns"] for r in results]),
            "loadgen_cpu_ns_per_round_trip": median([r["load"]["cpu_ns"] / max(1, r["load"]["round_trips"])
                                                     for r in results]),
            "p50_latency_us": median([r["load"]["p50_latency_us"] for r in results]),
            "p99_latency_us": median([r["load"]["p99_latency_us"] for r in results]),
            "sigterm_to_exit_ms": median([r["sigterm_to_exit_ms"] for r in results]),
            "sigterm_to_exit_ms_max": max(r["sigterm_to_exit_ms"] for r in results),
            "leftover_processes": sum(r["leftover"] for r in results),
            "clean_exits": sum(r["exit_status"] == 0 for r in results),
        }
        # Every round's figures, in round order: the spread behind the medians.
        row["round_trips_per_s_rounds"] = [round(r["load"]["round_trips_per_s"]) for r in results]
        row["cpu_ns_per_round_trip_rounds"] = [round(r["server_cpu_ns"] / max(1, r["load"]["round_trips"]))
                                               for r in results]
        spreads = [r["spread"] for r in results if r.get("spread")]
        if spreads and workers > 1:
            # Connections per worker (plain NIO: one process, so no spread to see).
            ratios = [s[-1] / s[0] if len(s) == workers and s[0] > 0 else float("inf") for s in spreads]
            row["spread_max_over_min_median"] = median(ratios)
            row["spread_max_over_min_worst"] = max(ratios)
            row["spreads"] = " ".join("/".join(map(str, s)) for s in spreads)
        if variant == "asynctools":
            try:
                kills = [killed_worker(workers, args) for _ in range(runs)]
                row["killed_worker_noticed_ms"] = median([k[0] for k in kills])
                row["killed_worker_noticed_ms_max"] = max(k[0] for k in kills)
                row["killed_worker_to_exit_ms"] = median([k[1] for k in kills])
            except Exception as error:  # the row still reports the load figures
                print(f"  {GROUPS[workers]}/{variant}: killed-worker measurement failed: {error}", file=sys.stderr)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
