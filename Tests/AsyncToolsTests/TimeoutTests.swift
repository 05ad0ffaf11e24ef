import AsyncTools
import Testing

private typealias Gate = CancellationFixtures.Gate
private typealias Boom = CancellationFixtures.Boom
private typealias Recorder = CancellationFixtures.Recorder

private func suspendUntilCancelled() async throws { try await CancellationFixtures.suspendUntilCancelled() }

/// Long enough never to pass during a test: tests using it never wait for it.
private let never = Duration.seconds(3600)

@Suite("withTimeout and moveOnAfter")
struct TimeoutTests {
  // MARK: The body wins

  @Test func aBodyFinishingBeforeTheDeadlineReturnsItsValue() async throws {
    #expect(try await withTimeout(never) { 42 } == 42)
    #expect(try await moveOnAfter(never) { 43 } == 43)
  }

  @Test func aBodyErrorBeforeTheDeadlinePropagatesUnchanged() async throws {
    await #expect(throws: Boom(1)) { try await withTimeout(never) { throw Boom(1) } }
    await #expect(throws: Boom(2)) { try await moveOnAfter(never) { throw Boom(2) } }
  }

  @Test func aTimeoutErrorThrownByTheBodyItselfIsNotMistakenForTheTimeout() async throws {
    let own = TimeoutError(deadline: ContinuousClock.now, duration: .seconds(99))
    let error = await #expect(throws: TimeoutError.self) {
      try await withTimeout(never) { throw own }
    }
    #expect(error?.duration == .seconds(99), "the body's own TimeoutError comes out, not a new one")
    // aiotools' move_on_after swallows any TimeoutError; this one propagates it.
    await #expect(throws: TimeoutError.self) {
      _ = try await moveOnAfter(never) { throw own }
    }
  }

  @Test func aCancellationErrorTheBodyThrowsBeforeTheDeadlineIsNotATimeout() async throws {
    await #expect(throws: CancellationError.self) {
      try await withTimeout(never) { throw CancellationError() }
    }
  }

  // MARK: Deadline in the past (also zero and negative durations)

  @Test(arguments: [Duration.zero, .seconds(-5)])
  func aZeroOrNegativeDurationStartsTheBodyCancelledAndTimesOut(_ duration: Duration) async throws {
    let events = Recorder<String>()
    let error = await #expect(throws: TimeoutError.self) {
      try await withTimeout(duration) {
        events.record("body started, cancelled=\(Task.isCancelled)")
        try Task.checkCancellation()
        events.record("past the checkpoint")
      }
    }
    #expect(error?.duration == duration)
    #expect(events.all == ["body started, cancelled=true"])
  }

  @Test func aDeadlineInThePastTimesOut() async throws {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: .seconds(-1))
    let error = await #expect(throws: TimeoutError.self) {
      try await withTimeout(at: deadline, clock: clock) { try await suspendUntilCancelled() }
    }
    #expect(error?.deadline as? ContinuousClock.Instant == deadline)
    #expect(error?.duration == nil)
  }

  @Test func aBodyWithoutCheckpointsCompletesDespiteAPastDeadline() async throws {
    #expect(try await withTimeout(.zero) { 5 } == 5)
    #expect(try await moveOnAfter(.zero) { 6 } == 6)
  }

  @Test func moveOnAfterReturnsNilWhenTheDeadlineCutTheBodyShort() async throws {
    let value = try await moveOnAfter(.zero) { () async throws -> Int in
      try await suspendUntilCancelled()
      return 1
    }
    #expect(value == nil)
  }

  @Test func aRealErrorThrownAfterTheTimeoutFiredWins() async throws {
    await #expect(throws: Boom(3)) {
      try await withTimeout(.zero) {
        do { try await suspendUntilCancelled() } catch { throw Boom(3) }
      }
    }
    await #expect(throws: Boom(4)) {
      try await moveOnAfter(.zero) {
        do { try await suspendUntilCancelled() } catch { throw Boom(4) }
      }
    }
  }

  @Test func aValueReturnedAfterTheTimeoutFiredWins() async throws {
    let value = try await withTimeout(.zero) { () async -> Int in
      await CancellationFixtures.suspendUntilCancelledQuietly()
      return 8
    }
    #expect(value == 8)
  }

  // MARK: Outer cancellation

  @Test func cancellingTheCallerThrowsCancellationNotTimeout() async throws {
    let entered = Gate()
    let events = Recorder<String>()
    let caller = Task {
      try await withTimeout(never) {
        entered.open()
        do { try await suspendUntilCancelled() } catch {
          events.record("body cancelled")
          throw error
        }
      }
    }
    await entered.wait()
    caller.cancel()
    let result = await caller.result
    #expect(CancellationFixtures.isCancellation(result))
    #expect(events.all == ["body cancelled"])
  }

  @Test func cancellingTheCallerOfMoveOnAfterThrowsCancellationNotNil() async throws {
    let entered = Gate()
    let caller = Task {
      try await moveOnAfter(never) {
        entered.open()
        try await suspendUntilCancelled()
      }
    }
    await entered.wait()
    caller.cancel()
    #expect(CancellationFixtures.isCancellation(await caller.result))
  }

  @Test func aCallerCancelledBeforeAPastDeadlineGetsCancellationNotTimeout() async throws {
    let caller = Task {
      withUnsafeCurrentTask { $0?.cancel() }
      try await withTimeout(.zero) { try await suspendUntilCancelled() }
    }
    #expect(CancellationFixtures.isCancellation(await caller.result))
  }

  // MARK: Arguments, errors, isolation

  @Test func aNegativeToleranceIsAnInvalidArgument() async throws {
    let error = await #expect(throws: AsyncToolsError.self) {
      try await withTimeout(never, tolerance: .seconds(-1)) { 1 }
    }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains("tolerance") == true)
    let error2 = await #expect(throws: AsyncToolsError.self) {
      try await moveOnAfter(never, tolerance: .milliseconds(-1)) { 1 }
    }
    #expect(error2?.code == .invalidArgument)
    let clock = ContinuousClock()
    let error3 = await #expect(throws: AsyncToolsError.self) {
      try await withTimeout(at: clock.now, tolerance: .seconds(-2), clock: clock) { 1 }
    }
    #expect(error3?.code == .invalidArgument)
  }

  @Test func timeoutErrorDescribesTheDurationAndDeadline() {
    let withDuration = TimeoutError(deadline: ContinuousClock.now, duration: .seconds(3))
    #expect(withDuration.description.hasPrefix("timed out after 3.0 seconds (deadline "))
    let atDeadline = TimeoutError(deadline: SuspendingClock.now)
    #expect(atDeadline.description.hasPrefix("timed out at deadline "))
  }

  @Test func taskLocalValuesFlowIntoTheBody() async throws {
    let seen = try await TimeoutTestLocals.$tag.withValue("outer") {
      try await withTimeout(never) { TimeoutTestLocals.tag }
    }
    #expect(seen == "outer")
  }

  @Test @MainActor func aBodyWrittenOnTheMainActorRunsOnTheMainActor() async throws {
    let value = try await withTimeout(never) {
      MainActor.assertIsolated("the timeout keeps the caller's actor")
      return 1
    }
    #expect(value == 1)
  }
}

private enum TimeoutTestLocals {
  @TaskLocal static var tag = ""
}
