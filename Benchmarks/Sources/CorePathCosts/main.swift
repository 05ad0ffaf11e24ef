// The CPU time of one operation on the core paths with metrics off and on (a no-op backend), for the
// overhead claim of the Observability article: "off costs nothing measurable; on costs at most 5 % on
// cache hits and task spawns". package-benchmark's CPU time has a 10 ms granularity on these VMs
// (scheduler ticks) and its iterations are shorter than that, and there is no instruction counter;
// this measures many operations per run with the process's CPU clock (`CLOCK_PROCESS_CPUTIME_ID`,
// nanoseconds, every thread), which a loaded machine disturbs less than wall time.
//
//     core-path-costs PATH N     # prints "PATH N <CPU ns per operation>"
//
// `Benchmarks/overhead` runs the paths interleaved, several rounds, and prints the medians.
import AsyncTools
import CoreMetrics

#if canImport(Glibc)
import Glibc
#endif

@inline(never) func blackHole<T>(_ value: T) { withExtendedLifetime(value) {} }

let noop = MetricsConfiguration(name: "bench", factory: NOOPMetricsHandler.instance)

func cpuNanoseconds() -> Int64 {
  var now = timespec()
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now)
  return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// The CPU time of `n` hits on a warm 64-key cache, from one task (the warm-up not counted).
func cacheHits(_ n: Int, metrics: MetricsConfiguration?) async -> Int64 {
  let cache = try! AsyncLRUCache<Int, Int>(maxSize: 128, metrics: metrics)
  for key in 0..<64 { _ = try! await cache.value(forKey: key) { key } }
  let start = cpuNanoseconds()
  var sum = 0
  for index in 0..<n { sum &+= try! await cache.value(forKey: index & 63) { $0 } }
  let end = cpuNanoseconds()
  blackHole(sum)
  return end - start
}

/// The CPU time of `n` no-op tasks spawned through a `PersistentTaskGroup`, in groups of 1,000, and awaited.
func groupSpawns(_ n: Int, metrics: MetricsConfiguration?) async -> Int64 {
  let start = cpuNanoseconds()
  for _ in 0..<(n / 1_000) {
    let group = PersistentTaskGroup(name: "bench", metrics: metrics)
    for _ in 0..<1_000 { try! group.addTask {} }
    await group.close()
  }
  return cpuNanoseconds() - start
}

let paths: [String: (Int) async -> Int64] = [
  "cache-hit-metrics-off": { await cacheHits($0, metrics: nil) },
  "cache-hit-metrics-on": { await cacheHits($0, metrics: noop) },
  "group-spawn-metrics-off": { await groupSpawns($0, metrics: nil) },
  "group-spawn-metrics-on": { await groupSpawns($0, metrics: noop) },
]

let arguments = CommandLine.arguments
guard arguments.count == 3, let path = paths[arguments[1]], let n = Int(arguments[2]), n >= 1_000 else {
  let names = paths.keys.sorted().joined(separator: ", ")
  let message = "usage: core-path-costs PATH N (N >= 1000); PATH is one of: \(names)\n"
  _ = message.withCString { write(2, $0, strlen($0)) }
  exit(64)
}
let nanoseconds = await path(n)
print("\(arguments[1]) \(n) \(Double(nanoseconds) / Double(n))")
