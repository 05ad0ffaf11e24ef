/// An async function with an ``AsyncLRUCache`` in front of it (Python's `@lru_cache` decorator). Made by
/// ``memoize(maxSize:expireAfter:refreshOnHit:clock:_:)``.
///
/// ```swift
/// let fetchUser = try memoize(maxSize: 1_000) { (id: UserID) in try await database.fetchUser(id) }
/// let user = try await fetchUser(id)
/// ```
///
/// Calls follow the cache's rules: true LRU, single flight per argument value, errors not cached, expiry from
/// completion. The arguments are the key, so they must be one `Hashable` type (a struct for several arguments).
/// aiotools' `typed=True` is therefore always true here: `Args` is a single concrete type, so arguments of different
/// types can never produce equal keys. A function taking several types of argument declares an enum with a case per
/// type. (`AnyHashable`, whose equality bridges numbers so that `AnyHashable(3) == AnyHashable(3.0)`, is not
/// `Sendable` and cannot be a key.)
public struct Memoized<Args: Hashable & Sendable, Value: Sendable>: Sendable {
  /// The cache in front of the function; use it for finer control (``AsyncLRUCache/contains(_:)``, …).
  public let cache: AsyncLRUCache<Args, Value>
  @usableFromInline let function: @Sendable (Args) async throws -> Value

  /// Wraps `function` with `cache`.
  public init(cache: AsyncLRUCache<Args, Value>, function: @escaping @Sendable (Args) async throws -> Value) {
    self.cache = cache
    self.function = function
  }

  /// Returns the cached result for `args`, or calls the function (once for concurrent callers with equal `args`).
  ///
  /// - Throws: What the function threw (not cached), or `CancellationError` (see ``AsyncLRUCache``).
  @inlinable
  nonisolated(nonsending) public func callAsFunction(_ args: Args) async throws -> Value {
    if let value = cache.cachedValue(forKey: args) { return value }
    return try await cache.computeOrJoin(args, function)
  }

  /// The cache's statistics (Python's `cache_info()`).
  public func info() -> CacheInfo { cache.info() }

  /// Empties the cache and resets its statistics (Python's `cache_clear()`).
  public func clear() { cache.clear() }

  /// Forgets the result for `args` (Python's `cache_invalidate(*args)`); see ``AsyncLRUCache/invalidate(_:)``.
  @discardableResult
  public func invalidate(_ args: Args) -> Bool { cache.invalidate(args) }

  /// Whether a result for `args` is cached (Python's `cache_contains(*args)`).
  public func contains(_ args: Args) -> Bool { cache.contains(args) }
}

/// Wraps an async function in an LRU cache with single flight (aiotools' `@lru_cache(maxsize, typed, expire_after)`).
///
/// ```swift
/// let square = try memoize(maxSize: 2) { (n: Int) in
///   try await Task.sleep(for: .milliseconds(10))
///   return n * n
/// }
/// try await square(3)  // computes
/// try await square(3)  // hit
/// ```
///
/// - Parameters:
///   - maxSize: The maximum number of cached results (`nil`: unbounded). Must be positive.
///   - expireAfter: How long a result lives after its computation completed (`nil`: forever). Must be positive.
///   - refreshOnHit: Whether a hit restarts the expiry period.
///   - clock: The clock expiry is measured on.
///   - function: The function to memoize. Its argument is the cache key; pass several arguments as one `Hashable`
///     struct.
/// - Throws: ``AsyncToolsError/Code/invalidArgument`` for a zero or negative `maxSize` or `expireAfter`.
public func memoize<Args: Hashable & Sendable, Value: Sendable>(
  maxSize: Int? = 128, expireAfter: Duration? = nil, refreshOnHit: Bool = false,
  clock: some Clock<Duration> = DefaultClock(),
  _ function: @escaping @Sendable (Args) async throws -> Value
) throws(AsyncToolsError) -> Memoized<Args, Value> {
  let cache = try AsyncLRUCache<Args, Value>(
    maxSize: maxSize, expireAfter: expireAfter, refreshOnHit: refreshOnHit, clock: clock)
  return Memoized(cache: cache, function: function)
}
