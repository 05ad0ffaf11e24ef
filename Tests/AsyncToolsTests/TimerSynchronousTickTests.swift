import AsyncTools
import AsyncToolsTesting
import Synchronization
import Testing

private typealias Log = TimerFixtures.Log
private typealias TickFailure = TimerFixtures.TickFailure

/// The identity of the task running the caller (its address; stable while the task lives).
private func currentTaskID() -> UInt {
  withUnsafeCurrentTask { task in task.map { UInt(bitPattern: $0.hashValue) } ?? 0 }
}

/// A `VirtualClock` that records which task sleeps on it: a timer's loop task, which lives as long as the timer, so no
/// other task can have its identity meanwhile.
private struct SleeperRecordingClock: Clock {
  typealias Instant = VirtualClock.Instant
  let base: VirtualClock
  let sleepers: Log<UInt>

  var now: Instant { base.now }
  var minimumResolution: Duration { .zero }

  func sleep(until deadline: Instant, tolerance: Duration?) async throws {
    sleepers.append(currentTaskID())
    try await base.sleep(until: deadline, tolerance: tolerance)
  }
}

/// A tick body without `await` picks `PeriodicTimer.start`'s synchronous overload, which runs each tick inline on
/// the timer's task instead of in a child task per tick (issue #16 item 9), with the same schedule, policies, error
/// handling and stop.
@Suite("PeriodicTimer with a synchronous tick body")
struct TimerSynchronousTickTests {
  @Test func aSynchronousBodyRunsEveryTickOnTheTimersOwnTask() async throws {
    let tasks = Log<UInt>()
    let sleepers = Log<UInt>()
    try await withVirtualTime { base in
      let clock = SleeperRecordingClock(base: base, sleepers: sleepers)
      let timer = try PeriodicTimer.start(every: .seconds(1), clock: clock) { _ in tasks.append(currentTaskID()) }
      try await base.sleep(for: .ms(4500))
      await timer.cancel()
    }
    #expect(tasks.all.count == 5)
    // The loop task sleeps between ticks and lives until the timer stops: a tick with its identity ran on it.
    #expect(Set(sleepers.all).count == 1)
    #expect(
      Set(tasks.all) == Set(sleepers.all), "ticks ran on \(Set(tasks.all)), the timer's task is \(Set(sleepers.all))")
  }

  @Test func anAsynchronousBodyStillGetsATaskPerTickSoThatSlowTicksOverlap() async throws {
    // The contrast that shows the test above can tell the two apart: ticks that suspend are alive together, each in
    // its own task.
    let tasks = Log<UInt>()
    let events = Log<String>()
    let sleepers = Log<UInt>()
    try await withVirtualTime { base in
      let clock = SleeperRecordingClock(base: base, sleepers: Log<UInt>())
      let loop = SleeperRecordingClock(base: base, sleepers: sleepers)
      let timer = try PeriodicTimer.start(every: .seconds(1), clock: loop) { tick in
        tasks.append(currentTaskID())
        events.append("start \(tick.number)")
        try await clock.sleep(for: .seconds(10))
      }
      try await base.sleep(for: .ms(4500))
      await timer.cancel()
    }
    #expect(tasks.all.count == 5)
    #expect(Set(tasks.all).count == 5, "ticks alive together run in distinct tasks: \(tasks.all)")
    #expect(Set(tasks.all).isDisjoint(with: Set(sleepers.all)), "no tick ran on the timer's task")
    #expect(events.all == (0..<5).map { "start \($0)" })
  }

  @Test(arguments: [PeriodicTimer.DelayPolicy.overlap, .skipWhileRunning, .cancelPrevious])
  func aSynchronousBodyTicksOnTheSameScheduleUnderEveryPolicy(policy: PeriodicTimer.DelayPolicy) async throws {
    let ticks = Log<String>()
    try await withVirtualTime { clock in
      let timer = try PeriodicTimer.start(every: .ms(100), policy: policy, clock: clock) { tick in
        ticks.append("\(tick.number)@\(clock.now.offset.milliseconds)")
      }
      try await clock.sleep(for: .ms(350))
      await timer.cancel()
    }
    #expect(ticks.all == ["0@0", "1@100", "2@200", "3@300"])
  }

  @Test func aSynchronousBodysErrorsReachOnErrorOncePerFailingTickAndTheTimerGoesOn() async throws {
    let reported = Log<Int>()
    let ran = Log<Int>()
    try await withVirtualTime { clock in
      let timer = try PeriodicTimer.start(
        every: .ms(100), clock: clock, onError: { error, tick in reported.append((error as! TickFailure).id) }
      ) { tick in
        ran.append(tick.number)
        if tick.number % 2 == 1 { throw TickFailure(id: tick.number) }
      }
      try await clock.sleep(for: .ms(550))
      await timer.cancel()
    }
    #expect(ran.all == [0, 1, 2, 3, 4, 5])
    #expect(reported.all == [1, 3, 5])
  }

  @Test func aSynchronousBodyThatThrowsCancellationErrorWhileTheTimerRunsIsReported() async throws {
    // Only the CancellationError of a cancelled tick is not a failure; this timer is not cancelled.
    let reported = Log<Int>()
    try await withVirtualTime { clock in
      let timer = try PeriodicTimer.start(
        every: .ms(100), clock: clock,
        onError: { error, tick in if error is CancellationError { reported.append(tick.number) } }
      ) { _ in throw CancellationError() }
      try await clock.sleep(for: .ms(250))
      await timer.cancel()
    }
    #expect(reported.all == [0, 1, 2])
  }

  @Test func aThousandTimersAt10msDeliverEveryTickWithEitherBody() async throws {
    // The benchmark's workload (timers-1000x10ms) in virtual time, where delivery is exact: one second, so each timer
    // ticks at 0, 10, …, 1000 ms — 101 ticks — whether its body is synchronous or asynchronous.
    let sync = Atomic<Int>(0)
    let async = Atomic<Int>(0)
    let counts = try await withVirtualTime { clock in
      var timers: [PeriodicTimer] = []
      for _ in 0..<500 {
        timers.append(try PeriodicTimer.start(every: .ms(10), clock: clock) { _ in sync.add(1, ordering: .relaxed) })
        timers.append(
          try PeriodicTimer.start(every: .ms(10), clock: clock) { _ async in async.add(1, ordering: .relaxed) })
      }
      try await clock.sleep(for: .ms(1005))
      let counts = (sync.load(ordering: .relaxed), async.load(ordering: .relaxed))
      for timer in timers { await timer.cancel() }
      return counts
    }
    #expect(counts.0 == 500 * 101)
    #expect(counts.1 == 500 * 101)
  }
}
