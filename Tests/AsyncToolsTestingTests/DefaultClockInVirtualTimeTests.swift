import AsyncTools
import Synchronization
import Testing

@testable import AsyncToolsTesting

private struct Boom: Error {}

/// Every AsyncTools API whose `clock:` is left at its default runs on the scope's virtual time
/// inside `withVirtualTime`, `now` readings included (issue #13 item 3).
@Suite struct DefaultClockInVirtualTimeTests {
  @Test func defaultClockFollowsTheScope() async throws {
    let (inside, outside) = try await withVirtualTime(startingAt: .init(offset: .seconds(100))) { clock in
      let start = DefaultClock().now.offset
      try await DefaultClock().sleep(for: .seconds(3600))
      return ([start, DefaultClock().now.offset, clock.now.offset], DefaultClock())
    }
    #expect(inside == [.seconds(100), .seconds(3700), .seconds(3700)])
    // A DefaultClock created in the scope stays bound to it; one created outside is real time.
    #expect(outside.now.offset == .seconds(3700))
    let real = DefaultClock().now.offset
    let continuous = ContinuousClock().systemEpoch.duration(to: .now)
    #expect(real - continuous < .seconds(1) && continuous - real < .seconds(1))
  }

  @Test func withTimeoutAndMoveOnAfterOnTheDefaultClock() async throws {
    let log = EventLog()
    try await withVirtualTime { clock in
      do {
        try await withTimeout(.seconds(1)) { try await Task.sleep(for: .seconds(10)) }
        log.append("no timeout")
      } catch let error as TimeoutError {
        log.append("timed out at \(clock.now), deadline \(error.deadline)")
      }
      let value: Int? = try await moveOnAfter(.seconds(5)) {
        try await DefaultClock().sleep(for: .seconds(3600))
        return 1
      }
      log.append("moved on with \(String(describing: value)) at \(clock.now)")
    }
    #expect(
      log.all == [
        "timed out at +1.0 seconds, deadline +1.0 seconds", "moved on with nil at +6.0 seconds",
      ])
  }

  @Test func instantsAndTimeoutsPrintExactly() async throws {
    // `Duration`'s own description goes through `Double`: it prints 3611 s as
    // "3611.0000000000005 seconds". The instants themselves were exact; now their text is too.
    let error = try await withVirtualTime { clock -> TimeoutError? in
      try await clock.sleep(for: .seconds(3600))
      do {
        try await withTimeout(.seconds(11)) { try await Task.sleep(for: .seconds(60)) }
        return nil
      } catch let error as TimeoutError {
        return error
      }
    }
    let deadline = try #require(error?.deadline as? DefaultClock.Instant)
    #expect(deadline.offset == .seconds(3611))
    #expect(deadline.description == "+3611.0 seconds")
    #expect(error?.description == "timed out after 11.0 seconds (deadline +3611.0 seconds)")
    #expect(VirtualClock.Instant(offset: .seconds(3601)).description == "+3601.0 seconds")
    #expect(VirtualClock.Instant(offset: .milliseconds(3601_500)).description == "+3601.5 seconds")
    #expect(VirtualClock.Instant(offset: Duration(attoseconds: 1)).description == "+0.000000000000000001 seconds")
    #expect(VirtualClock.Instant(offset: .milliseconds(-1500)).description == "-1.5 seconds")
    #expect(VirtualClock.Instant(offset: .zero).description == "+0.0 seconds")
    let late = DefaultClock.Instant(offset: .seconds(1_700_000_000) + .nanoseconds(1))
    #expect(late.description == "+1700000000.000000001 seconds")
  }

  @Test func taskScopeTimeoutOnTheDefaultClock() async throws {
    let end = try await withVirtualTime { clock in
      await #expect(throws: TimeoutError.self) {
        try await withTaskScope(timeout: .seconds(30)) { scope in
          scope.addTask { try await Task.sleep(for: .seconds(3600)) }
        }
      }
      return clock.now.offset
    }
    #expect(end == .seconds(30))
  }

  @Test func cacheExpiryOnTheDefaultClock() async throws {
    let computed = try await withVirtualTime { clock in
      let computations = EventLog()
      let cache = try AsyncLRUCache<String, Int>(expireAfter: .seconds(60))
      let load: @Sendable () async throws -> Int = {
        computations.append("\(clock.now)")
        return 1
      }
      _ = try await cache.value(forKey: "k", orCompute: load)
      try await clock.sleep(for: .seconds(59))
      _ = try await cache.value(forKey: "k", orCompute: load)  // hit
      try await clock.sleep(for: .seconds(2))
      _ = try await cache.value(forKey: "k", orCompute: load)  // expired at 60 s
      try await Task.sleep(for: .seconds(7200))
      _ = try await cache.value(forKey: "k", orCompute: load)  // expired again
      return computations.all
    }
    #expect(computed == ["+0.0 seconds", "+61.0 seconds", "+7261.0 seconds"])
  }

  @Test func memoizeExpiryOnTheDefaultClock() async throws {
    let computed = try await withVirtualTime { clock in
      let computations = EventLog()
      let square = try memoize(expireAfter: .seconds(60)) { (x: Int) in
        computations.append("\(x) at \(clock.now)")
        return x * x
      }
      _ = try await square(3)
      try await Task.sleep(for: .seconds(30))
      _ = try await square(3)
      try await Task.sleep(for: .seconds(31))
      _ = try await square(3)
      return computations.all
    }
    #expect(computed == ["3 at +0.0 seconds", "3 at +61.0 seconds"])
  }

  @Test func periodicTimerAndWithTimerOnTheDefaultClock() async throws {
    let log = EventLog()
    try await withVirtualTime { _ in
      let timer = try PeriodicTimer.start(every: .seconds(1)) { tick in
        log.append("timer \(tick.number) due \(tick.scheduledAt)")
      }
      try await Task.sleep(for: .milliseconds(2_500))
      await timer.cancel()
      try await withTimer(every: .seconds(10)) { tick in
        log.append("withTimer \(tick.number) due \(tick.scheduledAt)")
      } body: {
        try await Task.sleep(for: .seconds(25))
      }
      for await tick in try PeriodicTimer.ticks(every: .seconds(100)) {
        log.append("ticks \(tick.number) due \(tick.scheduledAt)")
        if tick.number == 1 { break }
      }
    }
    #expect(
      log.all == [
        "timer 0 due +0.0 seconds", "timer 1 due +1.0 seconds", "timer 2 due +2.0 seconds",
        "withTimer 0 due +2.5 seconds", "withTimer 1 due +12.5 seconds", "withTimer 2 due +22.5 seconds",
        "ticks 0 due +27.5 seconds", "ticks 1 due +127.5 seconds",
      ])
  }

  @Test func supervisorBackoffOnTheDefaultClock() async throws {
    let starts = try await withVirtualTime { clock in
      let starts = EventLog()
      try await withSupervisor(
        intensity: RestartIntensity(maxRestarts: 10, within: .seconds(3600)),
        backoff: Backoff(initial: .seconds(1), maximum: .seconds(60), jitter: 0),
        errorHandler: { _ in }
      ) { supervisor in
        supervisor.addChild(name: "flaky", restart: .onFailure) {
          starts.append("\(clock.now)")
          if starts.all.count < 4 { throw Boom() }
        }
      }
      return starts.all
    }
    // Restarted after 1, 2 and 4 s of backoff.
    #expect(starts == ["+0.0 seconds", "+1.0 seconds", "+3.0 seconds", "+7.0 seconds"])
  }

  @Test func persistentGroupCloseTimeoutOnTheDefaultClock() async throws {
    let (finished, end) = try await withVirtualTime { clock in
      let group = PersistentTaskGroup()
      _ = try group.addTask { try await Task.sleep(for: .seconds(3600)) }
      _ = try group.addTask { try await Task.sleep(for: .seconds(10)) }
      let finished = try await group.close(timeout: .seconds(30))
      return (finished, clock.now.offset)
    }
    #expect(!finished)
    #expect(end == .seconds(30))
  }
}
