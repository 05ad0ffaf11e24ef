import AsyncTools
import AsyncToolsTesting
import Testing

@Suite("race")
struct RaceTests {
  @Test func theFirstSuccessWinsAndTheLosersAreCancelled() async throws {
    let loserCancelled = PtgCounter()
    // The array form, as used with a computed list; literal closures in an array literal need
    // the element type spelled out (or use the variadic form).
    let operations: [@Sendable () async throws -> Int] = [
      {
        do { try await PtgGate().wait() } catch { loserCancelled.increment() }
        return 1
      },
      { 2 },
    ]
    let value = try await race(operations)
    #expect(value == 2)
    #expect(loserCancelled.count == 1)
  }

  @Test func raceReturnsOnlyAfterTheLosersCleanupFinished() async throws {
    let loserStarted = PtgEvents()
    let cleanupDone = PtgCounter()
    let value = try await race(
      {
        do {
          loserStarted.signal()
          try await PtgGate().wait()
        } catch {
          // A slow async cleanup that cancellation cannot cut short.
          await Task.detached {
            for _ in 0..<100 { await Task.yield() }
          }.value
          cleanupDone.increment()
        }
        return 0
      },
      {
        await loserStarted.wait(for: 1)
        return 1
      }
    )
    #expect(value == 1)
    #expect(cleanupDone.count == 1, "race returned before the loser's cleanup finished")
  }

  @Test func withoutContinueOnErrorTheFirstFailureIsRethrownAfterTheOthersEnded() async throws {
    let otherEnded = PtgCounter()
    await #expect(throws: PtgFailure(1)) {
      try await race(
        {
          defer { otherEnded.increment() }
          try await PtgGate().wait()
          return 0
        },
        { () async throws -> Int in throw PtgFailure(1) }
      )
    }
    #expect(otherEnded.count == 1)
  }

  @Test func continueOnErrorSkipsFailuresUntilASuccess() async throws {
    let failed = PtgEvents()
    let value = try await race(
      continueOnError: true,
        { () async throws -> Int in
          defer { failed.signal() }
          throw PtgFailure(1)
        },
        {
          await failed.wait(for: 1)
          return 2
        },
      )
    #expect(value == 2)
  }

  @Test func continueOnErrorWhenAllFailThrowsAnErrorGroupOfEveryFailure() async throws {
    // The exact order is pinned in virtual time by allFailuresAreGroupedInTheOrderTheOperationsEnded.
    let step = PtgEvents()
    let error = await #expect(throws: ErrorGroup.self) {
      try await race(
        continueOnError: true,
          { () async throws -> Int in
            await step.wait(for: 1)
            defer { step.signal() }
            throw PtgFailure(0)
          },
          {
            await step.wait(for: 2)
            throw PtgFailure(1)
          },
          {
            defer { step.signal() }
            throw PtgFailure(2)
          },
        )
    }
    #expect(error?.errors.count == 3)
    #expect(Set(error?.errors(ofType: PtgFailure.self).map(\.id) ?? []) == [0, 1, 2])
  }

  @Test func allFailuresAreGroupedInTheOrderTheOperationsEnded() async throws {
    try await withVirtualTime { clock in
      let failAfter: @Sendable (Int, Int) -> @Sendable () async throws -> Int = { id, seconds in
        {
          try await clock.sleep(for: .seconds(seconds))
          throw PtgFailure(id)
        }
      }
      let error = await #expect(throws: ErrorGroup.self) {
        try await race([failAfter(0, 3), failAfter(1, 1), failAfter(2, 2)], continueOnError: true)
      }
      #expect(error?.errors.map { ($0 as? PtgFailure)?.id } == [1, 2, 0])
      #expect(clock.now.offset == .seconds(3))
    }
  }

  @Test func theWinnerWaitsForTheLosersTimedCleanup() async throws {
    try await withVirtualTime { clock in
      let value = try await race(
        {
          do {
            try await clock.sleep(for: .seconds(100))
          } catch {
            await Task.detached { try? await clock.sleep(for: .seconds(2)) }.value
          }
          return 0
        },
        {
          try await clock.sleep(for: .seconds(1))
          return 1
        }
      )
      #expect(value == 1)
      #expect(clock.now.offset == .seconds(3), "race returned at \(clock.now), before the loser's 2 s cleanup")
    }
  }

  @Test func aChildsOwnCancellationErrorIsAnOrdinaryFailureWithContinueOnError() async throws {
    let gaveUp = PtgEvents()
    let value = try await race(
      continueOnError: true,
        { () async throws -> Int in
          defer { gaveUp.signal() }
          throw CancellationError()
        },
        {
          await gaveUp.wait(for: 1)
          return 7
        },
      )
    #expect(value == 7)
  }

  @Test func aChildsOwnCancellationErrorIsRethrownWithoutContinueOnError() async throws {
    await #expect(throws: CancellationError.self) {
      try await race({ () async throws -> Int in throw CancellationError() }, { try await PtgGate().wait(); return 1 })
    }
  }

  @Test func callerCancellationThrowsCancellationErrorNotAnErrorGroup() async throws {
    let started = PtgEvents()
    let task = Task {
      try await race(
        continueOnError: true,
          {
            started.signal()
            try await PtgGate().wait()
            return 1
          },
          {
            started.signal()
            try await PtgGate().wait()
            return 2
          },
        )
    }
    await started.wait(for: 2)
    task.cancel()
    await #expect(throws: CancellationError.self) { try await task.value }
  }

  @Test func raceCollectingErrorsReturnsTheFailuresBeforeTheWinner() async throws {
    // Virtual time orders the endings: a signal sent from the failing operation's `defer` would
    // reach the winner before that operation has ended, and the winner could end first.
    try await withVirtualTime { clock in
      let operations: [@Sendable () async throws -> String] = [
        {
          try await clock.sleep(for: .seconds(1))
          throw PtgFailure(1)
        },
        {
          try await clock.sleep(for: .seconds(2))
          return "won"
        },
        {
          try await clock.sleep(for: .seconds(3))
          throw PtgFailure(3)
        },
      ]
      let (value, errors) = try await raceCollectingErrors(operations)
      #expect(value == "won")
      #expect(errors.map { ($0 as? PtgFailure)?.id } == [1])
      #expect(clock.now.offset == .seconds(2))
    }
  }

  @Test func variadicFormRacesItsArguments() async throws {
    let value = try await race({ 1 }, { try await PtgGate().wait(); return 2 })
    #expect(value == 1)
  }

  @Test func anEmptyListIsAnInvalidArgument() async {
    let operations: [@Sendable () async throws -> Int] = []
    let error = await #expect(throws: AsyncToolsError.self) { try await race(operations) }
    #expect(error?.code == .invalidArgument)
  }
}
