import AsyncTools
import AsyncToolsTesting
import Testing

private typealias Log = TimerFixtures.Log
private typealias LateClock = TimerFixtures.LateClock
private typealias TickFailure = TimerFixtures.TickFailure

/// Long enough never to pass during a test.
private let never = Duration.seconds(3600)

@Suite("PeriodicTimer and withTimer")
struct TimerTests {
  // MARK: The schedule (aiotools' scenarios, in virtual seconds)

  @Test(arguments: [PeriodicTimer.Schedule.fixedDelay, .fixedRate])
  func firstTickAtZeroThenOnePerInterval(schedule: PeriodicTimer.Schedule) async throws {
    // aiotools: "ticks at 0, 0.1, 0.2, 0.3 for a 0.35 s run".
    let ticks = Log<Duration>()
    let end = try await withVirtualTime { clock in
      try await withTimer(every: .ms(100), schedule: schedule, clock: clock) { _ in
        ticks.append(clock.now.offset)
      } body: {
        try await clock.sleep(for: .ms(350))
      }
      return clock.now.offset
    }
    #expect(ticks.all == [.ms(0), .ms(100), .ms(200), .ms(300)])
    #expect(end == .ms(350), "stopping a timer whose ticks have all finished takes no time")
  }

  @Test func longLivedTimerTicksUntilCancelled() async throws {
    let ticks = Log<Int>()
    let stoppedAt = try await withVirtualTime { clock in
      let timer = try PeriodicTimer.start(every: .seconds(1), clock: clock) { tick in
        ticks.append(tick.number)
      }
      try await clock.sleep(for: .ms(4500))
      #expect(!timer.isCancelled)
      await timer.cancel()
      #expect(timer.isCancelled)
      let stoppedAt = clock.now.offset
      try await clock.sleep(for: .seconds(10))  // nothing ticks any more
      return stoppedAt
    }
    #expect(ticks.all == [0, 1, 2, 3, 4])
    #expect(stoppedAt == .ms(4500))
  }

  @Test func tickKnowsItsNumberDueInstantAndInterval() async throws {
    let ticks = Log<PeriodicTimer.Tick<VirtualClock>>()
    try await withVirtualTime { clock in
      try await withTimer(every: .ms(250), clock: clock) { tick in
        ticks.append(tick)
      } body: {
        try await clock.sleep(for: .ms(600))
      }
    }
    #expect(ticks.all.map(\.number) == [0, 1, 2])
    #expect(ticks.all.map(\.scheduledAt.offset) == [.ms(0), .ms(250), .ms(500)])
    #expect(ticks.all.allSatisfy { $0.interval == .ms(250) })
  }

  @Test func initialDelayPostponesTheFirstTick() async throws {
    let ticks = Log<Duration>()
    try await withVirtualTime { clock in
      try await withTimer(every: .ms(100), initialDelay: .ms(100), clock: clock) { _ in
        ticks.append(clock.now.offset)
      } body: {
        try await clock.sleep(for: .ms(350))
      }
    }
    #expect(ticks.all == [.ms(100), .ms(200), .ms(300)])
  }

  @Test func fixedRateDoesNotDriftOverTenThousandTicksWhileFixedDelayDoes() async throws {
    // A real clock wakes sleepers a little late. Model that exactly: every sleeper wakes 1 ms
    // after its deadline. Fixed rate: tick n still *falls due* at n × 100 ms and starts 1 ms
    // late, the lateness never accumulates. Fixed delay: each tick is due 100 ms after the
    // previous one *started*, so tick n starts at n × 101 ms — 10 s behind after 10,000 ticks.
    let count = 10_000
    for schedule in [PeriodicTimer.Schedule.fixedRate, .fixedDelay] {
      let starts = Log<(number: Int, due: Duration, started: Duration)>()
      try await withVirtualTime { virtual in
        let clock = LateClock.late(by: .ms(1), virtual)
        try await withTimer(every: .ms(100), schedule: schedule, clock: clock) { tick in
          starts.append((tick.number, tick.scheduledAt.offset, virtual.now.offset))
        } body: {
          // Until tick 9,999 has started under either schedule.
          try await virtual.sleep(for: .ms(101) * (count - 1) + .ms(50))
        }
      }
      let ticks = Array(starts.all.prefix(count))
      #expect(ticks.map(\.number) == Array(0..<count))
      let wrong = ticks.filter { tick in
        let n = tick.number
        switch schedule {
        case .fixedRate:
          return tick.due != .ms(100) * n || tick.started != (n == 0 ? .zero : .ms(100) * n + .ms(1))
        default:
          return tick.started != .ms(101) * n || tick.due != (n == 0 ? .zero : .ms(101) * n - .ms(1))
        }
      }
      #expect(
        wrong.isEmpty, "\(schedule): \(wrong.count) ticks off schedule, first: \(String(describing: wrong.first))")
    }
  }

  // MARK: Missed ticks (fixed rate)

  @Test func missedTicksBurstSkipOrDelayAfterAStall() async throws {
    // The process stalls from 150 ms to 420 ms: the sleep until 200 ms wakes at 420 ms.
    func run(_ schedule: PeriodicTimer.Schedule) async throws -> [String] {
      let ticks = Log<String>()
      try await withVirtualTime { virtual in
        let clock = LateClock.stalled(during: .ms(150) ... .ms(420), virtual)
        try await withTimer(every: .ms(100), schedule: schedule, clock: clock) { tick in
          ticks.append("\(tick.number)@\(virtual.now.offset.milliseconds)")
        } body: {
          try await virtual.sleep(for: .ms(650))
        }
      }
      return ticks.all
    }
    let burst = ["0@0", "1@100", "2@420", "3@420", "4@420", "5@500", "6@600"]
    #expect(try await run(.fixedRate) == burst)
    #expect(try await run(.fixedRate(missedTicks: .burst)) == burst)
    #expect(try await run(.fixedRate(missedTicks: .skip)) == ["0@0", "1@100", "2@420", "5@500", "6@600"])
    #expect(try await run(.fixedRate(missedTicks: .delay)) == ["0@0", "1@100", "2@420", "3@520", "4@620"])
    #expect(try await run(.fixedDelay) == ["0@0", "1@100", "2@420", "3@520", "4@620"])
  }

  // MARK: Delay policies

  @Test func overlapLetsSlowTicksAccumulateAndStopCancelsAndAwaitsThemAll() async throws {
    let events = Log<String>()
    let end = try await withVirtualTime { clock in
      try await withTimer(every: .ms(100), policy: .overlap, clock: clock) { tick in
        events.append("start \(tick.number)@\(clock.now.offset.milliseconds)")
        do {
          try await clock.sleep(for: .ms(260))
          events.append("done \(tick.number)@\(clock.now.offset.milliseconds)")
        } catch {
          await TimerFixtures.cleanup(for: .ms(20), on: clock)
          events.append("cleaned \(tick.number)@\(clock.now.offset.milliseconds)")
          throw error
        }
      } body: {
        try await clock.sleep(for: .ms(350))
      }
      events.append("stopped@\(clock.now.offset.milliseconds)")
      return clock.now.offset
    }
    #expect(
      events.all == [
        "start 0@0", "start 1@100", "start 2@200", "done 0@260", "start 3@300",
        "cleaned 1@370", "cleaned 2@370", "cleaned 3@370", "stopped@370",
      ])
    #expect(end == .ms(370))
  }

  @Test func cancelPreviousWithSlowCleanupDelaysTheFixedDelaySchedule() async throws {
    // aiotools: 0.05 s cleanup, 0.1 s interval → ticks at 0, 0.15, 0.30, 0.45.
    let ticks = Log<Duration>()
    let end = try await withVirtualTime { clock in
      try await withTimer(every: .ms(100), policy: .cancelPrevious, schedule: .fixedDelay, clock: clock) { _ in
        ticks.append(clock.now.offset)
        do { try await clock.sleep(for: never) } catch { await TimerFixtures.cleanup(for: .ms(50), on: clock) }
      } body: {
        try await clock.sleep(for: .ms(500))
      }
      return clock.now.offset
    }
    #expect(ticks.all == [.ms(0), .ms(150), .ms(300), .ms(450)])
    #expect(end == .ms(550), "stopping waits for the last tick's 50 ms cleanup")
  }

  @Test func cancelPreviousOnAFixedRateReturnsToTheGrid() async throws {
    let ticks = Log<String>()
    try await withVirtualTime { clock in
      try await withTimer(every: .ms(100), policy: .cancelPrevious, schedule: .fixedRate, clock: clock) { tick in
        ticks.append("\(tick.number)@\(clock.now.offset.milliseconds)")
        do { try await clock.sleep(for: never) } catch { await TimerFixtures.cleanup(for: .ms(50), on: clock) }
      } body: {
        try await clock.sleep(for: .ms(500))
      }
    }
    #expect(ticks.all == ["0@0", "1@150", "2@250", "3@350", "4@450"])
  }

  @Test func cancelPreviousNeverRunsTwoTicksAtOnce() async throws {
    let events = Log<String>()
    try await withVirtualTime { clock in
      try await withTimer(every: .ms(100), policy: .cancelPrevious, schedule: .fixedDelay, clock: clock) { tick in
        events.append("start \(tick.number)")
        do { try await clock.sleep(for: never) } catch { await TimerFixtures.cleanup(for: .ms(10), on: clock) }
        events.append("end \(tick.number)")
      } body: {
        try await clock.sleep(for: .ms(250))
      }
    }
    #expect(events.all == ["start 0", "end 0", "start 1", "end 1", "start 2", "end 2"])
  }

  @Test func aTickThatSwallowsItsCancellationDoesNotKillACancelPreviousTimer() async throws {
    // aiotools' CANCEL timer dies with InvalidStateError here. Ours waits for the tick to return.
    let ticks = Log<Duration>()
    let errors = Log<String>()
    try await withVirtualTime { clock in
      try await withTimer(
        every: .ms(100), policy: .cancelPrevious, schedule: .fixedDelay, clock: clock,
        onError: { error, _ in errors.append("\(error)") }
      ) { _ in
        ticks.append(clock.now.offset)
        // Ignores cancellation entirely: 170 ms of work that cannot be interrupted, then returns.
        await TimerFixtures.cleanup(for: .ms(170), on: clock)
      } body: {
        try await clock.sleep(for: .ms(600))
      }
    }
    #expect(ticks.all == [.ms(0), .ms(170), .ms(340), .ms(510)])
    #expect(errors.all.isEmpty)
  }

  @Test func aTickThatCatchesItsCancellationAndReturnsKeepsTheScheduleGoing() async throws {
    let ticks = Log<Duration>()
    try await withVirtualTime { clock in
      try await withTimer(every: .ms(100), policy: .cancelPrevious, schedule: .fixedDelay, clock: clock) { _ in
        ticks.append(clock.now.offset)
        try? await clock.sleep(for: never)  // swallowed: the tick returns normally when cancelled
      } body: {
        try await clock.sleep(for: .ms(350))
      }
    }
    #expect(ticks.all == [.ms(0), .ms(100), .ms(200), .ms(300)])
  }

  @Test(arguments: [PeriodicTimer.Schedule.fixedDelay, .fixedRate])
  func skipWhileRunningSkipsExactlyTheTicksDueWhileOneRuns(schedule: PeriodicTimer.Schedule) async throws {
    // Tick 0 takes 250 ms: ticks 1 (100 ms) and 2 (200 ms) fall due while it runs and are
    // skipped; tick 3 (300 ms) runs. Tick 3 takes 150 ms: tick 4 (400 ms) is skipped.
    let events = Log<String>()
    try await withVirtualTime { clock in
      try await withTimer(every: .ms(100), policy: .skipWhileRunning, schedule: schedule, clock: clock) { tick in
        events.append("\(tick.number)@\(clock.now.offset.milliseconds)")
        let duration: Duration = tick.number == 0 ? .ms(250) : tick.number == 3 ? .ms(150) : .ms(50)
        try await clock.sleep(for: duration)
      } body: {
        try await clock.sleep(for: .ms(750))
      }
    }
    #expect(events.all == ["0@0", "3@300", "5@500", "6@600", "7@700"])
  }

  // MARK: Bad arguments

  @Test(arguments: [Duration.zero, .ms(-100), .seconds(-1)])
  func aNonPositiveIntervalIsRejected(interval: Duration) async throws {
    let error = #expect(throws: AsyncToolsError.self) {
      _ = try PeriodicTimer.start(every: interval) { _ in }
    }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains("interval") == true)

    let bodyRan = Log<Bool>()
    let scoped = await #expect(throws: AsyncToolsError.self) {
      try await withTimer(every: interval) { _ in } body: { bodyRan.append(true) }
    }
    #expect(scoped?.code == .invalidArgument)
    #expect(scoped?.message.contains("interval") == true)
    #expect(bodyRan.all.isEmpty, "the body does not run when the arguments are invalid")
  }

  @Test func aNegativeInitialDelayIsRejected() async throws {
    let error = #expect(throws: AsyncToolsError.self) {
      _ = try PeriodicTimer.start(every: .seconds(1), initialDelay: .ms(-1)) { _ in }
    }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains("initialDelay") == true)
    let scoped = await #expect(throws: AsyncToolsError.self) {
      try await withTimer(every: .seconds(1), initialDelay: .ms(-1)) { _ in } body: {}
    }
    #expect(scoped?.code == .invalidArgument)
  }
}

@Suite("Timers guide examples")
struct TimersGuideTests {
  @Test func evictsEveryThirtySeconds() async throws {
    let evictions = TimerFixtures.Log<Int>()
    try await withVirtualTime { clock in
      try await withTimer(every: .seconds(30), clock: clock) { tick in evictions.append(tick.number) } body: {
        try await clock.sleep(for: .seconds(3599))
      }
    }
    #expect(evictions.all.count == 120)
  }
}

@Suite("PeriodicTimer stopped from its own tick")
struct TimerSelfStopTests {
  @Test func aTickCanStopItsTimerWithoutAwaitingTheCancel() async throws {
    let events = TimerFixtures.Log<String>()
    try await withVirtualTime { clock in
      let box = TimerFixtures.Log<PeriodicTimer>()
      let stopper = TimerFixtures.Log<Task<Void, Never>>()
      let timer = try PeriodicTimer.start(every: .ms(100), clock: clock) { tick in
        events.append("tick \(tick.number)")
        if tick.number == 2, let timer = box.all.first {
          stopper.append(Task { await timer.cancel() })
          do { try await clock.sleep(for: never) } catch { events.append("tick 2 cancelled") }
        }
      }
      box.append(timer)
      try await clock.sleep(for: .ms(250))
      await stopper.all.first?.value
      events.append("stopped@\(clock.now.offset.milliseconds)")
      try await clock.sleep(for: .seconds(1))
    }
    #expect(events.all == ["tick 0", "tick 1", "tick 2", "tick 2 cancelled", "stopped@250"])
  }
}
