import AsyncAlgorithms
import AsyncTools
import Synchronization

/// Ticks counted by many timers at once.
final class TickCounter: Sendable {
  let count = Atomic<Int>(0)
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

private let timerCount = 1_000
private let interval = Duration.milliseconds(10)

/// 1,000 real timers at 10 ms (issue target: every tick delivered, CPU ≤ 1.2× the same number of
/// `AsyncTimerSequence` loops), and the tick lateness of a single fixed-rate timer (p99 < 1 ms).
/// `operations` is the number of intervals the run lasts (500 = 5 s).
let timerBenchmarks: [Benchmark] = [
  Benchmark(
    group: "timers-1000x10ms", variant: "asynctools", operations: 500, quickOperations: 100, runs: 3,
    extraKeys: ["ticks_delivered_ratio"]
  ) {
    intervals in
    let counter = TickCounter()
    var timers: [PeriodicTimer] = []
    for _ in 0..<timerCount {
      timers.append(
        try PeriodicTimer.start(every: interval) { _ in counter.count.add(1, ordering: .relaxed) })
    }
    try await Task.sleep(for: interval * intervals)
    let delivered = counter.count.load(ordering: .relaxed)  // before the (sequential) stops
    for timer in timers { await timer.cancel() }
    // Each timer ticks at 0, 10, …, intervals × 10 ms.
    let expected = Double(timerCount * (intervals + 1))
    return ["ticks_delivered_ratio": Double(delivered) / expected]
  },
  Benchmark(
    group: "timers-1000x10ms", variant: "AsyncTimerSequence", operations: 500, quickOperations: 100, runs: 3,
    extraKeys: ["ticks_delivered_ratio"]
  ) { intervals in
    let counter = TickCounter()
    let loops = (0..<timerCount).map { _ in
      Task {
        for await _ in AsyncTimerSequence(interval: interval, clock: ContinuousClock()) {
          counter.count.add(1, ordering: .relaxed)
        }
      }
    }
    try await Task.sleep(for: interval * intervals)
    let delivered = counter.count.load(ordering: .relaxed)
    for loop in loops { loop.cancel() }
    for loop in loops { await loop.value }
    // AsyncTimerSequence has no tick at 0: it ticks at 10, …, intervals × 10 ms.
    let expected = Double(timerCount * intervals)
    return ["ticks_delivered_ratio": Double(delivered) / expected]
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
