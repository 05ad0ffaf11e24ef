import AsyncTools
import Benchmark
import CoreMetrics

/// The cost of metrics on the two hottest instrumented paths, off (`metrics: nil`, the default) and
/// on with a no-op backend (`NOOPMetricsHandler`: what remains is AsyncTools' own bookkeeping). The
/// target is "on" within 5 % of "off" in instructions and wall time.
let observabilityOverheadBenchmarks: [@Sendable () -> Void] = [
  { registerOverheadCacheHits(metrics: nil) },
  { registerOverheadCacheHits(metrics: MetricsConfiguration(name: "bench", factory: NOOPMetricsHandler.instance)) },
  { registerOverheadGroupSpawns(metrics: nil) },
  { registerOverheadGroupSpawns(metrics: MetricsConfiguration(name: "bench", factory: NOOPMetricsHandler.instance)) },
]

private func variant(_ metrics: MetricsConfiguration?) -> String { metrics == nil ? "metrics-off" : "metrics-on" }

/// 10,000 hits on a warm cache.
@Sendable func registerOverheadCacheHits(metrics: MetricsConfiguration?) {
  Benchmark("overhead-cache-hit-x10000-\(variant(metrics))", configuration: singleTaskPathConfiguration) { benchmark in
    let cache = try! AsyncLRUCache<Int, Int>(maxSize: 128, metrics: metrics)
    for key in 0..<64 { _ = try! await cache.value(forKey: key) { key } }
    benchmark.startMeasurement()
    var sum = 0
    for index in 0..<10_000 { sum &+= try! await cache.value(forKey: index & 63) { $0 } }
    benchmark.stopMeasurement()
    blackHole(sum)
  }
}

/// 1,000 tasks spawned through a `PersistentTaskGroup` and awaited.
@Sendable func registerOverheadGroupSpawns(metrics: MetricsConfiguration?) {
  Benchmark("overhead-group-spawn-x1000-\(variant(metrics))") { _ in
    let group = PersistentTaskGroup(name: "bench", metrics: metrics)
    for _ in 0..<1_000 { try! group.addTask {} }
    await group.close()
  }
}
