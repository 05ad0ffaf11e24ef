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
/// - **Refresh ahead** (`refreshAfter`, *stale-while-revalidate*): a hit on a value older than `refreshAfter` returns
///   that value at once and starts one background refresh with the caller's `compute`; every caller meanwhile gets
///   the stale value, and a caller that misses the key (it expired) joins the refresh. A successful refresh replaces
///   the value (its expiry and refresh clocks restart); a failed one leaves it, and the next hit tries again.
///   Refreshes are counted in ``CacheInfo/refreshes``, not as misses.
/// - **Eviction listener** (`onEviction`): receives the key, the value and the ``CacheEvictionReason`` of every
///   stored value the cache removes (capacity, expiry, invalidation, replacement), after the cache's lock is
///   released, from the task whose call removed it.
///
/// ``set(_:forKey:)`` stores a value directly, ``peek(_:)`` reads one without waiting, counting or promoting.
///
/// A hit is one short lock section with no allocation, no task creation and no actor hop.
public final class AsyncLRUCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
  /// The maximum number of stored values; `nil` means unbounded.
  public let maxSize: Int?
  /// How long a stored value lives after its computation completed; `nil` means forever.
  public let expireAfter: Duration?
  /// Whether a hit restarts the entry's expiry period.
  public let refreshOnHit: Bool
  /// How old a stored value may get before a hit refreshes it in the background; `nil` means never.
  public let refreshAfter: Duration?
  /// Receives every stored value the cache removes, with the reason.
  @usableFromInline let onEviction: (@Sendable (Key, Value, CacheEvictionReason) -> Void)?
  /// The swift-metrics instruments, if the cache was created with `metrics:`.
  @usableFromInline let metrics: CacheMetrics?

  @usableFromInline let mutex: Locked<CacheState<Key, Value>>
  /// The injected clock, erased to "time elapsed since the cache was created"; `nil` without a TTL or a refresh
  /// delay, so that a cache without them never reads a clock.
  @usableFromInline let elapsed: (@Sendable () -> Duration)?

  /// Creates an empty cache.
  ///
  /// - Parameters:
  ///   - maxSize: The maximum number of stored values (`nil`: unbounded). Must be positive.
  ///   - expireAfter: How long a value lives after its computation completed (`nil`: forever). Must be positive.
  ///   - refreshOnHit: Whether a hit restarts the expiry period (aiotools never does; default `false`).
  ///   - refreshAfter: How old (since its computation completed) a value may get before a hit refreshes it in the
  ///     background while still returning it (`nil`: never). Must be positive, and shorter than `expireAfter`.
  ///   - clock: The clock expiry and refresh are measured on.
  ///   - onEviction: Receives the key, value and reason of every stored value the cache removes (`nil`: none).
  ///     Called outside the cache's lock, so it may use the cache; it should not block.
  ///   - metrics: Opt-in swift-metrics instrumentation (hits, misses, loads, load failures, refreshes,
  ///     evictions by reason, size) under the dimension `cache`; `nil` (the default) records nothing.
  /// - Throws: ``AsyncToolsError/Code/invalidArgument`` if `maxSize`, `expireAfter` or `refreshAfter` is zero or
  ///   negative, or `refreshAfter` is not shorter than `expireAfter`.
  public init(
    maxSize: Int? = 128, expireAfter: Duration? = nil, refreshOnHit: Bool = false, refreshAfter: Duration? = nil,
    clock: some Clock<Duration> = DefaultClock(),
    onEviction: (@Sendable (_ key: Key, _ value: Value, _ reason: CacheEvictionReason) -> Void)? = nil,
    metrics: MetricsConfiguration? = nil
  ) throws(AsyncToolsError) {
    if let maxSize, maxSize <= 0 {
      throw .invalidArgument("maxSize must be positive or nil (unbounded), got \(maxSize)")
    }
    try expireAfter?.requirePositive("expireAfter")
    try refreshAfter?.requirePositive("refreshAfter")
    if let refreshAfter, let expireAfter, refreshAfter >= expireAfter {
      throw .invalidArgument(
        "refreshAfter must be shorter than expireAfter (\(expireAfter)) or the value expires first, "
          + "got \(refreshAfter)")
    }
    self.maxSize = maxSize
    self.expireAfter = expireAfter
    self.refreshOnHit = refreshOnHit
    self.refreshAfter = refreshAfter
    self.onEviction = onEviction
    if expireAfter != nil || refreshAfter != nil {
      let origin = clock.now
      elapsed = { origin.duration(to: clock.now) }
    } else {
      elapsed = nil
    }
    self.metrics = metrics.map(CacheMetrics.init)
    mutex = Locked(
      CacheState(usesExpiry: expireAfter != nil, recordsEvictions: onEviction != nil || metrics != nil))
  }

  /// Returns the cached value for `key`, or runs `compute` to produce it (once, however many callers miss together).
  ///
  /// On a hit, returns at once without suspending. On a miss, `compute` runs in a new task (it does not inherit the
  /// caller's cancellation, so that other callers can keep waiting for it) and this call waits for it; callers
  /// arriving for `key` meanwhile wait for the same run, and their own `compute` is not called.
  ///
  /// The closure is taken as an autoclosure: the escaping closure you write is only created on a miss (or on a hit
  /// of a cache with `refreshAfter`), so a hit allocates nothing even when the closure captures values
  /// (`cache.value(forKey: id) { try await db.load(id) }`). Write it as usual, as a trailing closure or as
  /// `orCompute:`; a closure value or a function name works too.
  ///
  /// - Throws: The error `compute` threw (not cached; the next call computes again), or `CancellationError` if the
  ///   calling task was cancelled before the value was available (see the type's cancellation rules).
  @inlinable @inline(__always)
  nonisolated(nonsending) public func value(
    forKey key: Key, orCompute compute: @autoclosure () -> @Sendable () async throws -> Value
  ) async throws -> Value {
    // The hit path is inlined into the caller (no async call frame for a hit), and the caller's closure is formed only
    // past it: as a plain `@escaping` parameter, its context was allocated by the caller before the call, on every
    // hit — about 290 of the 1,050 instructions of a hit (callgrind, BENCHMARKS.md). The optimiser cannot move that
    // allocation into a callee of another module; an autoclosure defers it.
    if refreshAfter == nil, let value = cachedValue(forKey: key) { return value }
    return try await valueOnSlowPath(forKey: key, compute())
  }

  /// Returns the cached value for `key`, or runs `compute(key)` to produce it: the same as
  /// the `value(forKey:orCompute:)` that takes a closure without parameters, with the key handed to the closure.
  ///
  /// As in the other form, the closure is an autoclosure of the closure you write, formed only past a hit, so a hit
  /// allocates nothing whatever the closure captures (`cache.value(forKey: id) { id in try await db.load(id) }`).
  @inlinable @inline(__always)
  nonisolated(nonsending) public func value(
    forKey key: Key, orCompute compute: @autoclosure () -> @Sendable (Key) async throws -> Value
  ) async throws -> Value {
    if refreshAfter == nil, let value = cachedValue(forKey: key) { return value }
    return try await valueOnSlowPath(forKey: key, compute())
  }

  /// Everything but a plain hit, for a closure without parameters: see the overload for a closure that takes the key.
  @inlinable @inline(never)
  nonisolated(nonsending) func valueOnSlowPath(
    forKey key: Key, _ compute: @escaping @Sendable () async throws -> Value
  ) async throws -> Value {
    try await valueOnSlowPath(forKey: key) { _ in try await compute() }
  }

  /// Everything but a plain hit: the hit of a cache with `refreshAfter` (which may start a refresh with `compute`), and
  /// the miss. Inlinable for the specialisation for `Key` and `Value`; not inlined, so that each call site carries
  /// only the hit path.
  @inlinable @inline(never)
  nonisolated(nonsending) func valueOnSlowPath(
    forKey key: Key, _ compute: @escaping @Sendable (Key) async throws -> Value
  ) async throws -> Value {
    if refreshAfter != nil,
      let value = cachedValueRefreshingAhead(key, { flight in startComputation(key, flight, compute) })
    {
      return value
    }
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
    let metrics = self.metrics
    let (value, hits) = withState { state -> (Value?, Int) in
      let value = state.hit(key, now: now, refreshingTo: newExpiry)
      // With metrics, every `hitBatch`-th hit reports the batch (see `CacheMetrics`).
      guard let metrics, value != nil, state.hits % CacheMetrics.hitBatch == 0 else { return (value, 0) }
      return (value, metrics.hitsToReport(state.hits))
    }
    if hits > 0 { metrics?.reportHits(hits) }
    return value
  }

  /// The hit path of a cache with `refreshAfter`: as ``cachedValue(forKey:)``, and a due refresh is started with
  /// `start` (see ``CacheState/hitRefreshingAhead(_:now:refreshingTo:start:)``).
  @inlinable
  func cachedValueRefreshingAhead(_ key: Key, _ start: @Sendable (_ flight: UInt64) -> Task<Void, Never>) -> Value? {
    // Set whenever `refreshAfter` is.
    let now = elapsed!()
    let newExpiry = refreshOnHit ? expireAfter.map { now + $0 } : nil
    let metrics = self.metrics
    let (value, refreshed, hits) = withState { state -> (Value?, Bool, Int) in
      let refreshes = state.refreshes
      let value = state.hitRefreshingAhead(key, now: now, refreshingTo: newExpiry, start: start)
      guard let metrics, value != nil, state.hits % CacheMetrics.hitBatch == 0 else {
        return (value, state.refreshes != refreshes, 0)
      }
      return (value, state.refreshes != refreshes, metrics.hitsToReport(state.hits))
    }
    if let metrics {
      metrics.reportHits(hits)
      if refreshed {
        metrics.refreshes.increment(by: 1)
        metrics.loads.increment(by: 1)
      }
    }
    return value
  }

  /// Runs `body` with the cache's state, then hands the values it removed to the eviction listener and the metrics,
  /// if there are any, once the lock is released. Every path that may remove a stored value goes through it.
  @usableFromInline
  func withStateReportingEvictions<R>(_ body: (inout sending CacheState<Key, Value>) -> sending R) -> sending R {
    if onEviction == nil && metrics == nil { return withState(body) }
    var evicted: [(Key, Value, CacheEvictionReason)] = []
    var size = 0
    var hits = 0
    let metrics = self.metrics
    let result = mutex.withLock { state in
      // Hits before and after `body`: `clear()` resets the tally.
      hits = metrics?.hitsToReport(state.hits) ?? 0
      let result = body(&state)
      evicted = state.storage.takeEvicted()
      size = state.storage.count
      hits += metrics?.hitsToReport(state.hits) ?? 0
      return result
    }
    if let metrics {
      metrics.reportHits(hits)
      metrics.report(evicted: evicted, size: size)
    }
    if let onEviction {
      for (key, value, reason) in evicted { onEviction(key, value, reason) }
    }
    return result
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

  /// The value stored for `key` if there is one and it has not expired, without waiting for a computation in flight.
  ///
  /// Does not count as a hit or a miss, does not promote the entry, does not restart its expiry and never starts a
  /// computation or a refresh.
  public func peek(_ key: Key) -> Value? {
    let now = elapsed
    return withState { $0.storage.peek(key, now: now?()) }
  }

  /// Stores `value` for `key`, replacing a stored value, as if a computation for `key` had just completed: it becomes
  /// the most recent entry, its expiry and refresh periods start now, and the least recently used values are evicted
  /// if the cache is over `maxSize`.
  ///
  /// A computation in flight for `key` is detached (as by ``invalidate(_:)``): the callers already waiting for it get
  /// its outcome, but it does not overwrite this value. A replaced value is reported to the eviction listener with
  /// ``CacheEvictionReason/replacement``.
  public func set(_ value: Value, forKey key: Key) {
    let elapsed = self.elapsed
    let policy = storePolicy
    withStateReportingEvictions { $0.set(key, value, now: elapsed?(), policy: policy) }
  }

  /// How this cache stores values.
  var storePolicy: CacheState<Key, Value>.StorePolicy {
    CacheState<Key, Value>.StorePolicy(maxSize: maxSize, expireAfter: expireAfter, refreshAfter: refreshAfter)
  }

  /// Removes the value stored for `key` and detaches its computation in flight, if any.
  ///
  /// A detached computation still runs and still delivers its outcome to the callers already waiting for it (they
  /// asked before the invalidation), but its value is not stored; the next caller for `key` starts a new one.
  ///
  /// - Returns: Whether there was a stored value or a computation in flight for `key`.
  @discardableResult
  public func invalidate(_ key: Key) -> Bool {
    withStateReportingEvictions { $0.invalidate(key) }
  }

  /// Removes every stored value, detaches every computation in flight (as ``invalidate(_:)`` does), and resets the
  /// hit, miss and refresh counters to zero, like Python's `cache_clear()`. Removed values are reported to the
  /// eviction listener with ``CacheEvictionReason/invalidation``.
  public func clear() {
    withStateReportingEvictions { $0.clear() }
  }

  /// The cache's statistics. Expired entries are purged first, so ``CacheInfo/currentSize`` is exact.
  public func info() -> CacheInfo {
    let now = elapsed
    let usesExpiry = expireAfter != nil
    return withStateReportingEvictions { state in
      if usesExpiry, let now = now?() { state.storage.purgeExpired(now: now) }
      return CacheInfo(
        hits: state.hits, misses: state.misses, maxSize: maxSize, currentSize: state.storage.count,
        inFlight: state.inFlightCount, refreshes: state.refreshes)
    }
  }
}
