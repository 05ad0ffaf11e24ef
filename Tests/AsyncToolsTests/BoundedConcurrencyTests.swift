import AsyncTools
import Testing

@Suite("Bounded concurrency")
struct BoundedConcurrencyTests {
  /// Tracks how many operations run at once and the highest that number reached.
  final class Occupancy: Sendable {
    private let state = Locked((current: 0, peak: 0))
    func enter() {
      state.withLock {
        $0.current += 1; $0.peak = max($0.peak, $0.current)
      }
    }
    func leave() { state.withLock { $0.current -= 1 } }
    var peak: Int { state.withLock { $0.peak } }
  }

  @Test func concurrentMapKeepsInputOrder() async throws {
    // Later elements finish first (they yield less), yet results come back in input order.
    let results = try await Array(0..<50).concurrentMap(maxConcurrency: 8) { value in
      for _ in 0..<(50 - value) { await Task.yield() }
      return value * 2
    }
    #expect(results == (0..<50).map { $0 * 2 })
  }

  @Test func concurrentMapNeverRunsMoreThanMaxConcurrencyAndReachesIt() async throws {
    let occupancy = Occupancy()
    let gate = FunctoolsGate()
    let started = FunctoolsCounter()
    async let results = Array(0..<40).concurrentMap(maxConcurrency: 3) { value in
      occupancy.enter()
      defer { occupancy.leave() }
      if started.increment() <= 3 { await gate.wait() }  // hold the first three so the bound is reached
      return value
    }
    await functoolsEventually { started.current == 3 }
    #expect(started.current == 3, "no fourth operation starts while three are in flight")
    gate.open()
    #expect(try await results == Array(0..<40))
    #expect(occupancy.peak == 3)
  }

  @Test func unorderedConcurrentMapReturnsCompletionOrder() async throws {
    let gates = (0..<3).map { _ in FunctoolsGate() }
    let finished = FunctoolsCounter()
    async let results = [0, 1, 2].concurrentMap(maxConcurrency: 3, ordered: false) { index in
      await gates[index].wait()
      finished.increment()
      return index
    }
    for index in [2, 0, 1] {
      let before = finished.current
      gates[index].open()
      await functoolsEventually { finished.current == before + 1 }
    }
    #expect(try await results == [2, 0, 1])
  }

  @Test func firstErrorCancelsTheRestAndIsRethrown() async throws {
    let cancelled = FunctoolsCounter()
    let started = FunctoolsCounter()
    await #expect(throws: FunctoolsTestError(id: 3)) {
      _ = try await Array(0..<100).concurrentMap(maxConcurrency: 4) { value -> Int in
        started.increment()
        if value == 3 { throw FunctoolsTestError(id: 3) }
        let gate = FunctoolsGate()
        if await gate.waitOrCancel() { cancelled.increment() }  // waits until cancelled
        return value
      }
    }
    #expect(started.current == 4, "no element was started after the error")
    #expect(cancelled.current == 3, "the three in flight were cancelled and awaited")
  }

  @Test func emptySequenceGivesEmptyResult() async throws {
    let results = try await [Int]().concurrentMap(maxConcurrency: 2) { $0 }
    #expect(results.isEmpty)
  }

  @Test func concurrentForEachVisitsEveryElementWithinTheBound() async throws {
    let occupancy = Occupancy()
    let sum = Locked(0)
    try await (1...100).concurrentForEach(maxConcurrency: 5) { value in
      occupancy.enter()
      defer { occupancy.leave() }
      await Task.yield()
      sum.withLock { $0 += value }
    }
    #expect(sum.withLock { $0 } == 5050)
    #expect(occupancy.peak <= 5)
  }

  @Test func concurrentForEachRethrowsTheFirstError() async {
    await #expect(throws: FunctoolsTestError(id: 7)) {
      try await (0..<10).concurrentForEach(maxConcurrency: 2) { value in
        if value == 7 { throw FunctoolsTestError(id: 7) }
      }
    }
  }

  @Test func cancellingTheCallerCancelsTheOperationsInFlight() async throws {
    let started = FunctoolsCounter()
    let cancelled = FunctoolsCounter()
    let caller = Task {
      try await Array(0..<10).concurrentMap(maxConcurrency: 2) { value -> Int in
        started.increment()
        if await FunctoolsGate().waitOrCancel() { cancelled.increment() }
        return value
      }
    }
    await functoolsEventually { started.current == 2 }
    caller.cancel()
    await #expect(throws: CancellationError.self) { try await caller.value }
    #expect(cancelled.current == 2)
    #expect(started.current == 2, "nothing new started after the cancellation")
  }

  @Test(arguments: [0, -1])
  func nonPositiveMaxConcurrencyIsRejected(maxConcurrency: Int) async {
    let mapError = await #expect(throws: AsyncToolsError.self) {
      _ = try await [1].concurrentMap(maxConcurrency: maxConcurrency) { $0 }
    }
    #expect(mapError?.code == .invalidArgument)
    let forEachError = await #expect(throws: AsyncToolsError.self) {
      try await [1].concurrentForEach(maxConcurrency: maxConcurrency) { _ in }
    }
    #expect(forEachError?.code == .invalidArgument)
  }
}
