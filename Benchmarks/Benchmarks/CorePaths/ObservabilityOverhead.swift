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
  registerCacheHits(name: "overhead-cache-hit-x10000-\(variant(metrics))", hits: 10_000, metrics: metrics)
}

/// 1,000 tasks spawned through a `PersistentTaskGroup` and awaited.
@Sendable func registerOverheadGroupSpawns(metrics: MetricsConfiguration?) {
  registerGroupSpawns(name: "overhead-group-spawn-x1000-\(variant(metrics))", metrics: metrics)
}
