import CoreMetrics
import Synchronization

/// An async memo table: a least-recently-used cache whose misses run an async computation exactly once per key,
/// however many callers ask for that key at the same time (*single flight*).
///
/// ```swift
/// let users = try AsyncLRUCache<UserID, User>(maxSize: 1_000, expireAfter: .seconds(60))
/// let user = try await users.value(forKey: id) { try await database.fetchUser(id) }
/// ```
///
/// What it promises:
/// - **True LRU.** A hit makes the entry the most recent; when a completed computation would make the cache hold
///   more than `maxSize` values, the least recently used ones are evicted. Hits, insertions, evictions and expiries
///   are O(1).
/// - **Single flight.** Concurrent misses for one key run the computation once; every caller gets its outcome.
///   A caller that joins a computation in flight counts as a hit; each miss starts exactly one computation.
/// - **Cancellation.** A cancelled caller stops waiting and throws `CancellationError` at once while the others keep
///   waiting and the work goes on. When the *last* waiting caller is cancelled, the computation is cancelled, its
///   outcome is discarded, and that last caller returns (with `CancellationError`) only once the computation has
///   ended, so the computation never outlives every caller. A new caller for that key starts a fresh computation.
/// - **Errors are never cached**, `CancellationError` included: every waiter gets the error, the next call
///   computes again.
/// - **Expiry** (`expireAfter`) is measured from the computation's *completion* on the injected clock. A hit does
///   not extend it unless `refreshOnHit` is set. Expired entries are dropped when touched, and whenever a value is
///   stored or ``info()`` is read, so ``CacheInfo/currentSize`` never counts them.
/// - **In flight is not stored.** A computation in flight takes no room in the cache and cannot be evicted; it is
///   stored (as the most recent entry) when it succeeds.
///
/// A hit is one short lock section with no allocation, no task creation and no actor hop.
public final class AsyncLRUCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
  /// The maximum number of stored values; `nil` means unbounded.
  public let maxSize: Int?
  /// How long a stored value lives after its computation completed; `nil` means forever.
  public let expireAfter: Duration?
  /// Whether a hit restarts the entry's expiry period.
  public let refreshOnHit: Bool

  @usableFromInline let mutex: Locked<CacheState<Key, Value>>
  /// The swift-metrics instruments, if the cache was created with `metrics:`.
  @usableFromInline let metrics: CacheMetrics?
  /// The injected clock, erased to "time elapsed since the cache was created"; `nil` without a TTL, so that a cache
  /// without expiry never reads a clock.
  @usableFromInline let elapsed: (@Sendable () -> Duration)?

  /// Creates an empty cache.
  ///
  /// - Parameters:
  ///   - maxSize: The maximum number of stored values (`nil`: unbounded). Must be positive.
  ///   - expireAfter: How long a value lives after its computation completed (`nil`: forever). Must be positive.
  ///   - refreshOnHit: Whether a hit restarts the expiry period (aiotools never does; default `false`).
  ///   - clock: The clock expiry is measured on.
  ///   - metrics: Opt-in swift-metrics instrumentation (hits, misses, loads, load failures, evictions by
  ///     reason, size) under the dimension `cache`; `nil` (the default) records nothing.
  /// - Throws: ``AsyncToolsError/Code/invalidArgument`` if `maxSize` or `expireAfter` is zero or negative.
  public init(
    maxSize: Int? = 128, expireAfter: Duration? = nil, refreshOnHit: Bool = false,
    clock: some Clock<Duration> = ContinuousClock(),
    metrics: MetricsConfiguration? = nil
  ) throws(AsyncToolsError) {
    if let maxSize, maxSize <= 0 {
      throw .invalidArgument("maxSize must be positive or nil (unbounded), got \(maxSize)")
    }
    try expireAfter?.requirePositive("expireAfter")
    self.maxSize = maxSize
    self.expireAfter = expireAfter
    self.refreshOnHit = refreshOnHit
    if expireAfter != nil {
      let origin = clock.now
      elapsed = { origin.duration(to: clock.now) }
    } else {
      elapsed = nil
    }
    mutex = Locked(CacheState(usesExpiry: expireAfter != nil))
    self.metrics = metrics.map(CacheMetrics.init)
  }

  /// Returns the cached value for `key`, or runs `compute` to produce it (once, however many callers miss together).
  ///
  /// On a hit, returns at once without suspending. On a miss, `compute` runs in a new task (it does not inherit the
  /// caller's cancellation, so that other callers can keep waiting for it) and this call waits for it; callers
  /// arriving for `key` meanwhile wait for the same run, and their own `compute` is not called.
  ///
  /// - Throws: The error `compute` threw (not cached; the next call computes again), or `CancellationError` if the
  ///   calling task was cancelled before the value was available (see the type's cancellation rules).
  @inlinable
  nonisolated(nonsending) public func value(
    forKey key: Key, orCompute compute: @escaping @Sendable () async throws -> Value
  ) async throws -> Value {
    if let value = cachedValue(forKey: key) { return value }
    return try await computeOrJoin(key) { _ in try await compute() }
  }

  /// Returns the cached value for `key`, or runs `compute(key)` to produce it: the same as
  /// the `value(forKey:orCompute:)` that takes a closure without parameters, with the key handed to the closure.
  ///
  /// A closure that needs nothing but the key then captures nothing, so no closure context is allocated per call
  /// (`cache.value(forKey: id) { id in try await Profile.load(id) }`): on a hot path this doubles the hit rate
  /// compared with a closure that captures `id`.
  @inlinable
  nonisolated(nonsending) public func value(
    forKey key: Key, orCompute compute: @escaping @Sendable (Key) async throws -> Value
  ) async throws -> Value {
    if let value = cachedValue(forKey: key) { return value }
    return try await computeOrJoin(key, compute)
  }

  /// The hit path: one lock section, no allocation. Inlinable so that it is specialised for `Key` and `Value` in
  /// the caller's module; unspecialised generic dictionary code would be several times slower.
  @inlinable
  func cachedValue(forKey key: Key) -> Value? {
    // The clock is read before taking the lock, to keep the lock section short. Only stores (the miss path) need
    // the time of the lock section itself, to keep the expiry list sorted.
    let now = elapsed?()
    let newExpiry = refreshOnHit ? now.flatMap { now in expireAfter.map { now + $0 } } : nil
    let value = withState { state in
      state.hit(key, now: now, refreshingTo: newExpiry)
    }
    if let metrics, value != nil { metrics.hits.increment() }
    return value
  }

  /// Runs `body` with exclusive access to the cache's state: the one lock every operation goes through.
  @inlinable
  func withState<R>(_ body: (inout sending CacheState<Key, Value>) -> sending R) -> sending R {
    mutex.withLock { state in
      return body(&state)
    }
  }

  /// Whether a value for `key` is stored and not expired. Does not count as a hit and does not promote the entry;
  /// a computation in flight does not count.
  public func contains(_ key: Key) -> Bool {
    let now = elapsed
    return withState { $0.storage.contains(key, now: now?()) }
  }

  /// Removes the value stored for `key` and detaches its computation in flight, if any.
  ///
  /// A detached computation still runs and still delivers its outcome to the callers already waiting for it (they
  /// asked before the invalidation), but its value is not stored; the next caller for `key` starts a new one.
  ///
  /// - Returns: Whether there was a stored value or a computation in flight for `key`.
  @discardableResult
  public func invalidate(_ key: Key) -> Bool {
    withState { $0.invalidate(key) }
  }

  /// Removes every stored value, detaches every computation in flight (as ``invalidate(_:)`` does), and resets the
  /// hit and miss counters to zero, like Python's `cache_clear()`.
  public func clear() {
    withState { $0.clear() }
  }

  /// The cache's statistics. Expired entries are purged first, so ``CacheInfo/currentSize`` is exact.
  public func info() -> CacheInfo {
    let now = elapsed
    let metrics = self.metrics
    let (info, pending) = withState { state in
      if let now = now?() { state.storage.purgeExpired(now: now) }
      let info = CacheInfo(
        hits: state.hits, misses: state.misses, maxSize: maxSize, currentSize: state.storage.count,
        inFlight: state.inFlightCount)
      return (info, metrics?.pending(state.storage))
    }
    if let metrics, let pending { metrics.apply(pending) }
    return info
  }
}
