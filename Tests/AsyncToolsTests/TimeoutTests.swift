import AsyncTools
import AsyncToolsTestSupport
import AsyncToolsTesting
import Testing

private typealias Gate = CancellationFixtures.Gate
private typealias Boom = CancellationFixtures.Boom
private typealias Recorder = CancellationFixtures.Recorder

private func suspendUntilCancelled() async throws { try await CancellationFixtures.suspendUntilCancelled() }

/// A clock that records every deadline its sleepers ask for and opens `armed` at the first: a test sees how far
/// away a timeout's timer sleeps, and when it is armed.
private struct ArmingClock<Base: Clock>: Clock where Base.Duration == Duration {
  let base: Base
  let armed = TestGate()
  let deadlines = TestLog<Base.Instant>()
  var now: Base.Instant { base.now }
  var minimumResolution: Duration { base.minimumResolution }
  func sleep(until deadline: Base.Instant, tolerance: Duration?) async throws {
    deadlines.append(deadline)
    armed.open()
    try await base.sleep(until: deadline, tolerance: tolerance)
  }
}

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

  /// A huge duration must not overflow into a deadline in the past (the body would start cancelled) or a near one
  /// (the timer would fire): the body waits at a cancellation point until the timer is armed and must not be
  /// cancelled, and the timer's first sleep must aim far away.
  @Test func aHugeDurationMeansEffectivelyNoTimeout() async throws {
    let continuous = ArmingClock(base: ContinuousClock())
    let start = continuous.now
    let cancelled = try await withTimeout(.seconds(Int64.max), clock: continuous) {
      try await continuous.armed.waitUnlessCancelled()
      await Task.yield()
      return Task.isCancelled
    }
    #expect(cancelled == false)
    #expect(continuous.deadlines.all.allSatisfy { $0 > start.advanced(by: .seconds(365 * 86_400)) })

    let suspending = ArmingClock(base: SuspendingClock())
    let moved = try await moveOnAfter(.seconds(Int64.max), clock: suspending) {
      try await suspending.armed.waitUnlessCancelled()
      await Task.yield()
      return Task.isCancelled
    }
    #expect(moved == false, "nil: the huge timeout fired; true: the body was cancelled")
  }

  /// In virtual time the timer really runs: a body sleeping a billion seconds is not cut short.
  @Test func aHugeDurationDoesNotCutShortABodyThatSleepsABillionVirtualSeconds() async throws {
    let (cancelled, end) = try await withVirtualTime { clock in
      let cancelled = try await withTimeout(.seconds(Int64.max), clock: clock) {
        try await clock.sleep(for: .seconds(1_000_000_000))
        return Task.isCancelled
      }
      return (cancelled, clock.now.offset)
    }
    #expect(cancelled == false)
    #expect(end == .seconds(1_000_000_000))
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

// MARK: - Virtual time

@Suite("withTimeout and moveOnAfter in virtual time")
struct TimeoutVirtualTimeTests {
  @Test func theTimeoutFiresAtTheExactDeadline() async throws {
    try await withVirtualTime { clock in
      let error = await #expect(throws: TimeoutError.self) {
        try await withTimeout(.seconds(3), clock: clock) { try await clock.sleep(for: .seconds(10)) }
      }
      #expect(clock.now.offset == .seconds(3))
      #expect(error?.duration == .seconds(3))
      #expect((error?.deadline as? VirtualClock.Instant)?.offset == .seconds(3))
      #expect(error?.description == "timed out after 3.0 seconds (deadline +3.0 seconds)")
    }
  }

  @Test func aBodyFinishingBeforeTheDeadlineDoesNotWaitForIt() async throws {
    try await withVirtualTime { clock in
      let value = try await withTimeout(.seconds(3), clock: clock) {
        try await clock.sleep(for: .seconds(2))
        return "done"
      }
      #expect(value == "done")
      #expect(clock.now.offset == .seconds(2), "the cancelled timer must not keep time running")
    }
  }

  @Test func withTimeoutAtFiresAtTheGivenInstant() async throws {
    try await withVirtualTime { clock in
      let deadline = clock.now.advanced(by: .seconds(4))
      let error = await #expect(throws: TimeoutError.self) {
        try await withTimeout(at: deadline, clock: clock) { try await clock.sleep(for: .seconds(10)) }
      }
      #expect(clock.now == deadline)
      #expect(error?.deadline as? VirtualClock.Instant == deadline)
      #expect(error?.duration == nil)
    }
  }

  @Test func moveOnAfterReturnsNilAtTheDeadline() async throws {
    try await withVirtualTime { clock in
      let value = try await moveOnAfter(.seconds(5), clock: clock) { () async throws -> Int in
        try await clock.sleep(for: .seconds(10))
        return 1
      }
      #expect(value == nil)
      #expect(clock.now.offset == .seconds(5))
    }
  }

  @Test func moveOnAfterReturnsTheValueOfABodyThatFinishesInTime() async throws {
    try await withVirtualTime { clock in
      let value = try await moveOnAfter(.seconds(5), clock: clock) { () async throws -> Int in
        try await clock.sleep(for: .seconds(1))
        return 1
      }
      #expect(value == 1)
      #expect(clock.now.offset == .seconds(1))
    }
  }

  @Test func theTimeoutWaitsForTheBodysCleanup() async throws {
    try await withVirtualTime { clock in
      await #expect(throws: TimeoutError.self) {
        try await withTimeout(.seconds(3), clock: clock) {
          do {
            try await clock.sleep(for: .seconds(10))
          } catch {
            try await withCancellationShield { try await clock.sleep(for: .seconds(1)) }
            throw error
          }
        }
      }
      #expect(clock.now.offset == .seconds(4), "deadline 3 s + 1 s of shielded cleanup")
    }
  }

  @Test func anErrorThrownAfterTheDeadlineWinsOverTheTimeout() async throws {
    try await withVirtualTime { clock in
      await #expect(throws: Boom(1)) {
        try await withTimeout(.seconds(3), clock: clock) {
          do { try await clock.sleep(for: .seconds(10)) } catch { throw Boom(1) }
        }
      }
      #expect(clock.now.offset == .seconds(3))
    }
  }

  @Test func aTimeoutInsideAShieldStillFires() async throws {
    try await withVirtualTime { clock in
      let error = await #expect(throws: TimeoutError.self) {
        try await withCancellationShield {
          try await withTimeout(.seconds(2), clock: clock) { try await clock.sleep(for: .seconds(10)) }
        }
      }
      #expect(error?.duration == .seconds(2))
      #expect(clock.now.offset == .seconds(2), "aiotools neutralises this timeout; we do not")
    }
  }

  @Test func aTimeoutInsideAShieldFiresWhileTheCallerIsCancelled() async throws {
    try await withVirtualTime { clock in
      let caller = Task {
        try await withCancellationShield {
          try await withTimeout(.seconds(2), clock: clock) { try await clock.sleep(for: .seconds(10)) }
        }
      }
      try await clock.sleep(for: .seconds(1))
      caller.cancel()
      let error = await #expect(throws: TimeoutError.self) { try await caller.value }
      #expect(error?.duration == .seconds(2), "the body's TimeoutError wins over the deferred cancellation")
      #expect(clock.now.offset == .seconds(2))
    }
  }

  @Test func aTimeoutAroundAShieldIsDeferredUntilTheShieldedBodyEnds() async throws {
    try await withVirtualTime { clock in
      let events = Recorder<String>()
      await #expect(throws: TimeoutError.self) {
        try await withTimeout(.seconds(1), clock: clock) {
          try await withCancellationShield {
            try await clock.sleep(for: .seconds(5))
            events.record("shielded body finished")
          }
          events.record("after the shield")
        }
      }
      #expect(clock.now.offset == .seconds(5))
      #expect(events.all == ["shielded body finished"])
    }
  }

  @Test func theInnermostExpiredTimeoutIsReported() async throws {
    try await withVirtualTime { clock in
      let outerFirst = await #expect(throws: TimeoutError.self) {
        try await withTimeout(.seconds(2), clock: clock) {
          try await withTimeout(.seconds(5), clock: clock) { try await clock.sleep(for: .seconds(10)) }
        }
      }
      #expect(outerFirst?.duration == .seconds(2), "the outer deadline passed: the inner one is just cancelled")
      #expect(clock.now.offset == .seconds(2))
      let innerFirst = await #expect(throws: TimeoutError.self) {
        try await withTimeout(.seconds(5), clock: clock) {
          try await withTimeout(.seconds(2), clock: clock) { try await clock.sleep(for: .seconds(10)) }
        }
      }
      #expect(innerFirst?.duration == .seconds(2), "the inner TimeoutError passes the outer scope unchanged")
      #expect(clock.now.offset == .seconds(4))
    }
  }

  @Test func aDeadlineMillenniaAwayStillFiresAtTheExactInstant() async throws {
    try await withVirtualTime { clock in
      let far = Duration.seconds(2_500_000_000_000)  // longer than one timer sleep, taken in steps
      await #expect(throws: TimeoutError.self) {
        try await withTimeout(far, clock: clock) { try await clock.sleep(for: far * 2) }
      }
      #expect(clock.now.offset == far)
    }
  }

  @Test func theToleranceAndDeadlineArePassedToTheClock() async throws {
    try await withVirtualTime { clock in
      let recording = RecordingClock(base: clock)
      await #expect(throws: TimeoutError.self) {
        try await withTimeout(.seconds(3), tolerance: .milliseconds(250), clock: recording) {
          try await clock.sleep(for: .seconds(10))
        }
      }
      #expect(recording.sleeps.all == [RecordingClock.Sleep(deadline: .seconds(3), tolerance: .milliseconds(250))])
      #expect(clock.now.offset == .seconds(3))
    }
  }

  @Test func aCallerCancelledBeforeTheCallGetsCancellationWithoutWaitingForTheDeadline() async throws {
    try await withVirtualTime { clock in
      let caller = Task {
        withUnsafeCurrentTask { $0?.cancel() }
        return try await withTimeout(.seconds(3), clock: clock) { try await clock.sleep(for: .seconds(10)) }
      }
      #expect(CancellationFixtures.isCancellation(await caller.result))
      #expect(clock.now.offset == .zero)
    }
  }

  @Test func cancellingTheCallerBeforeTheDeadlineThrowsCancellationAtThatInstant() async throws {
    try await withVirtualTime { clock in
      let caller = Task {
        try await withTimeout(.seconds(3), clock: clock) { try await clock.sleep(for: .seconds(10)) }
      }
      try await clock.sleep(for: .seconds(1))
      caller.cancel()
      #expect(CancellationFixtures.isCancellation(await caller.result))
      #expect(clock.now.offset == .seconds(1))
    }
  }
}

/// A clock that forwards to a `VirtualClock` and records every `sleep(until:tolerance:)`.
private struct RecordingClock: Clock {
  struct Sleep: Equatable, Sendable {
    var deadline: Duration
    var tolerance: Duration?
  }
  let base: VirtualClock
  let sleeps = Recorder<Sleep>()
  var now: VirtualClock.Instant { base.now }
  var minimumResolution: Duration { base.minimumResolution }
  func sleep(until deadline: VirtualClock.Instant, tolerance: Duration?) async throws {
    sleeps.record(Sleep(deadline: deadline.offset, tolerance: tolerance))
    try await base.sleep(until: deadline, tolerance: tolerance)
  }
}
