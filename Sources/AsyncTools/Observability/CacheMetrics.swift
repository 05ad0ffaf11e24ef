import CoreMetrics
import Synchronization

/// The swift-metrics instruments of one ``AsyncLRUCache`` (see ``MetricsConfiguration``), dimension
/// `cache`.
///
/// Hits and misses are counted where they happen; evictions are counted by ``LRUStorage`` as plain
/// integers and turned into counter increments (and the size gauge) after each store, so the hit
/// path pays nothing for them.
@usableFromInline
final class CacheMetrics: Sendable {
  @usableFromInline let hits: Counter
  let misses: Counter
  let loads: Counter
  let loadFailures: Counter
  let sizeEvictions: Counter
  let expiryEvictions: Counter
  let size: Gauge
  /// The storage's eviction totals already turned into counter increments. Only touched inside the
  /// cache's lock (so in order); the mutex only makes the class Sendable.
  private let reported = Mutex<(size: Int, expired: Int)>((0, 0))

  init(_ configuration: MetricsConfiguration) {
    hits = configuration.counter("asynctools_cache_hits_total", kind: "cache")
    misses = configuration.counter("asynctools_cache_misses_total", kind: "cache")
    loads = configuration.counter("asynctools_cache_loads_total", kind: "cache")
    loadFailures = configuration.counter("asynctools_cache_load_failures_total", kind: "cache")
    sizeEvictions = configuration.counter("asynctools_cache_evictions_total", kind: "cache", [("reason", "size")])
    expiryEvictions = configuration.counter(
      "asynctools_cache_evictions_total", kind: "cache", [("reason", "expired")])
    size = configuration.gauge("asynctools_cache_size", kind: "cache")
  }

  /// The evictions the storage counted since the last call, and its size: what ``apply(_:)``
  /// reports. Call it inside the cache's lock, so that two reports never count an eviction twice;
  /// call ``apply(_:)`` after releasing it (a metrics backend is user code).
  func pending<Key, Value>(_ storage: LRUStorage<Key, Value>) -> Pending {
    reported.withLock { reported in
      defer { reported = (storage.sizeEvictions, storage.expirations) }
      return Pending(
        sizeEvictions: storage.sizeEvictions - reported.size, expirations: storage.expirations - reported.expired,
        size: storage.count)
    }
  }

  /// What one store changed.
  struct Pending {
    var sizeEvictions: Int
    var expirations: Int
    var size: Int
  }

  func apply(_ pending: Pending) {
    if pending.sizeEvictions > 0 { sizeEvictions.increment(by: Int64(pending.sizeEvictions)) }
    if pending.expirations > 0 { expiryEvictions.increment(by: Int64(pending.expirations)) }
    size.record(pending.size)
  }
}
