import AsyncTools
import AsyncToolsTestSupport
import Testing

@Suite("withAsCompletedSafe")
struct AsCompletedSafeTests {
  @Test func outcomesArriveInCompletionOrder() async {
    let gates = (0..<4).map { _ in PtgGate() }
    let order: [Int] = await withAsCompletedSafe(
      (0..<4).map { i in
        { @Sendable in
          try await gates[i].wait()
          return i
        }
      }
    ) { results in
      var order: [Int] = []
      // Release one operation at a time, in the order 2, 0, 3, 1.
      var iterator = results.makeAsyncIterator()
      for i in [2, 0, 3, 1] {
        gates[i].open()
        if case .success(let value)? = await iterator.next() { order.append(value) }
      }
      #expect(await iterator.next() == nil)
      return order
    }
    #expect(order == [2, 0, 3, 1])
  }

  @Test func failuresAreElementsAndDoNotEndTheLoop() async {
    var successes = 0
    var failures = 0
    let operations: [@Sendable () async throws -> Int] = [{ 1 }, { throw PtgFailure(2) }, { 3 }]
    await withAsCompletedSafe(operations) { results in
      for await result in results {
        switch result {
        case .success: successes += 1
        case .failure: failures += 1
        }
      }
    }
    #expect(successes == 2)
    #expect(failures == 1)
  }

  @Test func breakingAfterTheFirstElementCancelsAndAwaitsTheRest() async {
    let cleanedUp = PtgCounter()
    let started = PtgEvents()
    let slow: @Sendable () async throws -> Int = {
      started.signal()
      do {
        try await PtgGate().wait()
      } catch {
        await Task.detached { for _ in 0..<50 { await Task.yield() } }.value  // async cleanup
        cleanedUp.increment()
        throw error
      }
      return 0
    }
    let fast: @Sendable () async throws -> Int = {
      await started.wait(for: 3)
      return 42
    }
    let first: Int? = await withAsCompletedSafe([slow, slow, slow, fast]) { results in
      for await result in results {
        return try? result.get()
      }
      return nil
    }
    #expect(first == 42)
    #expect(cleanedUp.count == 3, "the scope returned before the remaining operations' cleanups finished")
  }

  @Test func throwingFromTheBodyCancelsAwaitsAndRethrows() async {
    let ended = PtgCounter()
    await #expect(throws: PtgFailure(9)) {
      let operations: [@Sendable () async throws -> Int] = [
        {
          defer { ended.increment() }
          try await PtgGate().wait()
          return 0
        },
        { 1 },
      ]
      try await withAsCompletedSafe(operations) { results in
        for await _ in results { throw PtgFailure(9) }
      }
    }
    #expect(ended.count == 1)
  }

  @Test func callerCancellationCancelsAndAwaitsTheOperations() async {
    let started = PtgEvents()
    let ended = PtgCounter()
    let task = Task {
      await withAsCompletedSafe(
        (0..<3).map { _ in
          { @Sendable in
            started.signal()
            defer { ended.increment() }
            try await PtgGate().wait()
          }
        }
      ) { results in
        var count = 0
        for await _ in results { count += 1 }
        return count
      }
    }
    await started.wait(for: 3)
    task.cancel()
    _ = await task.value
    #expect(ended.count == 3)
  }

  /// The sequence escapes `body` unread while every outcome is buffered: it must yield nothing after the scope.
  @Test func theSequenceIsEmptyOnceTheScopeHasEnded() async {
    let operations: [@Sendable () async throws -> Int] = [{ 1 }, { 2 }, { 3 }]
    let escaped = await withAsCompletedSafe(operations) { results in results }
    var iterator = escaped.makeAsyncIterator()
    let first = await iterator.next()
    #expect(first == nil, "an escaped sequence yielded \(String(describing: first)) after its scope ended")
  }

  @Test func anIteratorThatEscapedHalfReadYieldsNothingMoreOnceTheScopeHasEnded() async {
    let operations: [@Sendable () async throws -> Int] = [{ 1 }, { 2 }, { 3 }]
    var iterator = await withAsCompletedSafe(operations) { results in
      var iterator = results.makeAsyncIterator()
      _ = await iterator.next()
      return iterator
    }
    let next = await iterator.next()
    #expect(next == nil, "an escaped iterator yielded \(String(describing: next)) after its scope ended")
  }

  @Test func outcomesTheBodyDidNotReadAreFreedWhenTheScopeEnds() async {
    let freed = TestCounter()
    let escaped = await withAsCompletedSafe(
      (0..<3).map { _ in { @Sendable in DeinitCounted(freed) } }
    ) { results in results }
    withExtendedLifetime(escaped) {
      #expect(freed.value == 3, "unread outcomes are still held after the scope ended")
    }
  }
}
