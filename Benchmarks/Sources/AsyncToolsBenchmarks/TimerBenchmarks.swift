import AsyncAlgorithms
import AsyncTools
import Foundation
import Synchronization

/// The ticks of one timer.
final class TickCounter: Sendable {
  let count = Atomic<Int>(0)
}

/// The ticks of many timers, counted per timer, so a run can show that every tick was delivered.
final class TickLedger: Sendable {
  /// Ticks delivered, per timer.
  private let counts: [TickCounter]
  /// When each timer's tick 0 was due (nanoseconds on `ContinuousClock`'s epoch): the grid a timer ticks on.
  private let origins: Mutex<[Int64?]>

  init(timers: Int) {
    counts = (0..<timers).map { _ in TickCounter() }
    origins = Mutex(Array(repeating: nil, count: timers))
  }

  func setOrigin(_ timer: Int, _ instant: ContinuousClock.Instant) {
    origins.withLock { $0[timer] = instant.nanosecondsSinceEpoch }
  }

  func tick(_ timer: Int) { counts[timer].count.add(1, ordering: .relaxed) }

  /// The figures of a run that ends at `end`: a tick is *due* when its deadline is at least `grace` before `end`
  /// (a tick due later may still be on its way); *missing* counts the due ticks not delivered, over every timer;
  /// `ticks_delivered_ratio` is delivered ÷ due (a little above 1 when ticks of the grace period came in).
  func figures(end: ContinuousClock.Instant, interval: Duration, grace: Duration) -> [String: Double] {
    let origins = origins.withLock { $0 }
    let cutoff = end.nanosecondsSinceEpoch - grace.nanoseconds
    var due = 0
    var delivered = 0
    var missing = 0
    for (timer, origin) in origins.enumerated() {
      let count = counts[timer].count.load(ordering: .relaxed)
      let dueHere = origin.map { cutoff < $0 ? 0 : Int((cutoff - $0) / interval.nanoseconds) + 1 } ?? 0
      due += dueHere
      delivered += count
      missing += max(0, dueHere - count)
    }
    return [
      "ticks_due": Double(due), "ticks_missing": Double(missing),
      "ticks_delivered_ratio": due == 0 ? 1 : Double(delivered) / Double(due),
    ]
  }
}

extension ContinuousClock.Instant {
  var nanosecondsSinceEpoch: Int64 { ContinuousClock().systemEpoch.duration(to: self).nanoseconds }
}

/// Tick lateness samples (nanoseconds) of one timer.
final class LatenessLog: Sendable {
  let samples = Mutex<[Int64]>([])
  func append(_ lateness: Duration) { samples.withLock { $0.append(lateness.nanoseconds) } }
  var p99: Double {
    let sorted = samples.withLock { $0 }.sorted()
    guard !sorted.isEmpty else { return 0 }
    return Double(sorted[min(sorted.count - 1, sorted.count * 99 / 100)])
  }
  var mean: Double {
    let all = samples.withLock { $0 }
    return all.isEmpty ? 0 : Double(all.reduce(0, +)) / Double(all.count)
  }
}

/// 1,000; `ASYNCTOOLS_BENCH_TIMERS` overrides it for profiling (`valgrind --tool=callgrind` runs far slower, so
/// a thousand timers at 10 ms would only ever burst to catch up).
private let timerCount = ProcessInfo.processInfo.environment["ASYNCTOOLS_BENCH_TIMERS"].flatMap(Int.init) ?? 1_000
/// A tick due less than this before the end of a run may still be on its way: it is not counted as due.
private let grace = Duration.milliseconds(20)
private let interval = Duration.milliseconds(10)
private let timerFigureKeys = ["ticks_due", "ticks_missing", "ticks_delivered_ratio"]

/// 1,000 real timers at 10 ms (issue target: every tick delivered, CPU ≤ 1.2× the same number of
/// `AsyncTimerSequence` loops), and the tick lateness of a single fixed-rate timer (p99 < 1 ms).
/// `operations` is the number of intervals the run lasts (500 = 5 s). Each run reports the ticks due (deadline at
/// least 20 ms before its end), the due ticks not delivered (`ticks_missing`, 0 when every tick arrived) and
/// delivered ÷ due.
/// Starts 1,000 `PeriodicTimer`s with `start`, lets them tick for `intervals` intervals, and returns the ledger's
/// figures.
private func runPeriodicTimers(
  intervals: Int, _ start: (TickLedger, Int) throws -> PeriodicTimer
) async throws -> [String: Double] {
  let ledger = TickLedger(timers: timerCount)
  var timers: [PeriodicTimer] = []
  for index in 0..<timerCount { timers.append(try start(ledger, index)) }
  try await Task.sleep(for: interval * intervals)
  let figures = ledger.figures(end: .now, interval: interval, grace: grace)  // before the (sequential) stops
  for timer in timers { await timer.cancel() }
  return figures
}

/// Runs 1,000 `AsyncTimerSequence` loops (`loop` is one timer's loop, given the ledger and its index) as tasks for
/// `intervals` intervals, then cancels and awaits them, and returns the ledger's figures.
private func runTimerSequenceLoops(
  intervals: Int, _ loop: @escaping @Sendable (TickLedger, Int) async -> Void
) async throws -> [String: Double] {
  let ledger = TickLedger(timers: timerCount)
  let loops = (0..<timerCount).map { index in
    Task {
      // AsyncTimerSequence has no tick at the start: its first tick is due one interval after it.
      ledger.setOrigin(index, .now + interval)
      await loop(ledger, index)
    }
  }
  try await Task.sleep(for: interval * intervals)
  let figures = ledger.figures(end: .now, interval: interval, grace: grace)
  for loop in loops { loop.cancel() }
  for loop in loops { await loop.value }
  return figures
}

extension TickLedger {
  /// Counts a `PeriodicTimer` tick; tick 0 fixes the timer's grid (DefaultClock's instants are offsets from
  /// ContinuousClock's epoch).
  func record(_ tick: PeriodicTimer.Tick<DefaultClock>, of timer: Int) {
    if tick.number == 0 { setOrigin(timer, ContinuousClock().systemEpoch.advanced(by: tick.scheduledAt.offset)) }
    self.tick(timer)
  }
}

let timerBenchmarks: [Benchmark] = [
  // A tick body without `await` runs inline on the timer's task (PeriodicTimer's synchronous overload).
  Benchmark(
    group: "timers-1000x10ms", variant: "asynctools", operations: 500, quickOperations: 100, runs: 3,
    extraKeys: timerFigureKeys
  ) { intervals in
    try await runPeriodicTimers(intervals: intervals) { ledger, index in
      try PeriodicTimer.start(every: interval) { tick in ledger.record(tick, of: index) }
    }
  },
  // An `async` tick body gets a child task per tick (so that ticks that suspend overlap).
  Benchmark(
    group: "timers-1000x10ms", variant: "asynctools-async-body", operations: 500, quickOperations: 100, runs: 3,
    extraKeys: timerFigureKeys
  ) { intervals in
    try await runPeriodicTimers(intervals: intervals) { ledger, index in
      try PeriodicTimer.start(every: interval) { tick async in ledger.record(tick, of: index) }
    }
  },
  Benchmark(
    group: "timers-1000x10ms", variant: "AsyncTimerSequence", operations: 500, quickOperations: 100, runs: 3,
    extraKeys: timerFigureKeys
  ) { intervals in
    try await runTimerSequenceLoops(intervals: intervals) { ledger, index in
      for await _ in AsyncTimerSequence(interval: interval, clock: ContinuousClock()) {
        ledger.tick(index)
      }
    }
  },
  // What a Swift user writes for aiotools' overlapping ticks: the same loops, each tick a child task (immediate, as
  // PeriodicTimer's), so that a tick that suspends does not delay the next one. The fair baseline of an `async`
  // tick body; the plain loop above is the baseline of a synchronous one.
  Benchmark(
    group: "timers-1000x10ms", variant: "AsyncTimerSequence-task-per-tick", operations: 500, quickOperations: 100,
    runs: 3, extraKeys: timerFigureKeys
  ) { intervals in
    try await runTimerSequenceLoops(intervals: intervals) { ledger, index in
      await withDiscardingTaskGroup { group in
        for await _ in AsyncTimerSequence(interval: interval, clock: ContinuousClock()) {
          if #available(macOS 26.0, *) {
            group.addImmediateTask { ledger.tick(index) }
          } else {
            group.addTask { ledger.tick(index) }
          }
        }
      }
    }
  },
  Benchmark(
    group: "timer-lateness", variant: "asynctools", operations: 500, quickOperations: 100, runs: 3,
    extraKeys: ["p99_lateness_ns", "mean_lateness_ns"]
  ) { intervals in
    let log = LatenessLog()
    let clock = ContinuousClock()
    let timer = try PeriodicTimer.start(every: interval, schedule: .fixedRate, clock: clock) { tick in
      log.append(clock.now - tick.scheduledAt)
    }
    try await Task.sleep(for: interval * intervals)
    await timer.cancel()
    return ["p99_lateness_ns": log.p99, "mean_lateness_ns": log.mean]
  },
  Benchmark(
    group: "timer-lateness", variant: "AsyncTimerSequence", operations: 500, quickOperations: 100, runs: 3,
    extraKeys: ["p99_lateness_ns", "mean_lateness_ns"]
  ) { intervals in
    let log = LatenessLog()
    let clock = ContinuousClock()
    let start = clock.now
    var due = start
    for await now in AsyncTimerSequence(interval: interval, clock: clock).prefix(intervals) {
      due = due.advanced(by: interval)
      log.append(now - due)
    }
    return ["p99_lateness_ns": log.p99, "mean_lateness_ns": log.mean]
  },
]
