import CoreMetrics

/// The swift-metrics instruments of one ``AsyncLRUCache`` (see ``MetricsConfiguration``), dimension
/// `cache`.
///
/// Hits, misses, loads and refreshes are counted where they happen. Evictions come from the same
/// record the eviction listener reads (``LRUStorage`` collects the removed entries inside the lock;
/// they are reported after it is released, with the size), so the hit path pays nothing for them.
@usableFromInline
final class CacheMetrics: Sendable {
  @usableFromInline let hits: any CounterHandler
  @usableFromInline let misses: any CounterHandler
  @usableFromInline let loads: any CounterHandler
  @usableFromInline let refreshes: any CounterHandler
  let loadFailures: any CounterHandler
  let evictions: [CacheEvictionReason: any CounterHandler]
  let size: any RecorderHandler

  init(_ configuration: MetricsConfiguration) {
    hits = configuration.counter("asynctools_cache_hits_total", kind: "cache")
    misses = configuration.counter("asynctools_cache_misses_total", kind: "cache")
    loads = configuration.counter("asynctools_cache_loads_total", kind: "cache")
    refreshes = configuration.counter("asynctools_cache_refreshes_total", kind: "cache")
    loadFailures = configuration.counter("asynctools_cache_load_failures_total", kind: "cache")
    var evictions: [CacheEvictionReason: any CounterHandler] = [:]
    for reason in [CacheEvictionReason.capacity, .expiry, .invalidation, .replacement] {
      evictions[reason] = configuration.counter(
        "asynctools_cache_evictions_total", kind: "cache", [("reason", reason.description)])
    }
    self.evictions = evictions
    size = configuration.gauge("asynctools_cache_size", kind: "cache")
  }

  /// Reports what one lock section removed, and the size it left. Call it after releasing the lock.
  func report<Key, Value>(evicted: [(Key, Value, CacheEvictionReason)], size: Int) {
    for (_, _, reason) in evicted { evictions[reason]?.increment(by: 1) }
    self.size.record(Int64(size))
  }
}
