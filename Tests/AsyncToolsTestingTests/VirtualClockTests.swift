import AsyncTools
import AsyncToolsTestSupport
import AsyncToolsTesting
import Synchronization
import Testing

/// An append-only event log shared by the tasks of one test.
typealias EventLog = TestLog<String>

@Suite struct VirtualClockTests {
  @Test func longSleepTakesNoRealTime() async throws {
    // Timed inside the body: waiting for another test's scope to end is not part of it.
    let (end, elapsed) = try await withVirtualTime { clock in
      let started = ContinuousClock.now
      try await clock.sleep(for: .seconds(3600))
      try await clock.sleep(for: .seconds(3600))
      try await clock.sleep(for: .seconds(3600))
      return (clock.now, ContinuousClock.now - started)
    }
    #expect(end.offset == .seconds(10800))
    #expect(elapsed < .seconds(2))
  }

  @Test func concurrentSleepersWakeInDeadlineOrder() async throws {
    let log = EventLog()
    let end = try await withVirtualTime { clock in
      await withTaskGroup(of: Void.self) { group in
        for (name, seconds) in [("a", 30), ("b", 10), ("c", 20)] {
          group.addTask {
            try? await clock.sleep(for: .seconds(seconds))
            log.append("\(name)@\(clock.now.offset)")
          }
        }
      }
      return clock.now.offset
    }
    #expect(log.all == ["b@10.0 seconds", "c@20.0 seconds", "a@30.0 seconds"])
    #expect(end == .seconds(30))
  }

  @Test func equalDeadlinesWakeInRegistrationOrder() async throws {
    let log = EventLog()
    try await withVirtualTime { clock in
      await withTaskGroup(of: Void.self) { group in
        for index in 0..<10 {
          group.addTask {
            try? await clock.sleep(for: .seconds(5))
            log.append("\(index)")
          }
          // Let each child register before the next starts.
          await clock.runUntilIdle()
        }
      }
    }
    #expect(log.all == (0..<10).map { "\($0)" })
  }

  @Test func unstructuredTasksAndActorsRunInVirtualTime() async throws {
    actor Counter {
      var value = 0
      func bump() { value += 1 }
    }
    let result = try await withVirtualTime { clock in
      let counter = Counter()
      let unstructured = Task {
        try await clock.sleep(for: .seconds(2))
        await counter.bump()
      }
      let detached = Task.detached {
        try await clock.sleep(for: .seconds(7))
        await counter.bump()
      }
      try await unstructured.value
      try await detached.value
      return (await counter.value, clock.now.offset)
    }
    #expect(result.0 == 2)
    #expect(result.1 == .seconds(7))
  }

  @Test func cancellingASleeperResumesItWithCancellationError() async throws {
    let outcome = try await withVirtualTime { clock in
      let sleeper = Task { try await clock.sleep(for: .seconds(100)) }
      try await clock.sleep(for: .seconds(1))
      sleeper.cancel()
      let result = await sleeper.result
      return (result, clock.now.offset)
    }
    #expect(throws: CancellationError.self) { try outcome.0.get() }
    #expect(outcome.1 == .seconds(1))
  }

  @Test func raceCancelsLoserAtWinnerTime() async throws {
    let end = try await withVirtualTime { clock in
      try await withThrowingTaskGroup(of: Int.self) { group in
        group.addTask { try await clock.sleep(for: .seconds(10)); return 10 }
        group.addTask { try await clock.sleep(for: .seconds(3)); return 3 }
        let winner = try await group.next()
        group.cancelAll()
        #expect(winner == 3)
        return clock.now.offset
      }
    }
    #expect(end == .seconds(3))
  }

  @Test func periodicTicksDoNotDrift() async throws {
    let end = try await withVirtualTime { clock in
      var next = clock.now
      for _ in 0..<1000 {
        next = next.advanced(by: .seconds(1))
        try await clock.sleep(until: next)
      }
      return clock.now.offset
    }
    #expect(end == .seconds(1000))
  }

  @Test func sleepInThePastReturnsImmediately() async throws {
    try await withVirtualTime { clock in
      try await clock.sleep(for: .seconds(5))
      try await clock.sleep(until: .init(offset: .seconds(1)))
      try await clock.sleep(for: .zero)
      #expect(clock.now.offset == .seconds(5))
    }
  }

  @Test func bodyErrorPropagates() async throws {
    struct Boom: Error {}
    await #expect(throws: Boom.self) {
      try await withVirtualTime { clock in
        try await clock.sleep(for: .seconds(1))
        throw Boom()
      }
    }
  }

  @Test func deadlockIsReportedNotHung() async throws {
    let error = await #expect(throws: VirtualTimeError.self) {
      try await withVirtualTime(deadlockTimeout: .milliseconds(50)) { _ in
        // Waits for a continuation nobody resumes; cancellation frees it.
        let (stream, _) = AsyncStream<Int>.makeStream()
        for await _ in stream {}
      }
    }
    #expect(error?.code == .deadlock)
  }

  @Test func manualModeMovesOnlyWhenAdvanced() async throws {
    let log = EventLog()
    try await withVirtualTime(advancing: .manual) { clock in
      let sleeper = Task {
        try await clock.sleep(for: .seconds(10))
        log.append("woke@\(clock.now.offset)")
      }
      await clock.runUntilIdle()
      await clock.advance(by: .seconds(4))
      #expect(clock.now.offset == .seconds(4))
      #expect(log.all.isEmpty)
      await clock.advance(by: .seconds(6))
      await clock.runUntilIdle()
      #expect(log.all == ["woke@10.0 seconds"])
      try await sleeper.value
    }
  }

  @Test func manualModeWithoutAdvanceIsADeadlock() async throws {
    let error = await #expect(throws: VirtualTimeError.self) {
      try await withVirtualTime(advancing: .manual, deadlockTimeout: .milliseconds(50)) { clock in
        try await clock.sleep(for: .seconds(1))
      }
    }
    #expect(error?.code == .deadlock)
  }

  @Test func badArgumentsAreClearErrors() async throws {
    let ran = EventLog()
    let deadlock = await #expect(throws: AsyncToolsError.self) {
      try await withVirtualTime(deadlockTimeout: .zero) { _ in ran.append("body") }
    }
    #expect(deadlock?.code == .invalidArgument)
    #expect(deadlock?.message.contains("deadlockTimeout") == true, "\(String(describing: deadlock))")
    let autojump = await #expect(throws: AsyncToolsError.self) {
      try await withVirtualTime(autojumpThreshold: .seconds(-1)) { _ in ran.append("body") }
    }
    #expect(autojump?.code == .invalidArgument)
    #expect(autojump?.message.contains("autojumpThreshold") == true, "\(String(describing: autojump))")
    #expect(ran.all.isEmpty, "the body ran despite a bad argument")
  }

  @Test func standaloneClockAdvancesManually() async throws {
    let clock = VirtualClock()
    let sleeper = Task { try await clock.sleep(for: .seconds(3)) }
    while clock.pendingSleepers == 0 { await Task.yield() }
    await clock.advance(by: .seconds(5))
    try await sleeper.value
    #expect(clock.now.offset == .seconds(5))
  }

  @Test func determinismSameLogOverTwentyRuns() async throws {
    var generator = SplitMix64(seed: 42)
    let delays = (0..<100).map { _ in (0..<5).map { _ in Int(generator.next() % 1000) } }
    var logs: [[String]] = []
    for _ in 0..<20 {
      let log = EventLog()
      try await withVirtualTime { clock in
        await withTaskGroup(of: Void.self) { group in
          for (task, sleeps) in delays.enumerated() {
            group.addTask {
              for delay in sleeps {
                try? await clock.sleep(for: .milliseconds(delay))
                log.append("\(task)@\(clock.now.offset)")
              }
            }
          }
        }
      }
      logs.append(log.all)
    }
    // The first run is right: every task wakes at the running sums of its delays, and time never goes back.
    #expect(logs[0].count == 500)
    for (task, sleeps) in delays.enumerated() {
      var elapsed = 0
      let expected = sleeps.map { delay in
        elapsed += delay
        return "\(task)@\(Duration.milliseconds(elapsed))"
      }
      #expect(logs[0].filter { $0.hasPrefix("\(task)@") } == expected, "task \(task)")
    }
    // Every later run logs the same events in the same order, ties included.
    for log in logs.dropFirst() { #expect(log == logs[0]) }
  }
}

/// SplitMix64, shared with every seeded test: `SeededRandomNumberGenerator` of AsyncToolsTesting.
typealias SplitMix64 = SeededRandomNumberGenerator
