import AsyncTools
import AsyncToolsTesting
import Testing

@Suite("AsyncLRUCache expiry (virtual time)")
struct AsyncLRUCacheExpiryTests {
  static func at(_ offset: Duration) -> VirtualClock.Instant { VirtualClock.Instant(offset: offset) }

  @Test func expiryIsMeasuredFromCompletionAndHitsDoNotRefreshIt() async throws {
    try await withVirtualTime { clock in
      let cache = try AsyncLRUCache<Int, Int>(maxSize: 10, expireAfter: .seconds(1), clock: clock)
      let computations = FunctoolsCounter()
      let compute: @Sendable () async throws -> Int = {
        // The computation itself takes 0.5 s: expiry must count from its end (t = 0.6), not from the call (0.1).
        try await clock.sleep(for: .milliseconds(500))
        return computations.increment()
      }
      try await clock.sleep(until: Self.at(.milliseconds(100)))
      #expect(try await cache.value(forKey: 1, orCompute: compute) == 1)
      #expect(clock.now.offset == .milliseconds(600))

      try await clock.sleep(until: Self.at(.milliseconds(1_300)))  // completion + 0.7
      #expect(try await cache.value(forKey: 1, orCompute: compute) == 1, "a hit at completion + 0.7 s")
      try await clock.sleep(until: Self.at(.milliseconds(1_500)))  // call start + 1.4, completion + 0.9
      #expect(try await cache.value(forKey: 1, orCompute: compute) == 1, "still valid: counted from completion")

      try await clock.sleep(until: Self.at(.milliseconds(1_800)))  // completion + 1.2
      #expect(try await cache.value(forKey: 1, orCompute: compute) == 2, "expired: the hits did not refresh it")
      #expect(clock.now.offset == .milliseconds(2_300))
      #expect(cache.info().hits == 2)
      #expect(cache.info().misses == 2)
    }
  }

  @Test func entryExpiresExactlyExpireAfterAfterCompletion() async throws {
    try await withVirtualTime { clock in
      let cache = try AsyncLRUCache<Int, Int>(maxSize: 10, expireAfter: .seconds(1), clock: clock)
      _ = try await cache.value(forKey: 1) { 1 }
      try await clock.sleep(until: Self.at(.milliseconds(999)))
      #expect(cache.contains(1))
      try await clock.sleep(until: Self.at(.seconds(1)))
      #expect(!cache.contains(1), "an entry lives for expireAfter, not a moment longer")
      #expect(try await cache.value(forKey: 1) { 2 } == 2)
    }
  }

  @Test func refreshOnHitRestartsTheExpiryPeriod() async throws {
    try await withVirtualTime { clock in
      let cache = try AsyncLRUCache<Int, Int>(
        maxSize: 10, expireAfter: .seconds(1), refreshOnHit: true, clock: clock)
      let computations = FunctoolsCounter()
      let compute: @Sendable () async throws -> Int = { computations.increment() }
      #expect(try await cache.value(forKey: 1, orCompute: compute) == 1)  // t = 0, expires at 1
      try await clock.sleep(until: Self.at(.milliseconds(700)))
      #expect(try await cache.value(forKey: 1, orCompute: compute) == 1)  // refreshed: expires at 1.7
      try await clock.sleep(until: Self.at(.milliseconds(1_200)))
      #expect(try await cache.value(forKey: 1, orCompute: compute) == 1, "still valid thanks to the refresh")
      try await clock.sleep(until: Self.at(.milliseconds(2_200)))  // last hit 1.2 + 1 = 2.2
      #expect(try await cache.value(forKey: 1, orCompute: compute) == 2)
      #expect(computations.current == 2)
    }
  }

  @Test func expiredEntriesAreNotCountedInSize() async throws {
    try await withVirtualTime { clock in
      let cache = try AsyncLRUCache<Int, Int>(maxSize: 10, expireAfter: .seconds(1), clock: clock)
      _ = try await cache.value(forKey: 1) { 1 }
      try await clock.sleep(until: Self.at(.milliseconds(500)))
      _ = try await cache.value(forKey: 2) { 2 }
      #expect(cache.info().currentSize == 2)
      try await clock.sleep(until: Self.at(.seconds(1)))
      #expect(cache.info().currentSize == 1, "key 1 expired at t = 1 although nobody touched it")
      try await clock.sleep(until: Self.at(.milliseconds(1_500)))
      #expect(cache.info().currentSize == 0)
    }
  }

  @Test func expiredEntriesMakeRoomBeforeALiveEntryIsEvicted() async throws {
    try await withVirtualTime { clock in
      let cache = try AsyncLRUCache<String, Int>(maxSize: 2, expireAfter: .seconds(1), clock: clock)
      _ = try await cache.value(forKey: "a") { 1 }  // expires at 1
      try await clock.sleep(until: Self.at(.milliseconds(500)))
      _ = try await cache.value(forKey: "b") { 2 }  // expires at 1.5
      _ = try await cache.value(forKey: "a") { 0 }  // hit: "a" is most recent, "b" least recent
      try await clock.sleep(until: Self.at(.milliseconds(1_200)))
      _ = try await cache.value(forKey: "c") { 3 }
      #expect(cache.contains("b"), "the expired \"a\" went first; live \"b\" was not evicted")
      #expect(cache.contains("c"))
      #expect(!cache.contains("a"))
    }
  }

  @Test func aCacheWithoutExpiryKeepsValuesForever() async throws {
    try await withVirtualTime { clock in
      let cache = try AsyncLRUCache<Int, Int>(maxSize: 10, clock: clock)
      _ = try await cache.value(forKey: 1) { 1 }
      try await clock.sleep(until: Self.at(.seconds(1_000_000)))
      #expect(try await cache.value(forKey: 1) { 2 } == 1)
    }
  }
}
