import AsyncTools
import Synchronization
import Testing

@testable import AsyncToolsTesting

/// Each test pins one way work used to escape virtual time (issue #13): they failed on the
/// hook-only driver and must keep passing.
@Suite struct RuntimeSleepEscapeTests {
  @Test func yieldInAChildDoesNotLetTimeJumpPastIt() async throws {
    let log = EventLog()
    try await withVirtualTime { clock in
      await withDiscardingTaskGroup { group in
        group.addTask {
          await Task.yield()
          log.append("\(clock.now)")
        }
        try? await clock.sleep(for: .seconds(10))
      }
    }
    #expect(log.all == ["+0.0 seconds"])
  }

  @Test func immediateChildrenStayInVirtualTime() async throws {
    let log = EventLog()
    try await withVirtualTime { clock in
      await withDiscardingTaskGroup { group in
        for i in 1...3 {
          group.addImmediateTask {
            await Task.yield()
            log.append("\(i) yielded at \(clock.now)")
            try? await Task.sleep(for: .seconds(i))
            log.append("\(i) slept until \(clock.now)")
          }
        }
        try? await clock.sleep(for: .seconds(10))
      }
    }
    #expect(
      log.all == [
        "1 yielded at +0.0 seconds", "2 yielded at +0.0 seconds", "3 yielded at +0.0 seconds",
        "1 slept until +1.0 seconds", "2 slept until +2.0 seconds", "3 slept until +3.0 seconds",
      ])
  }

  @Test func plainTaskSleepInTheBodyIsVirtual() async throws {
    // Real time measured inside the body: waiting for the scope lock (other scopes) is not counted.
    let (offset, real) = try await withVirtualTime { clock in
      try await timed {
        try await Task.sleep(for: .seconds(3600))
        return clock.now.offset
      }
    }
    #expect(offset == .seconds(3600))
    #expect(real < .seconds(60), "an hour of Task.sleep must not take real time")
  }

  @Test func plainTaskSleepInAsyncLetIsVirtual() async throws {
    let offsets = try await withVirtualTime { clock in
      async let first: Duration = {
        try await Task.sleep(for: .seconds(3600))
        return clock.now.offset
      }()
      async let second: Duration = {
        try await Task.sleep(nanoseconds: 1_800_000_000_000)
        return clock.now.offset
      }()
      return try await [first, second]
    }
    #expect(offsets == [.seconds(3600), .seconds(1800)])
  }

  @Test func plainTaskSleepInAGroupChildIsVirtual() async throws {
    let offset = try await withVirtualTime { clock in
      try await withThrowingTaskGroup(of: Duration.self) { group in
        group.addTask {
          try await Task.sleep(for: .seconds(3600))
          return clock.now.offset
        }
        return try await group.next()!
      }
    }
    #expect(offset == .seconds(3600))
  }

  @Test func plainTaskSleepInATaskScopeChildIsVirtual() async throws {
    let log = EventLog()
    try await withVirtualTime { clock in
      try await withTaskScope { scope in
        // The handle is not needed: the scope awaits its child.
        _ = scope.addTask {
          try await Task.sleep(for: .seconds(3600))
          log.append("\(clock.now)")
        }
      }
    }
    #expect(log.all == ["+3600.0 seconds"])
  }

  @Test func unstructuredTasksSleepAndYieldInVirtualTime() async throws {
    // `Task {}` and `Task.detached {}` do not inherit the body's executor preference, but the
    // driver runs their jobs on itself as task executor, which brings their sleeps and yields
    // along. Their clock reading happens a job before the sleep reaches the driver, so the
    // conversion is accurate to microseconds rather than exact (see the testing guide).
    let ((plainWoke, detachedWoke), real) = try await withVirtualTime { clock in
      try await timed {
        let plain = Task {
          await Task.yield()
          try await Task.sleep(for: .seconds(3600))
          return clock.now.offset
        }
        let detached = Task.detached {
          await Task.yield()
          try await ContinuousClock().sleep(for: .seconds(7200))
          return clock.now.offset
        }
        return (try await plain.value, try await detached.value)
      }
    }
    #expect(plainWoke > .seconds(3599.999) && plainWoke <= .seconds(3600))
    #expect(detachedWoke > .seconds(7199.999) && detachedWoke <= .seconds(7200))
    #expect(real < .seconds(60))
  }

  @Test func continuousAndSuspendingClockSleepsAreVirtual() async throws {
    let offsets = try await withVirtualTime { clock in
      var offsets: [Duration] = []
      try await ContinuousClock().sleep(until: .now + .seconds(3600))
      offsets.append(clock.now.offset)
      try await SuspendingClock().sleep(for: .milliseconds(1500))
      offsets.append(clock.now.offset)
      try await Task.sleep(until: .now + .seconds(7), clock: .continuous)
      offsets.append(clock.now.offset)
      return offsets
    }
    #expect(offsets == [.seconds(3600), .milliseconds(3601_500), .milliseconds(3608_500)])
  }

  @Test func cancellingAPlainTaskSleepCancelsItAtTheRightInstant() async throws {
    let log = EventLog()
    try await withVirtualTime { clock in
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
          do {
            try await Task.sleep(for: .seconds(100))
          } catch {
            log.append("cancelled at \(clock.now)")
          }
        }
        try await clock.sleep(for: .seconds(1))
        group.cancelAll()
      }
      log.append("done at \(clock.now)")
    }
    #expect(log.all == ["cancelled at +1.0 seconds", "done at +1.0 seconds"])
  }
}

extension RuntimeSleepEscapeTests {
  @Test func manyTasksOfPlainSleepsAreExactUnlessTheDriverStalls() async throws {
    // 200 tasks × 50 runtime sleeps of 1…97 s and 100 ms. Runtime sleeps are converted from real
    // deadlines (see `VirtualTimeDriver.virtualDelay(measured:)`): exact unless the driver thread
    // was preempted for a tenth of the unit between a task's clock reading and its sleep, and then
    // off by at most the stall (on a loaded 2-core machine, a few tasks in a run).
    let ends = try await withVirtualTime { clock in
      try await withThrowingTaskGroup(of: (Int, Duration).self) { group in
        for task in 0..<200 {
          group.addTask {
            for _ in 0..<50 {
              try await Task.sleep(for: .seconds(task % 97 + 1))
              try await Task.sleep(for: .milliseconds(100))
            }
            return (task, clock.now.offset)
          }
        }
        return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
      }
    }
    var exact = 0
    for (task, end) in ends {
      let expected = (Duration.seconds(task % 97 + 1) + .milliseconds(100)) * 50
      #expect(end > expected - .seconds(5) && end < expected + .seconds(5), "task \(task) ended at \(end)")
      if end == expected { exact += 1 }
    }
    #expect(ends.count == 200)
    #expect(exact >= 190, "only \(exact) of 200 tasks ended exactly")
  }
}

/// Runs `body` and returns its value with the real time it took.
func timed<T>(_ body: () async throws -> T) async rethrows -> (T, Duration) {
  let start = ContinuousClock.now
  let value = try await body()
  return (value, ContinuousClock.now - start)
}
