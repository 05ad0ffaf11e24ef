/// A snapshot of an ``AsyncLRUCache``'s statistics (Python's `cache_info()`).
public struct CacheInfo: Hashable, Sendable, CustomStringConvertible {
  /// Calls served without starting a computation: stored values, and calls that joined a computation in flight.
  public var hits: Int
  /// Calls that started a computation. Each miss starts exactly one.
  public var misses: Int
  /// The maximum number of stored values; `nil` means unbounded.
  public var maxSize: Int?
  /// The number of stored, unexpired values (computations in flight are not counted).
  public var currentSize: Int
  /// The number of computations in flight that new callers can still join.
  public var inFlight: Int
  /// Background refreshes started by hits on values older than `refreshAfter` (counted apart from ``misses``: a
  /// refresh serves no caller that waited).
  public var refreshes: Int

  /// Creates a snapshot.
  public init(hits: Int, misses: Int, maxSize: Int?, currentSize: Int, inFlight: Int = 0, refreshes: Int = 0) {
    self.hits = hits
    self.misses = misses
    self.maxSize = maxSize
    self.currentSize = currentSize
    self.inFlight = inFlight
    self.refreshes = refreshes
  }

  /// A one-line summary of every field.
  public var description: String {
    "CacheInfo(hits: \(hits), misses: \(misses), maxSize: \(maxSize.map(String.init) ?? "nil"), "
      + "currentSize: \(currentSize), inFlight: \(inFlight), refreshes: \(refreshes))"
  }
}
