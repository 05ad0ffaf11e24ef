#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif
import AsyncTools
import AsyncToolsTestSupport
import AsyncToolsTesting
import Synchronization
import Testing

/// Random timers, in virtual time: random policy, schedule, interval, tick durations, failures
/// (in the tick or in its cleanup), slow cleanups, ticks that swallow their cancellation, and a
/// random stop time, through either form. Scale with `ASYNCTOOLS_STRESS_ITERATIONS`.
@Suite("PeriodicTimer stress")
struct TimerStressTests {
  static let iterations: Int = Stress.iterations(default: 150)

  /// What the ticks did, for the invariants.
  struct Stats {
    var started: [Int: Int] = [:]
    var finished: [Int: Int] = [:]
    var running = 0
    var maxRunning = 0
    var thrown: Set<Int> = []
    var reported: [Int: Int] = [:]
  }

  /// How tick `number` behaves; a pure function of the seed and the number.
  struct Plan {
    var duration: Duration
    var fails: Bool
    var failsInCleanup: Bool
    var cleanup: Duration
    var swallows: Bool

    init(seed: UInt64, number: Int, interval: Duration) {
      var random = TimerFixtures.SeededRandom(seed: seed &* 0x100_0000_01B3 &+ UInt64(number))
      duration = interval * Double.random(in: 0...3, using: &random)
      fails = Int.random(in: 0..<5, using: &random) == 0
      failsInCleanup = Int.random(in: 0..<6, using: &random) == 0
      cleanup = Bool.random(using: &random) ? .zero : interval * Double.random(in: 0...2, using: &random)
      swallows = Int.random(in: 0..<4, using: &random) == 0
    }
  }

  @Test func randomTimersKeepEveryInvariant() async throws {
    let baseSeed = Stress.seed()
    for iteration in 0..<Self.iterations {
      let seed = baseSeed &+ UInt64(iteration)
      try await runOnce(seed: seed)
    }
  }

  func runOnce(seed: UInt64) async throws {
    var random = TimerFixtures.SeededRandom(seed: seed)
    let policy = [PeriodicTimer.DelayPolicy.overlap, .cancelPrevious, .skipWhileRunning].randomElement(using: &random)!
    let schedule = [
      PeriodicTimer.Schedule.fixedDelay, .fixedRate, .fixedRate(missedTicks: .skip), .fixedRate(missedTicks: .delay),
    ].randomElement(using: &random)!
    let interval = Duration.milliseconds(Int.random(in: 10...100, using: &random))
    let initialDelay = Bool.random(using: &random) ? .zero : interval * Double.random(in: 0...2, using: &random)
    let stopAt = Duration.milliseconds(Int.random(in: 0...2000, using: &random))
    let structured = Bool.random(using: &random)
    let context = Comment(
      rawValue: "\(Stress.replay(seed: seed, iterations: 1)): \(policy), \(schedule), every \(interval), "
        + "initialDelay \(initialDelay), "
        + "stop at \(stopAt), \(structured ? "withTimer" : "PeriodicTimer")")

    let stats = Locked(Stats())
    try await withVirtualTime { clock in
      let onError: @Sendable (any Error, PeriodicTimer.Tick<VirtualClock>) -> Void = { error, _ in
        guard let failure = error as? TimerFixtures.TickFailure else {
          Issue.record("unexpected error \(error); \(context.rawValue)")
          return
        }
        stats.withLock { $0.reported[failure.id, default: 0] += 1 }
      }
      let tick: @Sendable (PeriodicTimer.Tick<VirtualClock>) async throws -> Void = { tick in
        let plan = Plan(seed: seed, number: tick.number, interval: interval)
        stats.withLock { stats in
          stats.started[tick.number, default: 0] += 1
          stats.running += 1
          stats.maxRunning = max(stats.maxRunning, stats.running)
        }
        defer {
          stats.withLock { stats in
            stats.finished[tick.number, default: 0] += 1
            stats.running -= 1
          }
        }
        do {
          try await clock.sleep(for: plan.duration)
        } catch {
          if plan.cleanup > .zero { await TimerFixtures.cleanup(for: plan.cleanup, on: clock) }
          if plan.failsInCleanup {
            stats.withLock { _ = $0.thrown.insert(tick.number) }
            throw TimerFixtures.TickFailure(id: tick.number)
          }
          if plan.swallows { return }
          throw error
        }
        if plan.fails {
          stats.withLock { _ = $0.thrown.insert(tick.number) }
          throw TimerFixtures.TickFailure(id: tick.number)
        }
      }

      if structured {
        try await withTimer(
          every: interval, initialDelay: initialDelay, policy: policy, schedule: schedule, clock: clock,
          onError: onError, tick
        ) {
          try await clock.sleep(for: stopAt)
        }
      } else {
        let timer = try PeriodicTimer.start(
          every: interval, initialDelay: initialDelay, policy: policy, schedule: schedule, clock: clock,
          onError: onError, tick)
        try await clock.sleep(for: stopAt)
        await timer.cancel()
      }
      let atStop = stats.withLock { $0 }
      #expect(atStop.running == 0, "a tick was still running after the timer stopped; \(context)")
      // Nothing starts later either.
      try await clock.sleep(for: interval * 10)
      let later = stats.withLock { $0 }
      #expect(later.started == atStop.started, "a tick started after the timer stopped; \(context)")
    }

    let final = stats.withLock { $0 }
    #expect(final.started.values.allSatisfy { $0 == 1 }, "a tick number started twice; \(context)")
    #expect(final.finished == final.started, "every started tick finishes exactly once; \(context)")
    #expect(Set(final.reported.keys) == final.thrown, "every error is reported; \(context)")
    #expect(final.reported.values.allSatisfy { $0 == 1 }, "no error is reported twice; \(context)")
    if policy != .overlap {
      #expect(final.maxRunning <= 1, "\(policy) ran two ticks at once; \(context)")
    }
    if stopAt >= initialDelay + interval {
      #expect(final.started[0] == 1, "the first tick ran; \(context)")
    }
  }
}
