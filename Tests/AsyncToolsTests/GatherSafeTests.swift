import AsyncTools
import Testing

@Suite("gatherSafe")
struct GatherSafeTests {
  @Test func resultsComeBackInInputOrderWhateverTheCompletionOrder() async {
    // Operation i finishes only after operation i + 1 did: completion order is the reverse.
    let count = 6
    let done = (0...count).map { _ in PtgGate() }
    done[count].open()
    let results = await gatherSafe(
      (0..<count).map { i in
        { @Sendable in
          try await done[i + 1].wait()
          done[i].open()
          return i
        }
      })
    #expect(results.map { try? $0.get() } == Array(0..<count))
  }

  @Test func failuresStayInPlaceAndDoNotDisturbTheOthers() async throws {
    let results = await gatherSafe(
      { 1 },
      { throw PtgFailure(2) },
      { 3 }
    )
    #expect(try results[0].get() == 1)
    #expect(throws: PtgFailure(2)) { try results[1].get() }
    #expect(try results[2].get() == 3)
  }

  @Test func outerCancellationCancelsTheRestWaitsForThemAndReturnsWhatFinished() async throws {
    let started = PtgEvents()
    let cleanedUp = PtgCounter()
    let task = Task {
      await gatherSafe(
        { 0 },
        {
          started.signal()
          defer { cleanedUp.increment() }
          try await PtgGate().wait()
          return 1
        },
        {
          started.signal()
          defer { cleanedUp.increment() }
          try await PtgGate().wait()
          return 2
        }
      )
    }
    await started.wait(for: 2)
    task.cancel()
    let results = await task.value
    #expect(cleanedUp.count == 2, "gatherSafe returned before the cancelled operations ended")
    #expect(try results[0].get() == 0)
    #expect(throws: CancellationError.self) { try results[1].get() }
    #expect(throws: CancellationError.self) { try results[2].get() }
  }

  @Test func operationsAreNotStartedWhenTheCallerIsAlreadyCancelled() async {
    let ran = PtgCounter()
    let gate = PtgGate()
    let task = Task {
      try? await gate.wait()  // returns by cancellation
      return await gatherSafe({ ran.increment() }, { ran.increment() })
    }
    task.cancel()
    let results = await task.value
    #expect(ran.count == 0)
    #expect(results.count == 2)
    for result in results {
      #expect(throws: CancellationError.self) { try result.get() }
    }
  }

  @Test func anEmptyListGivesAnEmptyArray() async {
    let operations: [@Sendable () async throws -> Int] = []
    #expect(await gatherSafe(operations).isEmpty)
  }

  @Test func variadicFormGathersItsArguments() async {
    let results = await gatherSafe({ "a" }, { "b" })
    #expect(results.map { try? $0.get() } == ["a", "b"])
  }
}
