import CoreMetrics
import Synchronization

/// The swift-metrics instruments of one ``AsyncLRUCache`` (see ``MetricsConfiguration``), dimension
/// `cache`.
///
/// Hits are counted by the cache's state anyway (``CacheInfo/hits``); they are reported from that
/// tally in batches (every ``hitBatch`` hits, and on every miss, store, removal and ``AsyncLRUCache/info()``),
/// so a hit pays a mask test, not a call into the backend. Misses, loads and refreshes are counted where
/// they happen. Evictions come from the same
/// record the eviction listener reads (``LRUStorage`` collects the removed entries inside the lock;
/// they are reported after it is released, with the size), so the hit path pays nothing for them.
@usableFromInline
final class CacheMetrics: Sendable {
  let hits: any CounterHandler
  @usableFromInline let misses: any CounterHandler
  @usableFromInline let loads: any CounterHandler
  @usableFromInline let refreshes: any CounterHandler
  let loadFailures: any CounterHandler
  let evictions: [CacheEvictionReason: any CounterHandler]
  let size: any RecorderHandler
  /// The state's hit tally already reported. Only touched inside the cache's lock (so in order); the mutex only
  /// makes the class Sendable.
  private let reportedHits = Locked<Int>(0)  // Locked, not Mutex: ThreadSanitizer sees its critical sections

  /// A hit whose tally is a multiple of this reports the hits since the last report.
  @usableFromInline static var hitBatch: Int { 64 }

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

  /// The hits counted since the last call, given the state's tally `total` (which `clear()` resets to zero). Call
  /// it inside the cache's lock; report the result with ``reportHits(_:)`` after releasing it.
  @usableFromInline
  func hitsToReport(_ total: Int) -> Int {
    reportedHits.withLock { reported in
      defer { reported = total }
      return total >= reported ? total - reported : total
    }
  }

  @usableFromInline
  func reportHits(_ count: Int) {
    if count > 0 { hits.increment(by: Int64(count)) }
  }

  /// Reports what one lock section removed, and the size it left. Call it after releasing the lock.
  func report<Key, Value>(evicted: [(Key, Value, CacheEvictionReason)], size: Int) {
    for (_, _, reason) in evicted { evictions[reason]?.increment(by: 1) }
    self.size.record(Int64(size))
  }
}
