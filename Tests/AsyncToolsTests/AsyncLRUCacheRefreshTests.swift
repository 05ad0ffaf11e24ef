import AsyncTools
import AsyncToolsTesting
import Testing

/// `AsyncLRUCache`: `set`, `peek`, refresh ahead (stale-while-revalidate), the eviction listener and the refresh
/// statistics (issue #16, item 7). Exact virtual instants.
@Suite("AsyncLRUCache set, peek, refresh ahead and evictions")
struct AsyncLRUCacheRefreshTests {
  static func at(_ offset: Duration) -> VirtualClock.Instant { VirtualClock.Instant(offset: offset) }

  @Test func setStoresAndReplacesAndPeekReadsWithoutCountingOrPromoting() async throws {
    let cache = try AsyncLRUCache<Int, String>(maxSize: 2)
    cache.set("one", forKey: 1)
    cache.set("two", forKey: 2)
    #expect(cache.peek(1) == "one")
    #expect(cache.peek(3) == nil)
    cache.set("uno", forKey: 1)
    #expect(try await cache.value(forKey: 1) { "computed" } == "uno", "set replaced the value; no computation")
    #expect(cache.info().hits == 1)
    #expect(cache.info().misses == 0, "peek and set are neither hits nor misses")
    // 1 is the most recent (the hit promoted it; peek does not): storing 3 evicts 2.
    _ = cache.peek(2)
    cache.set("three", forKey: 3)
    #expect(cache.peek(2) == nil)
    #expect(cache.peek(1) == "uno")
  }

  @Test func setDetachesAComputationInFlightSoItDoesNotOverwriteTheNewValue() async throws {
    let cache = try AsyncLRUCache<Int, String>(maxSize: 10)
    let gate = FunctoolsGate()
    let waiting = Task { try await cache.value(forKey: 1) { await gate.wait(); return "old" } }
    await functoolsEventually { cache.info().inFlight == 1 }
    cache.set("new", forKey: 1)
    gate.open()
    #expect(try await waiting.value == "old", "the waiting caller still gets its computation's outcome")
    #expect(cache.peek(1) == "new")
  }

  @Test func peekIgnoresExpiredValues() async throws {
    try await withVirtualTime { clock in
      let cache = try AsyncLRUCache<Int, Int>(maxSize: 10, expireAfter: .seconds(1), clock: clock)
      cache.set(5, forKey: 1)
      try await clock.sleep(until: Self.at(.milliseconds(999)))
      #expect(cache.peek(1) == 5)
      try await clock.sleep(until: Self.at(.seconds(1)))
      #expect(cache.peek(1) == nil)
    }
  }

  @Test func refreshAheadServesTheStaleValueWhileOneRefreshRuns() async throws {
    try await withVirtualTime { clock in
      let cache = try AsyncLRUCache<Int, Int>(
        maxSize: 10, expireAfter: .seconds(10), refreshAfter: .seconds(2), clock: clock)
      let computations = FunctoolsCounter()
      let compute: @Sendable () async throws -> Int = {
        try await clock.sleep(for: .milliseconds(500))
        return computations.increment()
      }
      #expect(try await cache.value(forKey: 1, orCompute: compute) == 1)  // stored at 0.5
      try await clock.sleep(until: Self.at(.milliseconds(2_400)))  // age 1.9: fresh
      #expect(try await cache.value(forKey: 1, orCompute: compute) == 1)
      #expect(cache.info().refreshes == 0)
      try await clock.sleep(until: Self.at(.milliseconds(2_600)))  // age 2.1: due
      #expect(try await cache.value(forKey: 1, orCompute: compute) == 1, "the stale value, at once")
      #expect(clock.now.offset == .milliseconds(2_600))
      #expect(try await cache.value(forKey: 1, orCompute: compute) == 1, "still stale; no second refresh")
      #expect(cache.info().refreshes == 1)
      #expect(cache.info().inFlight == 1)
      try await clock.sleep(until: Self.at(.milliseconds(3_200)))  // the refresh ended at 3.1
      #expect(try await cache.value(forKey: 1, orCompute: compute) == 2, "the refreshed value")
      #expect(computations.current == 2)
      let info = cache.info()
      #expect(info.misses == 1, "a refresh is not a miss")
      #expect(info.refreshes == 1)
      #expect(info.hits == 4)
      // The refresh restarted both clocks: due again at 3.1 + 2 = 5.1, not before.
      try await clock.sleep(until: Self.at(.milliseconds(5_000)))
      #expect(try await cache.value(forKey: 1, orCompute: compute) == 2)
      #expect(cache.info().refreshes == 1)
    }
  }

  @Test func aFailedRefreshKeepsTheStaleValueAndTheNextHitRetries() async throws {
    try await withVirtualTime { clock in
      let cache = try AsyncLRUCache<Int, Int>(
        maxSize: 10, expireAfter: .seconds(10), refreshAfter: .seconds(1), clock: clock)
      let attempts = FunctoolsCounter()
      let failing: @Sendable () async throws -> Int = {
        attempts.increment()
        try await clock.sleep(for: .milliseconds(100))
        throw FunctoolsTestError(id: 1)
      }
      cache.set(7, forKey: 1)
      try await clock.sleep(until: Self.at(.seconds(1)))
      #expect(try await cache.value(forKey: 1, orCompute: failing) == 7)
      try await clock.sleep(until: Self.at(.milliseconds(1_200)))
      #expect(cache.peek(1) == 7, "a failed refresh keeps the value")
      #expect(try await cache.value(forKey: 1, orCompute: failing) == 7)
      try await clock.sleep(until: Self.at(.milliseconds(1_400)))
      #expect(attempts.current == 2)
      #expect(cache.info().refreshes == 2)
    }
  }

  @Test func aCallerMissingAnExpiredKeyJoinsTheRefreshInFlight() async throws {
    try await withVirtualTime { clock in
      let cache = try AsyncLRUCache<Int, Int>(
        maxSize: 10, expireAfter: .seconds(2), refreshAfter: .seconds(1), clock: clock)
      let computations = FunctoolsCounter()
      let slow: @Sendable () async throws -> Int = {
        try await clock.sleep(for: .seconds(3))
        return 100 + computations.increment()
      }
      cache.set(1, forKey: 1)
      try await clock.sleep(until: Self.at(.milliseconds(1_500)))
      #expect(try await cache.value(forKey: 1, orCompute: slow) == 1)  // refresh runs until 4.5
      try await clock.sleep(until: Self.at(.milliseconds(2_500)))  // expired
      #expect(try await cache.value(forKey: 1, orCompute: slow) == 101, "joined the refresh")
      #expect(clock.now.offset == .milliseconds(4_500))
      #expect(computations.current == 1)
      #expect(cache.info().misses == 0)
    }
  }

  @Test func evictionListenerGetsKeyValueAndReason() async throws {
    try await withVirtualTime { clock in
      let log = ChildLog()
      let cache = try AsyncLRUCache<Int, String>(
        maxSize: 2, expireAfter: .seconds(5), clock: clock,
        onEviction: { key, value, reason in log.append("\(key)=\(value) \(reason)") })
      cache.set("a", forKey: 1)
      cache.set("b", forKey: 2)
      cache.set("c", forKey: 3)  // capacity: 1 goes
      cache.set("B", forKey: 2)  // replacement
      cache.invalidate(3)  // invalidation
      try await clock.sleep(until: Self.at(.seconds(5)))
      #expect(try await cache.value(forKey: 2) { "fresh" } == "fresh")  // expiry noticed on access
      cache.clear()  // invalidation of what is left
      #expect(
        log.all == ["1=a capacity", "2=b replacement", "3=c invalidation", "2=B expiry", "2=fresh invalidation"])
    }
  }

  @Test func refreshReplacementIsReported() async throws {
    try await withVirtualTime { clock in
      let log = ChildLog()
      let cache = try AsyncLRUCache<Int, Int>(
        maxSize: 2, refreshAfter: .seconds(1), clock: clock,
        onEviction: { key, value, reason in log.append("\(key)=\(value) \(reason)") })
      cache.set(1, forKey: 1)
      try await clock.sleep(until: Self.at(.seconds(1)))
      #expect(try await cache.value(forKey: 1) { 2 } == 1)
      try await clock.sleep(for: .milliseconds(1))  // the refresh ran meanwhile
      #expect(cache.peek(1) == 2)
      #expect(log.all == ["1=1 replacement"])
    }
  }

  @Test func badRefreshArgumentsAreRejectedByName() {
    let zero = #expect(throws: AsyncToolsError.self) { _ = try AsyncLRUCache<Int, Int>(refreshAfter: .zero) }
    #expect(zero?.code == .invalidArgument)
    #expect(zero?.message.contains("refreshAfter") == true)
    let late = #expect(throws: AsyncToolsError.self) {
      _ = try AsyncLRUCache<Int, Int>(expireAfter: .seconds(1), refreshAfter: .seconds(1))
    }
    #expect(late?.message.contains("refreshAfter must be shorter than expireAfter") == true)
  }
}
