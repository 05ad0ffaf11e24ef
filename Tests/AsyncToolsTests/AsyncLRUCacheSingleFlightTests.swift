import AsyncTools
import Testing

@Suite("AsyncLRUCache single flight")
struct AsyncLRUCacheSingleFlightTests {
  @Test func tenThousandConcurrentCallersRunTheComputationExactlyOnce() async throws {
    let cache = try AsyncLRUCache<String, Int>(maxSize: 10)
    let computations = FunctoolsCounter()
    let gate = FunctoolsGate()
    let callers = 10_000
    let results = try await withThrowingTaskGroup(of: Int.self) { group in
      for _ in 0..<callers {
        group.addTask {
          try await cache.value(forKey: "key") {
            computations.increment()
            await gate.wait()  // hold the computation until every caller has arrived
            return 42
          }
        }
      }
      await functoolsEventually { cache.info().hits + cache.info().misses == callers }
      #expect(cache.info().inFlight == 1)
      gate.open()
      var results: [Int] = []
      for try await value in group { results.append(value) }
      return results
    }
    #expect(computations.current == 1)
    #expect(results.count == callers && results.allSatisfy { $0 == 42 })
    #expect(cache.info() == CacheInfo(hits: callers - 1, misses: 1, maxSize: 10, currentSize: 1, inFlight: 0))
  }

  @Test func concurrentMissesOnDifferentKeysRunIndependently() async throws {
    let cache = try AsyncLRUCache<Int, Int>(maxSize: 10)
    let gates = (0..<3).map { _ in FunctoolsGate() }
    let callers = (0..<3).map { key in
      Task {
        try await cache.value(forKey: key) {
          await gates[key].wait(); return key
        }
      }
    }
    await functoolsEventually { cache.info().inFlight == 3 }
    gates[2].open()
    #expect(try await callers[2].value == 2, "key 2 does not wait for keys 0 and 1")
    gates[0].open()
    gates[1].open()
    #expect(try await callers[0].value == 0)
    #expect(try await callers[1].value == 1)
  }

  @Test func oneCancelledWaiterLeavesAtOnceWhileTheWorkGoesOnForTheOthers() async throws {
    let cache = try AsyncLRUCache<Int, String>(maxSize: 10)
    let gate = FunctoolsGate()
    let workCancelled = FunctoolsFlag()
    let work: @Sendable () async throws -> String = {
      if await gate.waitOrCancel() { workCancelled.set() }
      return "value"
    }
    let first = Task { try await cache.value(forKey: 1, orCompute: work) }
    let second = Task { try await cache.value(forKey: 1, orCompute: work) }
    await functoolsEventually { cache.info().hits + cache.info().misses == 2 }

    first.cancel()
    // The gate is still closed: the cancelled waiter returns without the computation having ended.
    await #expect(throws: CancellationError.self) { try await first.value }
    #expect(!workCancelled.isSet, "the work others still wait for is not cancelled")
    #expect(cache.info().inFlight == 1)

    gate.open()
    #expect(try await second.value == "value")
    #expect(!workCancelled.isSet)
    #expect(cache.contains(1), "the result is stored even though its first caller left")
  }

  @Test func cancellingEveryWaiterCancelsTheWorkAndTheLastWaitsForItToEnd() async throws {
    let cache = try AsyncLRUCache<Int, String>(maxSize: 10)
    let gate = FunctoolsGate()
    let workCancelled = FunctoolsFlag()
    let workEnded = FunctoolsFlag()
    let computations = FunctoolsCounter()
    let work: @Sendable () async throws -> String = {
      computations.increment()
      defer { workEnded.set() }
      if await gate.waitOrCancel() {
        workCancelled.set()
        throw CancellationError()
      }
      return "value"
    }
    let first = Task { try await cache.value(forKey: 1, orCompute: work) }
    let second = Task { try await cache.value(forKey: 1, orCompute: work) }
    await functoolsEventually { cache.info().hits + cache.info().misses == 2 }

    first.cancel()
    await #expect(throws: CancellationError.self) { try await first.value }
    #expect(!workCancelled.isSet)
    second.cancel()
    await #expect(throws: CancellationError.self) { try await second.value }
    #expect(workCancelled.isSet, "the last waiter's cancellation cancelled the work")
    #expect(workEnded.isSet, "the last waiter returned only after the work ended")
    #expect(!cache.contains(1))
    #expect(cache.info().inFlight == 0, "the abandoned computation was removed")

    let again = try await cache.value(forKey: 1) { "fresh" }
    #expect(again == "fresh", "a new caller starts a new computation")
    #expect(computations.current == 1)
  }

  @Test func abandonedWorkThatFinishesAnywayIsNotStored() async throws {
    let cache = try AsyncLRUCache<Int, String>(maxSize: 10)
    let gate = FunctoolsGate()
    let caller = Task {
      try await cache.value(forKey: 1) {
        _ = await gate.waitOrCancel()
        return "ignored cancellation"  // a computation that does not honour cancellation
      }
    }
    await functoolsEventually { cache.info().inFlight == 1 }
    caller.cancel()
    await #expect(throws: CancellationError.self) { try await caller.value }
    #expect(!cache.contains(1), "the outcome of an abandoned computation is discarded")
  }

  @Test func aCallerCancelledBeforeItsMissStartsNoComputation() async throws {
    let cache = try AsyncLRUCache<Int, Int>(maxSize: 10)
    _ = try await cache.value(forKey: 1) { 1 }
    let computations = FunctoolsCounter()
    let gate = FunctoolsGate()
    let caller = Task {
      await gate.wait()
      let hit = try await cache.value(forKey: 1) { computations.increment() }
      let miss: Result<Int, any Error>
      do {
        miss = .success(try await cache.value(forKey: 2) { computations.increment() })
      } catch {
        miss = .failure(error)
      }
      return (hit, miss)
    }
    caller.cancel()
    gate.open()
    let (hit, miss) = try await caller.value
    #expect(hit == 1, "a hit is served even to a cancelled caller: it does not wait")
    #expect(throws: CancellationError.self) { try miss.get() }
    #expect(computations.current == 0)
    #expect(cache.info().misses == 1)
  }

  @Test func invalidateDuringComputationDeliversToCurrentWaitersButStoresNothing() async throws {
    let cache = try AsyncLRUCache<Int, String>(maxSize: 10)
    let oldGate = FunctoolsGate()
    let newGate = FunctoolsGate()
    let old = Task {
      try await cache.value(forKey: 1) {
        await oldGate.wait(); return "old"
      }
    }
    await functoolsEventually { cache.info().inFlight == 1 }

    #expect(cache.invalidate(1), "a computation in flight counts as something to invalidate")
    #expect(cache.info().inFlight == 0)
    let new = Task {
      try await cache.value(forKey: 1) {
        await newGate.wait(); return "new"
      }
    }
    await functoolsEventually { cache.info().inFlight == 1 }
    #expect(cache.info().misses == 2, "a caller after the invalidation starts a new computation")

    oldGate.open()
    #expect(try await old.value == "old", "the waiter from before the invalidation still gets its result")
    #expect(!cache.contains(1), "the invalidated result is not stored")
    newGate.open()
    #expect(try await new.value == "new")
    #expect(try await cache.value(forKey: 1) { "recomputed" } == "new")
  }

  @Test func clearDuringComputationDetachesIt() async throws {
    let cache = try AsyncLRUCache<Int, String>(maxSize: 10)
    let gate = FunctoolsGate()
    let caller = Task {
      try await cache.value(forKey: 1) {
        await gate.wait(); return "old"
      }
    }
    await functoolsEventually { cache.info().inFlight == 1 }
    cache.clear()
    #expect(cache.info() == CacheInfo(hits: 0, misses: 0, maxSize: 10, currentSize: 0, inFlight: 0))
    gate.open()
    #expect(try await caller.value == "old")
    #expect(!cache.contains(1))
  }

  @Test func computationDoesNotInheritTheFirstCallersCancellation() async throws {
    let cache = try AsyncLRUCache<Int, Bool>(maxSize: 10)
    let gate = FunctoolsGate()
    let first = Task {
      try await cache.value(forKey: 1) {
        await gate.wait(); return Task.isCancelled
      }
    }
    await functoolsEventually { cache.info().misses == 1 }
    let second = Task { try await cache.value(forKey: 1) { true } }
    await functoolsEventually { cache.info().hits == 1 }
    first.cancel()
    _ = await first.result
    gate.open()
    #expect(try await second.value == false, "the work ran in its own task, which nobody cancelled")
  }
}
