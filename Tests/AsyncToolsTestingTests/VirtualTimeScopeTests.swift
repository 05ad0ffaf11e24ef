import AsyncTools
import Synchronization
import Testing

@testable import AsyncToolsTesting

/// Scope-level behaviour from issue #13: nesting, deadlock reports, the start instant, determinism.
@Suite struct VirtualTimeScopeTests {
  @Test func nestedScopeIsAClearErrorWithinASecond() async throws {
    let outcomes = try await withVirtualTime { _ in
      // In the body, in an unstructured task (inherits the scope's task-locals) and in a
      // detached one (runs on the driver thread).
      let nested: @Sendable () async -> (VirtualTimeError.Code?, Duration) = {
        let start = ContinuousClock.now
        do {
          try await withVirtualTime { _ in }
          return (nil, ContinuousClock.now - start)
        } catch let error as VirtualTimeError {
          return (error.code, ContinuousClock.now - start)
        } catch {
          return (nil, ContinuousClock.now - start)
        }
      }
      return [await nested(), await Task { await nested() }.value, await Task.detached { await nested() }.value]
    }
    #expect(outcomes.map(\.0) == [.nested, .nested, .nested])
    #expect(outcomes.allSatisfy { $0.1 < .seconds(1) })
  }

  @Test func deadlockSaysWhatItSaw() async throws {
    let error = await #expect(throws: VirtualTimeError.self) {
      try await withVirtualTime(deadlockTimeout: .milliseconds(100)) { clock in
        try await clock.sleep(for: .seconds(5))
        let (never, _) = AsyncStream<Void>.makeStream()
        for await _ in never {}
      }
    }
    #expect(error?.code == .deadlock)
    let message = error?.message ?? ""
    #expect(message.contains("stuck at virtual time +5.0 seconds"))
    #expect(message.contains("0 task(s) sleeping on the VirtualClock"))
    #expect(message.contains("a continuation nobody resumes"))
    #expect(!message.contains("nothing was sleeping"))
  }

  @Test func realClockSleepLongerThanTheDeadlockTimeoutIsReportedAsSuch() async throws {
    // A top-level `Task.immediate` sleeps on the real clock (the runtime gives it no executor the
    // scope can see): waiting for it for longer than `deadlockTimeout` is reported, naming it.
    let error = await #expect(throws: VirtualTimeError.self) {
      try await withVirtualTime(deadlockTimeout: .milliseconds(100)) { _ in
        let sleeper = Task.immediate { try await Task.sleep(for: .seconds(2)) }
        try await sleeper.value
      }
    }
    #expect(error?.code == .deadlock)
    #expect(error?.message.contains("a task sleeping on a real clock") == true)
    #expect(error?.message.contains("Task.immediate") == true)
  }

  @Test func topLevelImmediateTaskStaysOnlyIfItFirstSuspendsOnAVirtualClock() async throws {
    // A top-level `Task.immediate` starts inline on the driver with no task executor: a runtime
    // sleep or yield there goes to the runtime's default executor (real time). But a task whose
    // first suspension is on the scope's clock is woken by the driver, on its thread, so the
    // driver keeps it from then on, runtime sleeps included.
    let (virtualFirst, runtimeFirst) = try await withVirtualTime { clock in
      let virtualFirst = Task.immediate {
        try await clock.sleep(for: .seconds(1))
        try await Task.sleep(for: .seconds(3600))
        return clock.now.offset
      }
      let runtimeFirst = Task.immediate {
        let start = ContinuousClock.now
        try await Task.sleep(for: .milliseconds(20))  // real: the scope does not see it
        return ContinuousClock.now - start
      }
      let yieldFirst = Task.immediate {
        await Task.yield()  // to the runtime's default executor: the task leaves the driver here
        let start = ContinuousClock.now
        try await Task.sleep(for: .milliseconds(20))
        return ContinuousClock.now - start
      }
      return (try await virtualFirst.value, [try await runtimeFirst.value, try await yieldFirst.value])
    }
    #expect(virtualFirst == .seconds(3601))
    for real in runtimeFirst {
      #expect(real >= .milliseconds(20), "a virtual sleep would have taken no real time")
    }
  }

  @Test func manualModeDeadlockNamesTheWaitingSleepers() async throws {
    let error = await #expect(throws: VirtualTimeError.self) {
      try await withVirtualTime(advancing: .manual, deadlockTimeout: .milliseconds(100)) { clock in
        try await clock.sleep(for: .seconds(1))
      }
    }
    #expect(error?.message.contains("1 task(s) sleeping on the VirtualClock") == true)
    #expect(error?.message.contains("Manual mode") == true)
  }

  @Test func clockStartsAtTheGivenInstant() async throws {
    let log = EventLog()
    try await withVirtualTime(startingAt: .init(offset: .seconds(1_700_000_000))) { clock in
      log.append("\(clock.now)")
      try await Task.sleep(for: .seconds(1))
      try await clock.sleep(until: .init(offset: .seconds(1_700_000_010)))
      log.append("\(clock.now) \(DefaultClock().now)")
    }
    #expect(log.all == ["+1700000000.0 seconds", "+1700000010.0 seconds +1700000010.0 seconds"])
  }

  @Test func sameScenarioAThousandTimesGivesIdenticalTraces() async throws {
    // Runtime sleeps, virtual sleeps, yields, immediate children, an unstructured task and a
    // timer in one scenario.
    var traces: Set<[String]> = []
    for _ in 0..<1_000 {
      let log = EventLog()
      try await withVirtualTime { clock in
        let timer = try PeriodicTimer.start(every: .milliseconds(300)) { tick in
          await Task.yield()
          log.append("tick \(tick.number) \(clock.now)")
        }
        await withDiscardingTaskGroup { group in
          for i in 0..<4 {
            group.addImmediateTask {
              await Task.yield()
              log.append("child \(i) yielded \(clock.now)")
              try? await Task.sleep(for: .milliseconds(100 * (4 - i)))
              log.append("child \(i) woke \(clock.now)")
            }
          }
          group.addTask {
            try? await clock.sleep(for: .milliseconds(250))
            log.append("virtual sleeper \(clock.now)")
          }
        }
        await Task {
          await Task.yield()
          log.append("unstructured \(clock.now)")
        }.value
        await timer.cancel()
      }
      traces.insert(log.all)
    }
    #expect(traces.count == 1)
  }

  @Test func testsOutsideVirtualTimeAreNotSlowedDown() async throws {
    // Real sleeps running beside a busy scope are neither captured nor held until the scope ends:
    // the outside task finishes its ten 10 ms sleeps while the body is still sleeping virtually.
    // (An event, not a wall-clock bound: a loaded CI machine cannot make it flaky.)
    let outsideDone = DoneFlag()
    let outside = Task.detached { () -> Duration in
      let start = ContinuousClock.now
      for _ in 0..<10 { try? await Task.sleep(for: .milliseconds(10)) }
      outsideDone.value.store(true, ordering: .releasing)
      return ContinuousClock.now - start
    }
    let virtualSleeps = try await withVirtualTime { clock in
      var count = 0
      // Bounded: 100 M virtual sleeps take far longer than any real run of the outside task.
      while !outsideDone.value.load(ordering: .acquiring) && count < 100_000_000 {
        try await clock.sleep(for: .seconds(1))
        count += 1
      }
      return count
    }
    let finishedDuringScope = outsideDone.value.load(ordering: .acquiring)
    #expect(finishedDuringScope, "the outside sleeps did not finish while the scope ran")
    #expect(virtualSleeps < 100_000_000)
    let elapsed = await outside.value
    #expect(elapsed >= .milliseconds(100), "outside sleeps took \(elapsed): they were not real")
  }
}

/// A flag one task sets and another reads.
private final class DoneFlag: Sendable {
  let value = Atomic<Bool>(false)
}
