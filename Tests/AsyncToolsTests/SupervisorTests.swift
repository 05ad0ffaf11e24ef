import AsyncTools
import AsyncToolsTesting
import Testing

@Suite("Supervisor")
struct SupervisorTests {
  /// Plenty of room: tests of restart policies must not trip the intensity limit.
  let roomy = RestartIntensity(maxRestarts: 1000, within: .seconds(3600))

  @Test func neverChildRunsOnceAndItsFailureIsReported() async throws {
    let runs = ChildCounter()
    let reported = ChildCounter()
    try await withSupervisor(backoff: .none, errorHandler: { _ in reported.increment() }) { supervisor in
      supervisor.addChild(name: "once", restart: .never) {
        runs.increment()
        throw ChildError(id: 1)
      }
    }
    #expect(runs.value == 1)
    #expect(reported.value == 1)
  }

  @Test func onFailureRestartsAfterFailuresButNotAfterANormalReturn() async throws {
    let runs = ChildCounter()
    let reported = ChildLog()
    try await withSupervisor(intensity: roomy, backoff: .none, errorHandler: { reported.append("\($0)") }) {
      supervisor in
      supervisor.addChild(name: "flaky", restart: .onFailure) {
        let run = runs.increment()
        if run <= 2 { throw ChildError(id: run) }
      }
    }
    #expect(runs.value == 3)
    #expect(reported.all == ["\(ChildError(id: 1))", "\(ChildError(id: 2))"])
  }

  @Test func alwaysRestartsAfterANormalReturnUntilCancelled() async throws {
    let runs = ChildCounter()
    try await withSupervisor(intensity: roomy, backoff: .none) { supervisor in
      let handle = supervisor.handle
      supervisor.addChild(name: "loop", restart: .always) {
        if runs.increment() == 5 { handle.cancelAll() }
      }
    }
    #expect(runs.value == 5, "a cancelled child must not be restarted")
  }

  @Test func aChildEndingWithCancellationErrorCountsAsANormalReturn() async throws {
    let runs = ChildCounter()
    let reported = ChildCounter()
    try await withSupervisor(intensity: roomy, backoff: .none, errorHandler: { _ in reported.increment() }) {
      supervisor in
      supervisor.addChild(restart: .onFailure) {
        runs.increment()
        throw CancellationError()
      }
    }
    #expect(runs.value == 1)
    #expect(reported.value == 0)
  }

  @Test func childFailureDoesNotCancelSiblingsOrTheBody() async throws {
    let failed = ChildGate()
    let siblingCancelled = ChildBox<Bool?>(nil)
    let release = ChildGate()
    try await withSupervisor(errorHandler: { _ in failed.open() }) { supervisor in
      supervisor.addChild { throw ChildError(id: 1) }
      supervisor.addChild {
        await release.wait()
        siblingCancelled.set(Task.isCancelled)
      }
      await failed.wait()
      #expect(!Task.isCancelled)
      let supervisorCancelled = supervisor.isCancelled  // TaskScope and Supervisor are ~Copyable
      #expect(!supervisorCancelled)
      release.open()
    }
    #expect(siblingCancelled.value == false)
  }

  @Test func bodyErrorCancelsChildrenAndPropagatesUnchanged() async throws {
    let running = ChildCounter()
    let stopped = ChildCounter()
    let error = await #expect(throws: ChildError.self) {
      try await withSupervisor(intensity: self.roomy, backoff: .none) { supervisor in
        supervisor.addChild(restart: .always) {
          running.increment()
          await childSleepUntilCancelled()
          stopped.increment()
        }
        supervisor.addChild(restart: .never) {
          running.increment()
          await childSleepUntilCancelled()
          stopped.increment()
        }
        await running.wait(until: 2)
        throw ChildError(id: 3)
      }
    }
    #expect(error == ChildError(id: 3))
    #expect(stopped.value == 2)
    #expect(running.value == 2, "a child cancelled by the supervisor must not be restarted")
  }

  @Test func intensityExceededCancelsEveryChildAndNamesTheChildAndCount() async throws {
    let runs = ChildCounter()
    let reported = ChildCounter()
    let siblingsStopped = ChildCounter()
    let siblingsRunning = ChildCounter()
    let error = await #expect(throws: SupervisorError.self) {
      try await withSupervisor(
        intensity: RestartIntensity(maxRestarts: 3, within: .seconds(3600)), backoff: .none,
        errorHandler: { _ in reported.increment() }
      ) { supervisor in
        let handle = supervisor.handle
        supervisor.addChild(name: "steady") {
          siblingsRunning.increment()
          await childSleepUntilCancelled()
          siblingsStopped.increment()
        }
        try handle.addChild(name: "steady via handle") {
          siblingsRunning.increment()
          await childSleepUntilCancelled()
          siblingsStopped.increment()
        }
        await siblingsRunning.wait(until: 2)
        supervisor.addChild(name: "crasher", restart: .onFailure) {
          throw ChildError(id: runs.increment())
        }
      }
    }
    #expect(error?.code == .restartIntensityExceeded)
    #expect(error?.child == "crasher")
    #expect(error?.restarts == 4, "3 restarts allowed, the 4th is refused")
    #expect(error?.period == .seconds(3600))
    #expect((error?.lastFailure as? ChildError) == ChildError(id: 4))
    #expect(runs.value == 4, "the first run plus 3 restarts")
    #expect(reported.value == 4, "every failure reaches the handler exactly once")
    #expect(siblingsStopped.value == 2, "giving up cancels and awaits every other child")
    #expect(error.map { "\($0)" }?.contains("crasher") == true)
  }

  @Test func intensityIsSharedByAllChildrenAndWorksThroughTheHandle() async throws {
    let runs = ChildCounter()
    let error = await #expect(throws: SupervisorError.self) {
      try await withSupervisor(
        intensity: RestartIntensity(maxRestarts: 2, within: .seconds(3600)), backoff: .none, errorHandler: { _ in }
      ) { supervisor in
        let handle = supervisor.handle
        supervisor.addChild(name: "a", restart: .always) {
          runs.increment()
          await childSleepUntilCancelled()
        }
        try handle.addChild(name: "b", restart: .onFailure) {
          runs.increment()
          throw ChildError(id: 0)
        }
      }
    }
    #expect(error?.child == "b")
    #expect(error?.restarts == 3)
  }

  @Test func zeroRestartsGivesUpOnTheFirstRestart() async throws {
    let error = await #expect(throws: SupervisorError.self) {
      try await withSupervisor(intensity: RestartIntensity(maxRestarts: 0, within: .seconds(1)), backoff: .none) {
        supervisor in
        supervisor.addChild(restart: .always) {}
      }
    }
    #expect(error?.child == "child #1")
    #expect(error?.restarts == 1)
    #expect(error?.lastFailure == nil)
  }

  @Test func unnamedRestartableChildrenAreNumberedInErrors() async throws {
    let error = await #expect(throws: SupervisorError.self) {
      try await withSupervisor(
        intensity: RestartIntensity(maxRestarts: 0, within: .seconds(1)), backoff: .none, errorHandler: { _ in }
      ) { supervisor in
        let firstDone = ChildGate()
        supervisor.addChild(restart: .onFailure) { firstDone.open() }
        await firstDone.wait()
        supervisor.addChild(restart: .onFailure) { throw ChildError(id: 1) }
      }
    }
    #expect(error?.child == "child #2")
  }

  @Test func neverChildrenNeedNoRestartMachinery() async throws {
    let runs = ChildCounter()
    try await withSupervisor(intensity: RestartIntensity(maxRestarts: 0, within: .seconds(1))) { supervisor in
      for _ in 0..<1000 { supervisor.addChild { runs.increment() } }
    }
    #expect(runs.value == 1000)
  }

  @Test func negativeMaxRestartsIsRejected() async throws {
    let bodyRan = ChildBox(false)
    let error = await #expect(throws: AsyncToolsError.self) {
      try await withSupervisor(intensity: RestartIntensity(maxRestarts: -1, within: .seconds(1))) { _ in
        bodyRan.set(true)
      }
    }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains("maxRestarts") == true)
    #expect(!bodyRan.value, "the body ran despite the invalid argument")
  }

  @Test(arguments: [Duration.zero, .seconds(-1)])
  func nonPositivePeriodIsRejected(period: Duration) async throws {
    let error = await #expect(throws: AsyncToolsError.self) {
      try await withSupervisor(intensity: RestartIntensity(maxRestarts: 1, within: period)) { _ in }
    }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains("period") == true)
  }

  @Test(arguments: [
    (Backoff(initial: .seconds(-1), maximum: .seconds(1)), "initial"),
    (Backoff(initial: .seconds(2), maximum: .seconds(1)), "maximum"),
    (Backoff(initial: .seconds(1), maximum: .seconds(2), multiplier: 0.5), "multiplier"),
    (Backoff(initial: .seconds(1), maximum: .seconds(2), multiplier: .nan), "multiplier"),
    (Backoff(initial: .seconds(1), maximum: .seconds(2), multiplier: .infinity), "multiplier"),
    (Backoff(initial: .seconds(1), maximum: .seconds(2), jitter: 1.5), "jitter"),
    (Backoff(initial: .seconds(1), maximum: .seconds(2), jitter: -0.1), "jitter"),
  ])
  func invalidBackoffIsRejectedBeforeAnythingRuns(backoff: Backoff, named: String) async throws {
    let bodyRan = ChildBox(false)
    let error = await #expect(throws: AsyncToolsError.self) {
      try await withSupervisor(backoff: backoff) { _ in bodyRan.set(true) }
    }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains(named) == true, "message should name \(named): \(error?.message ?? "")")
    #expect(!bodyRan.value)
  }

  @Test func otpNamesAliasThePolicies() {
    #expect(RestartPolicy.temporary == .never)
    #expect(RestartPolicy.transient == .onFailure)
    #expect(RestartPolicy.permanent == .always)
  }
}

@Suite("Supervisor restarts in virtual time")
struct SupervisorVirtualTimeTests {
  @Test func backoffDelaysAreObservedOnTheClockAtExactInstants() async throws {
    try await withVirtualTime { clock in
      let starts = ChildBox<[Duration]>([])
      // u = 0.5 from the constant source: each delay is base × (1 − 0.5 × 0.5) = 0.75 × base.
      let backoff = Backoff(initial: .seconds(1), maximum: .seconds(8), multiplier: 2, jitter: 0.5)
      let error = await #expect(throws: SupervisorError.self) {
        try await withSupervisor(
          intensity: RestartIntensity(maxRestarts: 5, within: .seconds(3600)), backoff: backoff, clock: clock,
          random: ChildConstantRandom(value: 1 << 63), errorHandler: { _ in }
        ) { supervisor in
          supervisor.addChild(name: "crasher", restart: .onFailure) {
            starts.update { $0.append(clock.now.offset) }
            throw ChildError(id: 0)
          }
        }
      }
      // Delays 0.75, 1.5, 3, 6, then 6 (capped: 8 × 0.75).
      #expect(starts.value == [.zero, .milliseconds(750), .milliseconds(2250), .milliseconds(5250),
                               .milliseconds(11_250), .milliseconds(17_250)])
      #expect(error?.restarts == 6)
      #expect(clock.now.offset == .milliseconds(17_250), "giving up must not wait for another backoff")
    }
  }

  @Test func seededJitterIsReproducibleAndWithinBounds() async throws {
    func run(seed: UInt64) async throws -> [Duration] {
      try await withVirtualTime { clock in
        let starts = ChildBox<[Duration]>([])
        let backoff = Backoff(initial: .seconds(1), maximum: .seconds(100), multiplier: 2, jitter: 0.3)
        _ = try? await withSupervisor(
          intensity: RestartIntensity(maxRestarts: 6, within: .seconds(3600)), backoff: backoff, clock: clock,
          random: ChildSeededRandom(seed: seed), errorHandler: { _ in }
        ) { supervisor in
          supervisor.addChild(restart: .always) { starts.update { $0.append(clock.now.offset) } }
        }
        return starts.value
      }
    }
    let first = try await run(seed: 42)
    let second = try await run(seed: 42)
    let other = try await run(seed: 7)
    #expect(first == second, "the same seed must give the same delays")
    #expect(first != other)
    #expect(first.count == 7)
    for (k, pair) in zip(first, first.dropFirst()).enumerated() {
      let delay = pair.1 - pair.0
      let base = Duration.seconds(1) * (1 << k)
      #expect(delay <= base && delay >= base * 0.7, "delay \(k) = \(delay), base \(base)")
    }
  }

  @Test func intensityGivesUpExactlyWhenTooManyRestartsFallInTheWindow() async throws {
    try await withVirtualTime { clock in
      let error = await #expect(throws: SupervisorError.self) {
        try await withSupervisor(
          intensity: RestartIntensity(maxRestarts: 2, within: .seconds(15)),
          backoff: Backoff(initial: .seconds(5), maximum: .seconds(5), multiplier: 1, jitter: 0), clock: clock,
          errorHandler: { _ in }
        ) { supervisor in
          supervisor.addChild(name: "every 5 s", restart: .onFailure) { throw ChildError(id: 1) }
        }
      }
      // Restarts at 0 and 5 are within 15 s of the one requested at 10.
      #expect(error?.restarts == 3)
      #expect(clock.now.offset == .seconds(10))
    }
  }

  @Test func restartsThatLeaveTheWindowNoLongerCount() async throws {
    try await withVirtualTime { clock in
      let runs = ChildCounter()
      try await withSupervisor(
        intensity: RestartIntensity(maxRestarts: 2, within: .seconds(15)),
        backoff: Backoff(initial: .seconds(10), maximum: .seconds(10), multiplier: 1, jitter: 0), clock: clock,
        errorHandler: { _ in }
      ) { supervisor in
        let handle = supervisor.handle
        supervisor.addChild(name: "every 10 s", restart: .onFailure) {
          if runs.increment() == 10 {
            handle.cancelAll()
            return
          }
          throw ChildError(id: 1)
        }
      }
      #expect(runs.value == 10)
      #expect(clock.now.offset == .seconds(90))
    }
  }

  @Test func backoffResetsAfterARunAsLongAsTheIntensityPeriod() async throws {
    try await withVirtualTime { clock in
      let starts = ChildBox<[Duration]>([])
      try await withSupervisor(
        intensity: RestartIntensity(maxRestarts: 100, within: .seconds(15)),
        backoff: Backoff(initial: .seconds(1), maximum: .seconds(60), multiplier: 2, jitter: 0), clock: clock,
        errorHandler: { _ in }
      ) { supervisor in
        supervisor.addChild(restart: .onFailure) {
          starts.update { $0.append(clock.now.offset) }
          switch starts.value.count {
          case 1, 2: throw ChildError(id: 0)  // quick failures: delays 1 s, then 2 s
          case 3:
            try await clock.sleep(for: .seconds(20))  // a stable run, longer than the period
            throw ChildError(id: 0)
          case 4: throw ChildError(id: 0)  // the backoff starts over: 1 s, then 2 s
          default: return
          }
        }
      }
      #expect(starts.value == [.seconds(0), .seconds(1), .seconds(3), .seconds(24), .seconds(26)])
    }
  }

  @Test func alwaysRestartsANormalReturnAfterTheBackoffToo() async throws {
    try await withVirtualTime { clock in
      let starts = ChildBox<[Duration]>([])
      try await withSupervisor(
        intensity: RestartIntensity(maxRestarts: 100, within: .seconds(3600)),
        backoff: Backoff(initial: .seconds(2), maximum: .seconds(2), multiplier: 1, jitter: 0), clock: clock
      ) { supervisor in
        let handle = supervisor.handle
        supervisor.addChild(name: "ticker", restart: .always) {
          starts.update { $0.append(clock.now.offset) }
          if starts.value.count == 4 { handle.cancelAll() }
        }
      }
      #expect(starts.value == [.seconds(0), .seconds(2), .seconds(4), .seconds(6)])
    }
  }

  @Test func cancellingTheSupervisorDuringABackoffStopsTheChild() async throws {
    try await withVirtualTime { clock in
      let runs = ChildCounter()
      try await withSupervisor(
        intensity: RestartIntensity(maxRestarts: 100, within: .seconds(3600)),
        backoff: Backoff(initial: .seconds(60), maximum: .seconds(60), multiplier: 1, jitter: 0), clock: clock,
        errorHandler: { _ in }
      ) { supervisor in
        supervisor.addChild(restart: .onFailure) {
          runs.increment()
          throw ChildError(id: 0)
        }
        try await clock.sleep(for: .seconds(10))
        supervisor.cancelAll()
      }
      #expect(runs.value == 1)
      #expect(clock.now.offset == .seconds(10), "the backoff sleep must end at the cancellation")
    }
  }
}
