import AsyncTools
import AsyncToolsTesting
import Testing

/// Rows of the bad-input table in RELIABILITY.md that no capability's own suite pins: every invalid argument or
/// misuse gets a clear thrown `AsyncToolsError` (or the documented, harmless behaviour), never a crash, hang or
/// silent no-op.
@Suite("Bad input")
struct BadInputTests {
  // MARK: Virtual time

  @Test(arguments: [Duration.zero, .seconds(-1)])
  func aNonPositiveDeadlockTimeoutIsAnInvalidArgumentNamingIt(timeout: Duration) async {
    let ran = BadInputFlag()
    let error = await #expect(throws: AsyncToolsError.self) {
      try await withVirtualTime(deadlockTimeout: timeout) { _ in ran.set() }
    }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains("deadlockTimeout") == true)
    #expect(!ran.value, "the body must not run when the arguments are invalid")
  }

  @Test func aNegativeAutojumpThresholdIsAnInvalidArgumentNamingIt() async {
    let error = await #expect(throws: AsyncToolsError.self) {
      try await withVirtualTime(autojumpThreshold: .milliseconds(-1)) { _ in }
    }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains("autojumpThreshold") == true)
  }

  @Test func advancingAVirtualClockByANegativeDurationNeverMovesTimeBackwards() async throws {
    try await withVirtualTime(advancing: .manual) { clock in
      await clock.advance(by: .seconds(5))
      await clock.advance(by: .seconds(-3))
      #expect(clock.now.offset == .seconds(5))
      await clock.advance(to: VirtualClock.Instant(offset: .seconds(1)))
      #expect(clock.now.offset == .seconds(5))
    }
  }

  // MARK: Task scopes and supervisors

  @Test(arguments: [Duration.zero, .seconds(-10)])
  func aTaskScopeWithANonPositiveTimeoutStartsCancelledAndThrowsTimeoutError(timeout: Duration) async throws {
    try await withVirtualTime { clock in
      let childSawCancellation = BadInputFlag()
      await #expect(throws: TimeoutError.self) {
        try await withTaskScope(timeout: timeout, clock: clock, errorHandler: { _ in }) { scope in
          scope.addTask {
            if Task.isCancelled { childSawCancellation.set() }
          }
          try await clock.sleep(for: .seconds(60))
        }
      }
      #expect(childSawCancellation.value)
      #expect(clock.now.offset == .zero, "a past deadline must not wait for anything")
    }
  }

  @Test func addingAChildThroughTheHandleOfAnEndedSupervisorThrowsClosed() async throws {
    let escaped = try await withSupervisor(backoff: .none) { supervisor in supervisor.handle }
    for restart in [RestartPolicy.never, .onFailure, .always] {
      let error = #expect(throws: AsyncToolsError.self) {
        try escaped.addChild(restart: restart) {}
      }
      #expect(error?.code == .closed)
    }
  }

  @Test func aNaNJitterIsRejectedBeforeAnythingRuns() async {
    let ran = BadInputFlag()
    let error = await #expect(throws: AsyncToolsError.self) {
      try await withSupervisor(
        backoff: Backoff(initial: .seconds(1), maximum: .seconds(2), multiplier: 2, jitter: .nan)
      ) { _ in ran.set() }
    }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains("jitter") == true)
    #expect(!ran.value)
  }

  @Test func aNegativeMaximumBackoffIsRejected() async {
    let error = await #expect(throws: AsyncToolsError.self) {
      try await withSupervisor(backoff: Backoff(initial: .zero, maximum: .seconds(-1))) { _ in }
    }
    #expect(error?.code == .invalidArgument)
  }

  @Test func cancellingAnEndedScopeThroughAnEscapedHandleIsHarmless() async throws {
    let escaped = try await withTaskScope { scope in scope.handle }
    escaped.cancelAll()
    escaped.cancelAll()
    let error = #expect(throws: AsyncToolsError.self) { try escaped.addTask {} }
    #expect(error?.code == .closed)
  }

  // MARK: Error groups

  @Test func anErrorGroupScopeThatEscapedItsBodyRefusesTasksWithClosed() async throws {
    let escaped = try await withErrorGroup { group in group }
    let error = #expect(throws: AsyncToolsError.self) { try escaped.addTask {} }
    #expect(error?.code == .closed)
    escaped.cancelAll()  // harmless once ended
  }

  // MARK: Timers

  @Test func cancellingAPeriodicTimerTwiceAndFromSeveralTasksIsHarmless() async throws {
    try await withVirtualTime { clock in
      let ticks = BadInputCount()
      let timer = try PeriodicTimer.start(every: .seconds(1), clock: clock) { _ in ticks.increment() }
      try await clock.sleep(for: .milliseconds(2500))
      let beforeCancel = ticks.value
      await withDiscardingTaskGroup { group in
        for _ in 0..<4 { group.addTask { await timer.cancel() } }
      }
      await timer.cancel()
      #expect(timer.isCancelled)
      // Every cancel returned (the group ended), and the timer really stopped: no tick in the next 10 s.
      try await clock.sleep(for: .seconds(10))
      #expect(beforeCancel >= 2)
      #expect(ticks.value == beforeCancel, "the timer ticked after cancel()")
    }
  }

  @Test func aTickerWithAHugeIntervalIsAcceptedAndCancellable() async throws {
    try await withVirtualTime { clock in
      let ticks = BadInputCount()
      let timer = try PeriodicTimer.start(every: .seconds(Int64.max / 4), initialDelay: .seconds(1), clock: clock) {
        _ in ticks.increment()
      }
      try await clock.sleep(for: .seconds(10))
      await timer.cancel()
      #expect(ticks.value == 1)
    }
  }

  // MARK: Context managers and exit stacks

  @Test func everyRegistrationOnAClosedExitStackThrowsClosed() async throws {
    let escaped = try await withExitStack { stack in stack }
    let push = #expect(throws: AsyncToolsError.self) { try escaped.push { _ in } }
    #expect(push?.code == .closed)
    let callback = #expect(throws: AsyncToolsError.self) { try escaped.callback {} }
    #expect(callback?.code == .closed)
    let entered = BadInputFlag()
    let enter = await #expect(throws: AsyncToolsError.self) {
      _ = try await escaped.enter(AsyncContext<Int> { body in entered.set(); _ = await body(1) })
    }
    #expect(enter?.code == .closed)
    #expect(!entered.value, "a closed stack entered the resource before refusing it")
  }

  @Test func exitingAnAsyncContextTwiceThrowsInvalidState() async throws {
    let context = AsyncContext<Int> { body in _ = await body(7) }
    #expect(try await context.enter() == 7)
    try await context.exit(.success)
    let error = await #expect(throws: AsyncToolsError.self) { try await context.exit(.success) }
    #expect(error?.code == .invalidState)
  }

  @Test func anAsyncContextCanBeEnteredAgainAfterItExited() async throws {
    let entries = BadInputCount()
    let context = AsyncContext<Int> { body in
      entries.increment()
      _ = await body(entries.value)
    }
    #expect(try await context.enter() == 1)
    try await context.exit(.success)
    #expect(try await context.enter() == 2)
    try await context.exit(.success)
  }

  // MARK: Timeouts

  @Test func aTimeoutOfTheMostNegativeDurationIsAlreadyPastAndDoesNotTrap() async throws {
    try await withVirtualTime { clock in
      await #expect(throws: TimeoutError.self) {
        try await withTimeout(.seconds(Int64.min / 2), clock: clock) { try await clock.sleep(for: .seconds(1)) }
      }
      let value = try await moveOnAfter(.seconds(Int64.min / 2), clock: clock) { 42 }
      #expect(value == 42, "a body without checkpoints completes despite a past deadline")
    }
  }
}

/// A flag tasks can set.
private final class BadInputFlag: Sendable {
  private let state = Locked(false)
  func set() { state.withLock { $0 = true } }
  var value: Bool { state.withLock { $0 } }
}

/// A counter tasks can bump.
private final class BadInputCount: Sendable {
  private let state = Locked(0)
  func increment() { state.withLock { $0 += 1 } }
  var value: Int { state.withLock { $0 } }
}

/// Bad input for persistent groups and coordination (race, gatherSafe, asCompletedSafe).
@Suite("Bad input: groups and coordination")
struct CoordinationBadInputTests {
  @Test(arguments: [0, -5])
  func aPersistentGroupNeedsAConcurrencyOfAtLeastOne(limit: Int) {
    let error = #expect(throws: AsyncToolsError.self) { _ = try PersistentTaskGroup(maxConcurrency: limit) }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains("maxConcurrency") == true)
  }

  @Test func shuttingDownOrClosingAPersistentGroupAgainIsHarmless() async throws {
    let group = PersistentTaskGroup()
    await group.shutdown()
    await group.shutdown()
    await group.close()
    #expect(try await group.close(timeout: .seconds(1)))
    #expect(!group.isAcceptingTasks)
  }

  @Test func raceCollectingErrorsWithNoOperationIsAnInvalidArgument() async {
    let operations: [@Sendable () async throws -> Int] = []
    let error = await #expect(throws: AsyncToolsError.self) { _ = try await raceCollectingErrors(operations) }
    #expect(error?.code == .invalidArgument)
  }

  @Test func asCompletedSafeWithNoOperationYieldsNothingAndReturns() async {
    let operations: [@Sendable () async throws -> Int] = []
    let count = await withAsCompletedSafe(operations) { results in
      var count = 0
      for await _ in results { count += 1 }
      return count
    }
    #expect(count == 0)
  }
}
