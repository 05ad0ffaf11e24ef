import AsyncTools
import AsyncToolsTestSupport
import AsyncToolsTesting
import Testing

@Suite("AsyncLRUCache")
struct AsyncLRUCacheTests {
  // MARK: - LRU order and eviction

  @Test func hitPromotesEntrySoEvictionFollowsRecencyLikeAiotoolsTest() async throws {
    // aiotools' test_lru_cache: maxsize 2; 1, 2, 1 (hit), 3 (evicts 2), 2 (miss), 2 (hit).
    let cache = try AsyncLRUCache<Int, Int>(maxSize: 2)
    let computations = FunctoolsCounter()
    for key in [1, 2, 1, 3, 2, 2] {
      let value = try await cache.value(forKey: key) {
        computations.increment()
        return key * 10
      }
      #expect(value == key * 10)
    }
    let info = cache.info()
    #expect(info.hits == 2)
    #expect(info.misses == 4)
    #expect(info.misses == computations.current)
    #expect(info.currentSize == 2)
    #expect(info.maxSize == 2)
    #expect(cache.contains(2) && cache.contains(3) && !cache.contains(1), "3 then 2 are the two most recent")
  }

  @Test func evictsTheLeastRecentlyUsedEntryNotTheOldest() async throws {
    let cache = try AsyncLRUCache<Int, String>(maxSize: 3)
    for key in 1...3 { _ = try await cache.value(forKey: key) { "\(key)" } }
    _ = try await cache.value(forKey: 1) { "recomputed" }  // hit: 1 becomes the most recent; 2 is now the LRU
    _ = try await cache.value(forKey: 4) { "4" }
    #expect(!cache.contains(2), "2 was least recently used")
    #expect(cache.contains(1) && cache.contains(3) && cache.contains(4))
    #expect(try await cache.value(forKey: 1) { "recomputed" } == "1", "1 was kept, not recomputed")
    #expect(cache.info().currentSize == 3)
  }

  @Test func evictionAfterManyPromotionsKeepsExactlyTheMostRecentKeys() async throws {
    let cache = try AsyncLRUCache<Int, Int>(maxSize: 4)
    var model: [Int] = []  // most recent last
    var generator = FunctoolsRandom(seed: 7)
    for _ in 0..<500 {
      let key = Int(generator.next() % 9)
      _ = try await cache.value(forKey: key) { key }
      model.removeAll { $0 == key }
      model.append(key)
      if model.count > 4 { model.removeFirst() }
    }
    for key in 0..<9 {
      #expect(cache.contains(key) == model.contains(key), "key \(key); expected the set \(model)")
    }
  }

  @Test func unboundedCacheNeverEvicts() async throws {
    let cache = try AsyncLRUCache<Int, Int>(maxSize: nil)
    for key in 0..<1_000 { _ = try await cache.value(forKey: key) { key } }
    let info = cache.info()
    #expect(info.currentSize == 1_000)
    #expect(info.maxSize == nil)
    #expect(cache.contains(0))
  }

  @Test func infoCountsHitsMissesSizeAndInFlight() async throws {
    let cache = try AsyncLRUCache<String, Int>(maxSize: 10)
    #expect(cache.info() == CacheInfo(hits: 0, misses: 0, maxSize: 10, currentSize: 0, inFlight: 0))
    _ = try await cache.value(forKey: "a") { 1 }
    _ = try await cache.value(forKey: "a") { 2 }
    _ = try await cache.value(forKey: "b") { 3 }
    #expect(cache.info() == CacheInfo(hits: 1, misses: 2, maxSize: 10, currentSize: 2, inFlight: 0))

    let gate = FunctoolsGate()
    let pending = Task {
      try await cache.value(forKey: "c") {
        await gate.wait(); return 4
      }
    }
    await functoolsEventually { cache.info().inFlight == 1 }
    #expect(cache.info().currentSize == 2, "a computation in flight takes no room")
    #expect(!cache.contains("c"), "a computation in flight is not contained")
    gate.open()
    #expect(try await pending.value == 4)
    #expect(cache.info() == CacheInfo(hits: 1, misses: 3, maxSize: 10, currentSize: 3, inFlight: 0))
  }

  @Test func clearEmptiesTheCacheAndResetsStatistics() async throws {
    let cache = try AsyncLRUCache<Int, Int>(maxSize: 10)
    for key in [1, 2, 1] { _ = try await cache.value(forKey: key) { key } }
    cache.clear()
    #expect(cache.info() == CacheInfo(hits: 0, misses: 0, maxSize: 10, currentSize: 0, inFlight: 0))
    #expect(!cache.contains(1))
    let computations = FunctoolsCounter()
    _ = try await cache.value(forKey: 1) { computations.increment() }
    #expect(computations.current == 1, "a cleared key is computed again")
  }

  @Test func invalidateRemovesOneStoredValue() async throws {
    let cache = try AsyncLRUCache<Int, Int>(maxSize: 10)
    _ = try await cache.value(forKey: 1) { 1 }
    _ = try await cache.value(forKey: 2) { 2 }
    #expect(cache.invalidate(1))
    #expect(!cache.invalidate(1), "nothing left to invalidate")
    #expect(!cache.contains(1) && cache.contains(2))
    #expect(try await cache.value(forKey: 1) { 10 } == 10)
  }

  @Test func containsDoesNotPromoteOrCount() async throws {
    let cache = try AsyncLRUCache<Int, Int>(maxSize: 2)
    _ = try await cache.value(forKey: 1) { 1 }
    _ = try await cache.value(forKey: 2) { 2 }
    #expect(cache.contains(1))
    _ = try await cache.value(forKey: 3) { 3 }
    #expect(!cache.contains(1), "contains(1) did not make 1 recent, so it was evicted")
    #expect(cache.info().hits == 0)
  }

  // MARK: - Errors

  @Test func errorsAreNotCached() async throws {
    let cache = try AsyncLRUCache<Int, Int>(maxSize: 10)
    let computations = FunctoolsCounter()
    await #expect(throws: FunctoolsTestError(id: 1)) {
      try await cache.value(forKey: 1) {
        computations.increment()
        throw FunctoolsTestError(id: 1)
      }
    }
    #expect(!cache.contains(1))
    let value = try await cache.value(forKey: 1) {
      computations.increment()
      return 7
    }
    #expect(value == 7)
    #expect(computations.current == 2, "the second call computed again")
    #expect(cache.info().misses == 2)
  }

  @Test func everyWaiterOfAFailedComputationGetsItsError() async throws {
    let cache = try AsyncLRUCache<Int, Int>(maxSize: 10)
    let gate = FunctoolsGate()
    let computations = FunctoolsCounter()
    let callers = (0..<5).map { _ in
      Task {
        try await cache.value(forKey: 1) {
          computations.increment()
          await gate.wait()
          throw FunctoolsTestError(id: 9)
        }
      }
    }
    await functoolsEventually { cache.info().hits + cache.info().misses == 5 }
    gate.open()
    for caller in callers {
      await #expect(throws: FunctoolsTestError(id: 9)) { try await caller.value }
    }
    #expect(computations.current == 1)
  }

  @Test func cancellationErrorThrownByTheComputationIsNotCached() async throws {
    let cache = try AsyncLRUCache<Int, Int>(maxSize: 10)
    await #expect(throws: CancellationError.self) {
      try await cache.value(forKey: 1) { throw CancellationError() }
    }
    #expect(try await cache.value(forKey: 1) { 5 } == 5)
  }

  // MARK: - Bad input

  @Test(arguments: [0, -1, Int.min])
  func nonPositiveMaxSizeIsRejected(maxSize: Int) throws {
    let error = #expect(throws: AsyncToolsError.self) { try AsyncLRUCache<Int, Int>(maxSize: maxSize) }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains("maxSize") == true)
  }

  @Test(arguments: [Duration.zero, .seconds(-1)])
  func nonPositiveExpireAfterIsRejected(expireAfter: Duration) throws {
    let error = #expect(throws: AsyncToolsError.self) {
      try AsyncLRUCache<Int, Int>(maxSize: 10, expireAfter: expireAfter)
    }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains("expireAfter") == true)
  }
}

@Suite("AsyncLRUCache key-passing closure")
struct AsyncLRUCacheKeyClosureTests {
  @Test func keyPassingClosureGetsTheKeyAndSharesTheCache() async throws {
    let cache = try AsyncLRUCache<Int, Int>(maxSize: 10)
    #expect(try await cache.value(forKey: 4) { key in key * 10 } == 40)
    #expect(try await cache.value(forKey: 4) { 0 } == 40, "both forms hit the same entry")
    #expect(try await cache.value(forKey: 5) { $0 + 1 } == 6)
    #expect(cache.info().hits == 1)
    #expect(cache.info().misses == 2)
  }
}

@Suite("AsyncLRUCache closure without parameters: created only past a hit")
struct AsyncLRUCacheDeferredClosureTests {
  /// Counts how often the closure expression is evaluated, and returns a closure that computes `value`.
  private static func compute(_ value: Int, counting made: TestCounter) -> @Sendable () async throws -> Int {
    _ = made.increment()
    return { value }
  }

  @Test func aHitDoesNotEvaluateTheClosureExpressionAMissDoesOnce() async throws {
    // The closure is an autoclosure of the closure you write: on a hit it is never formed, so a capturing closure's
    // context is not allocated (issue #16 item 7). An expression that produces the closure shows it.
    let cache = try AsyncLRUCache<Int, Int>(maxSize: 10)
    let made = TestCounter()
    #expect(try await cache.value(forKey: 1, orCompute: Self.compute(10, counting: made)) == 10)
    #expect(made.value == 1, "a miss forms the closure once")
    for _ in 0..<3 {
      #expect(try await cache.value(forKey: 1, orCompute: Self.compute(99, counting: made)) == 10)
    }
    #expect(made.value == 1, "hits form no closure")
    #expect(cache.info().hits == 3)
  }

  @Test func everySpellingOfTheClosureStillWorks() async throws {
    let cache = try AsyncLRUCache<String, Int>(maxSize: 10)
    let offset = 5
    let named: @Sendable () async throws -> Int = { 3 }
    #expect(try await cache.value(forKey: "trailing") { offset + 1 } == 6)
    #expect(try await cache.value(forKey: "labelled", orCompute: { offset + 2 }) == 7)
    #expect(try await cache.value(forKey: "value", orCompute: named) == 3)
    #expect(try await cache.value(forKey: "trailing") { 0 } == 6, "a hit")
  }

  @Test func aCacheWithRefreshAheadStillRefreshesWithTheCallersClosure() async throws {
    try await withVirtualTime { clock in
      let cache = try AsyncLRUCache<Int, Int>(
        maxSize: 10, expireAfter: .seconds(60), refreshAfter: .seconds(10), clock: clock)
      let made = TestCounter()
      #expect(try await cache.value(forKey: 1, orCompute: Self.compute(1, counting: made)) == 1)
      try await clock.sleep(for: .seconds(11))
      // Due for a refresh: the stale value comes back at once and the refresh runs this caller's closure.
      #expect(try await cache.value(forKey: 1, orCompute: Self.compute(2, counting: made)) == 1)
      try await clock.sleep(for: .seconds(1))  // virtual time moves once the refresh task has ended
      #expect(try await cache.value(forKey: 1, orCompute: Self.compute(3, counting: made)) == 2)
      #expect(cache.info().refreshes == 1)
      #expect(made.value == 3, "a refresh-ahead hit forms the closure: it may start the refresh")
    }
  }
}
