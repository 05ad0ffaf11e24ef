/// The stored (completed) entries of an ``AsyncLRUCache``: a hash index plus intrusive doubly linked lists.
///
/// Why not `OrderedDictionary`: removing from its middle is O(n), and an LRU removes from the middle on every
/// eviction of a promoted entry. Here nodes live in one contiguous array and link to each other by index, so a
/// hit (promote to most recent), an insertion, an eviction and an expiry are all O(1) and allocation-free once the
/// array has grown to `maxSize` (freed nodes are recycled through a free list).
///
/// Two lists thread through the nodes:
/// - the recency list (`newer`/`older`), most recent at `mostRecent`, evicted from `leastRecent`;
/// - with a TTL, the expiry list (`expiresSooner`/`expiresLater`), soonest at `soonest`. Every entry gets the same
///   TTL from a monotonic clock, so appending at the tail keeps the list sorted by expiry; purging expired entries is
///   O(number purged). Without `refreshOnHit` a hit does not touch this list, which is why it is separate from the
///   recency list.
///
/// With an eviction listener (`recordsEvictions`), every removal appends the key, the value and the reason to
/// `evicted`, which the cache drains in the same lock section and hands to the listener after the lock is released.
///
/// Not thread-safe by itself: it lives inside the cache's `Mutex`.
@usableFromInline
struct LRUStorage<Key: Hashable, Value> {
  @usableFromInline
  struct Node {
    @usableFromInline var key: Key?
    @usableFromInline var value: Value?
    /// Offset from the cache's time origin at which the entry expires (unused without a TTL).
    @usableFromInline var expiresAt: Duration
    /// Offset from the cache's time origin from which a hit starts a refresh (unused without `refreshAfter`).
    @usableFromInline var refreshAt: Duration
    @usableFromInline var newer: Int
    /// Doubles as the free-list link while the node is free.
    @usableFromInline var older: Int
    @usableFromInline var expiresSooner: Int
    @usableFromInline var expiresLater: Int
  }

  @usableFromInline static var none: Int { -1 }

  @usableFromInline var index: [Key: Int] = [:]
  @usableFromInline var nodes: ContiguousArray<Node> = []
  @usableFromInline var mostRecent = Self.none
  @usableFromInline var leastRecent = Self.none
  @usableFromInline var soonest = Self.none
  @usableFromInline var latest = Self.none
  @usableFromInline var freeHead = Self.none
  @usableFromInline var count = 0
  @usableFromInline let usesExpiry: Bool
  @usableFromInline let recordsEvictions: Bool
  /// Removed entries not yet handed to the eviction listener (only with `recordsEvictions`).
  @usableFromInline var evicted: [(Key, Value, CacheEvictionReason)] = []

  @usableFromInline
  init(usesExpiry: Bool, recordsEvictions: Bool = false) {
    self.usesExpiry = usesExpiry
    self.recordsEvictions = recordsEvictions
  }

  /// The value for `key` if it is stored and not expired at `now`, promoted to most recent.
  /// An expired entry is removed on the way (lazy expiry).
  @inlinable
  mutating func lookUp(_ key: Key, now: Duration?, refreshingTo newExpiry: Duration?) -> Value? {
    guard let node = liveNode(key, now: now, refreshingTo: newExpiry) else { return nil }
    return nodes[node].value
  }

  /// The node of `key` if it is stored and not expired at `now`, promoted to most recent (and its expiry moved to
  /// `newExpiry` if given). An expired entry is removed on the way (lazy expiry).
  @inlinable
  mutating func liveNode(_ key: Key, now: Duration?, refreshingTo newExpiry: Duration?) -> Int? {
    guard let node = index[key] else { return nil }
    if usesExpiry, let now, nodes[node].expiresAt <= now {
      remove(node, reason: .expiry)
      return nil
    }
    promote(node)
    if let newExpiry {
      nodes[node].expiresAt = newExpiry
      unlinkExpiry(node)
      appendExpiry(node)
    }
    return node
  }

  /// Whether `key` is stored and not expired at `now`; changes nothing.
  @usableFromInline
  func contains(_ key: Key, now: Duration?) -> Bool {
    guard let node = index[key] else { return false }
    if usesExpiry, let now { return nodes[node].expiresAt > now }
    return true
  }

  /// The value for `key` if it is stored and not expired at `now`; changes nothing.
  @usableFromInline
  func peek(_ key: Key, now: Duration?) -> Value? {
    guard let node = index[key] else { return nil }
    if usesExpiry, let now, nodes[node].expiresAt <= now { return nil }
    return nodes[node].value
  }

  /// As ``lookUp(_:now:refreshingTo:)``, and whether the entry is due for a refresh at `now` (its `refreshAt` has
  /// passed): the hit path of a cache with `refreshAfter`.
  @inlinable
  mutating func lookUpForRefresh(
    _ key: Key, now: Duration, refreshingTo newExpiry: Duration?
  ) -> (value: Value, refreshDue: Bool)? {
    guard let node = liveNode(key, now: now, refreshingTo: newExpiry), let value = nodes[node].value else { return nil }
    return (value, nodes[node].refreshAt <= now)
  }

  /// Stores `value` as the most recent entry (replacing an existing one).
  @usableFromInline
  mutating func insert(_ key: Key, _ value: Value, expiresAt: Duration, refreshAt: Duration = .zero) {
    if let existing = index[key] {
      remove(existing, reason: .replacement)
    }
    let node: Int
    let fresh = Node(
      key: key, value: value, expiresAt: expiresAt, refreshAt: refreshAt, newer: Self.none, older: Self.none,
      expiresSooner: Self.none, expiresLater: Self.none)
    if freeHead != Self.none {
      node = freeHead
      freeHead = nodes[node].older
      nodes[node] = fresh
    } else {
      node = nodes.count
      nodes.append(fresh)
    }
    index[key] = node
    linkMostRecent(node)
    if usesExpiry { appendExpiry(node) }
    count += 1
  }

  /// Removes the entry for `key`; returns whether there was one.
  @usableFromInline
  mutating func removeValue(forKey key: Key) -> Bool {
    guard let node = index[key] else { return false }
    remove(node, reason: .invalidation)
    return true
  }

  /// Removes the least recently used entry.
  @usableFromInline
  mutating func evictLeastRecent() {
    if leastRecent != Self.none { remove(leastRecent, reason: .capacity) }
  }

  /// Removes every entry that has expired at `now`.
  @usableFromInline
  mutating func purgeExpired(now: Duration) {
    while soonest != Self.none, nodes[soonest].expiresAt <= now {
      remove(soonest, reason: .expiry)
    }
  }

  @usableFromInline
  mutating func removeAll() {
    var evicted = self.evicted
    if recordsEvictions {
      var node = mostRecent
      while node != Self.none {
        if let key = nodes[node].key, let value = nodes[node].value { evicted.append((key, value, .invalidation)) }
        node = nodes[node].older
      }
    }
    self = LRUStorage(usesExpiry: usesExpiry, recordsEvictions: recordsEvictions)
    self.evicted = evicted
  }

  /// Hands over the removed entries not yet reported.
  @usableFromInline
  mutating func takeEvicted() -> [(Key, Value, CacheEvictionReason)] {
    if evicted.isEmpty { return [] }
    defer { evicted = [] }
    return evicted
  }

  // MARK: - Links

  /// Moves `node` to the most recent end. The hit path: one uniqueness check for the whole relink instead of one
  /// per field write (unchecked buffer access; every index here is a linked node, so in bounds).
  @inlinable
  mutating func promote(_ node: Int) {
    // The common case in hot loops: the entry is already the most recent one.
    let head = mostRecent
    if node == head { return }
    let none = Self.none
    var tail = leastRecent
    nodes.withUnsafeMutableBufferPointer { nodes in
      // `node` is not the head, so it has a newer neighbour.
      let newer = nodes[node].newer
      let older = nodes[node].older
      nodes[newer].older = older
      if older != none { nodes[older].newer = newer } else { tail = newer }
      nodes[node].newer = none
      nodes[node].older = head
      nodes[head].newer = node
    }
    leastRecent = tail
    mostRecent = node
  }

  @inlinable
  mutating func linkMostRecent(_ node: Int) {
    nodes[node].newer = Self.none
    nodes[node].older = mostRecent
    if mostRecent != Self.none {
      nodes[mostRecent].newer = node
    } else {
      leastRecent = node
    }
    mostRecent = node
  }

  @inlinable
  mutating func unlinkRecency(_ node: Int) {
    let newer = nodes[node].newer
    let older = nodes[node].older
    if newer != Self.none { nodes[newer].older = older } else { mostRecent = older }
    if older != Self.none { nodes[older].newer = newer } else { leastRecent = newer }
  }

  @inlinable
  mutating func appendExpiry(_ node: Int) {
    nodes[node].expiresLater = Self.none
    nodes[node].expiresSooner = latest
    if latest != Self.none {
      nodes[latest].expiresLater = node
    } else {
      soonest = node
    }
    latest = node
  }

  @inlinable
  mutating func unlinkExpiry(_ node: Int) {
    let sooner = nodes[node].expiresSooner
    let later = nodes[node].expiresLater
    if sooner != Self.none { nodes[sooner].expiresLater = later } else { soonest = later }
    if later != Self.none { nodes[later].expiresSooner = sooner } else { latest = sooner }
  }

  @inlinable
  mutating func remove(_ node: Int, reason: CacheEvictionReason) {
    if recordsEvictions, let key = nodes[node].key, let value = nodes[node].value {
      evicted.append((key, value, reason))
    }
    if let key = nodes[node].key { index.removeValue(forKey: key) }
    unlinkRecency(node)
    if usesExpiry { unlinkExpiry(node) }
    // Release key and value now, not when the slot is reused.
    nodes[node].key = nil
    nodes[node].value = nil
    nodes[node].older = freeHead
    freeHead = node
    count -= 1
  }
}
