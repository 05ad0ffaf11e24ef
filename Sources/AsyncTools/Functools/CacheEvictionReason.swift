/// Why an ``AsyncLRUCache`` removed a stored value: what its eviction listener receives with the key and the value.
public struct CacheEvictionReason: Hashable, Sendable, CustomStringConvertible {
  @usableFromInline
  enum Base: Hashable, Sendable { case capacity, expiry, invalidation, replacement }
  @usableFromInline var base: Base

  @inlinable init(_ base: Base) { self.base = base }

  /// The cache was full: the least recently used value made room for a new one.
  public static var capacity: CacheEvictionReason { CacheEvictionReason(.capacity) }
  /// The value outlived `expireAfter` (reported when the cache noticed: on access, on a store, or in `info()`).
  public static var expiry: CacheEvictionReason { CacheEvictionReason(.expiry) }
  /// `invalidate(_:)` or `clear()` removed the value.
  public static var invalidation: CacheEvictionReason { CacheEvictionReason(.invalidation) }
  /// A newer value for the same key replaced it: `set(_:forKey:)` or a refresh (`refreshAfter`).
  public static var replacement: CacheEvictionReason { CacheEvictionReason(.replacement) }

  /// `"capacity"`, `"expiry"`, `"invalidation"` or `"replacement"`.
  public var description: String {
    switch base {
    case .capacity: "capacity"
    case .expiry: "expiry"
    case .invalidation: "invalidation"
    case .replacement: "replacement"
    }
  }
}
