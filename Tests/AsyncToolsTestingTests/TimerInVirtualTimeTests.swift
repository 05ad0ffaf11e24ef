import AsyncTools
import Synchronization
import Testing

@testable import AsyncToolsTesting

/// Issue #13 item 2: a `PeriodicTimer` starts each tick as an immediate child; ticks that yield
/// used to resume off the driver and leave virtual time.
@Suite struct TimerInVirtualTimeTests {
  @Test func cancelPreviousTicksThatYieldRunAtExactInstants() async throws {
    let log = EventLog()
    try await withVirtualTime { clock in
      let timer = try PeriodicTimer.start(every: .milliseconds(100), policy: .cancelPrevious, clock: clock) { tick in
        await Task.yield()
        log.append("tick \(tick.number) at \(clock.now)")
        try await clock.sleep(for: .seconds(1))  // always cut short by the next tick
      }
      try await clock.sleep(for: .milliseconds(250))
      await timer.cancel()
    }
    #expect(
      log.all == ["tick 0 at +0.0 seconds", "tick 1 at +0.1 seconds", "tick 2 at +0.2 seconds"])
  }

  @Test func overlappingTicksThatYieldAllFinish() async throws {
    let log = EventLog()
    try await withVirtualTime { clock in
      let timer = try PeriodicTimer.start(every: .seconds(1), policy: .overlap, clock: clock) { tick in
        await Task.yield()
        try await clock.sleep(for: .milliseconds(1500))
        await Task.yield()
        log.append("\(tick.number) finished at \(clock.now)")
      }
      // Ticks 0…9 start at 0…9 s and finish 1.5 s later; cancel once the tenth has finished.
      try await clock.sleep(for: .milliseconds(10_600))
      await timer.cancel()
    }
    #expect(log.all == (0..<10).map { "\($0) finished at +\(Double($0) + 1.5) seconds" })
  }

  @Test func timerOnTheDefaultClockWithRuntimeSleepsInTicks() async throws {
    let log = EventLog()
    try await withVirtualTime { clock in
      let timer = try PeriodicTimer.start(every: .seconds(1), policy: .cancelPrevious, clock: clock) { tick in
        await Task.yield()
        log.append("tick \(tick.number) at \(clock.now)")
        try await Task.sleep(for: .seconds(5))  // a runtime sleep, cut short by the next tick
        log.append("never")
      }
      try await Task.sleep(for: .milliseconds(2_500))
      await timer.cancel()
    }
    #expect(log.all == ["tick 0 at +0.0 seconds", "tick 1 at +1.0 seconds", "tick 2 at +2.0 seconds"])
  }
}
