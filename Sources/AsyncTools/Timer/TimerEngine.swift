import Logging
import Synchronization

/// The running part of a timer, shared by ``PeriodicTimer`` and `withTimer`: its configuration
/// and its loop. One object per timer, so each tick's child task captures one reference.
final class TimerEngine<C: Clock>: Sendable where C.Duration == Duration {
  typealias Tick = PeriodicTimer.Tick<C>

  let interval: Duration
  let initialDelay: Duration
  let policy: PeriodicTimer.DelayPolicy
  let schedule: PeriodicTimer.Schedule
  let clock: C
  let onError: (@Sendable (any Error, Tick) -> Void)?
  /// Where tick failures are logged when there is no `onError` (`nil`: `TimerLogging.logger`).
  let logger: Logger?
  /// The swift-metrics instruments, if the timer was created with `metrics:`.
  let metrics: TimerMetrics?
  let body: Body
  /// Whether a tick is running; only used by `.skipWhileRunning`, where ticks never overlap, so
  /// one flag set by the loop and cleared by the tick is enough.
  let running = Atomic<Bool>(false)

  /// What a tick runs.
  enum Body: Sendable {
    /// Started as a child task of the timer's task, so that a tick that suspends runs beside the next ones.
    case async(@Sendable (Tick) async throws -> Void)
    /// Run inline on the timer's task: a body that cannot suspend finishes before the loop goes on anyway (an
    /// immediate child task would run it just so, on the same thread), so no task is created for it (issue #16
    /// item 9: the task per tick was most of a timer's CPU).
    case sync(@Sendable (Tick) throws -> Void)
  }

  /// Validates the arguments; the messages name the offending parameter.
  init(
    interval: Duration, initialDelay: Duration, policy: PeriodicTimer.DelayPolicy,
    schedule: PeriodicTimer.Schedule, clock: C, onError: (@Sendable (any Error, Tick) -> Void)?,
    logger: Logger?, metrics: MetricsConfiguration?, body: Body
  ) throws(AsyncToolsError) {
    try PeriodicTimer.validate(interval: interval, initialDelay: initialDelay)
    self.interval = interval
    self.initialDelay = initialDelay
    self.policy = policy
    self.schedule = schedule
    self.clock = clock
    self.onError = onError
    self.logger = logger
    self.metrics = metrics.map(TimerMetrics.init)
    self.body = body
  }

  /// Runs the timer until the calling task is cancelled; returns once every tick it started has
  /// finished, cleanup included. Never throws: tick errors go to `onError`.
  func run() async {
    let start = clock.now.advanced(by: initialDelay)
    var scheduler = TickScheduler<C>(start: start, interval: interval, schedule: schedule)
    if initialDelay > .zero {
      do { try await clock.sleep(until: start, tolerance: nil) } catch { return }
    }
    switch policy.kind {
    case .overlap, .skipWhileRunning:
      await runConcurrentTicks(&scheduler)
    case .cancelPrevious:
      await runOneTickAtATime(&scheduler)
    }
  }

  /// `.overlap` and `.skipWhileRunning`: one discarding group for the timer's whole life. Its
  /// children are the ticks; they inherit the cancellation of the timer's task, and the group
  /// waits for all of them before `run()` returns.
  private func runConcurrentTicks(_ scheduler: inout TickScheduler<C>) async {
    let skipWhileRunning = policy == .skipWhileRunning
    await withDiscardingTaskGroup { group in
      while !Task.isCancelled {
        let tick = scheduler.tick
        scheduler.advance(now: clock.now)  // read only by the schedules that need it
        if !skipWhileRunning {
          startTick(tick, in: &group)
        } else if !running.load(ordering: .acquiring) {
          running.store(true, ordering: .releasing)
          startTick(tick, in: &group, clearingRunning: true)
        } else {
          metrics?.skipped(1)
        }
        metrics?.skipped(scheduler.tick.number - tick.number - 1)
        do { try await clock.sleep(until: scheduler.deadline, tolerance: nil) } catch { return }
      }
    }
  }

  /// `.cancelPrevious`: each tick runs in its own group, beside the loop's sleep until the next
  /// deadline. At that deadline the group cancels the tick and waits for it — the "cancel and
  /// await the previous tick" of aiotools, without a per-tick `Task` handle.
  private func runOneTickAtATime(_ scheduler: inout TickScheduler<C>) async {
    while !Task.isCancelled {
      let tick = scheduler.tick
      let stopped = await withDiscardingTaskGroup { group in
        scheduler.advance(now: clock.now)
        startTick(tick, in: &group)
        metrics?.skipped(scheduler.tick.number - tick.number - 1)
        do {
          try await clock.sleep(until: scheduler.deadline, tolerance: nil)
        } catch {
          return true  // the timer is stopping: the tick is cancelled with it and awaited here
        }
        group.cancelAll()
        return false
      }
      if stopped { return }
    }
  }

  /// Starts a tick. An asynchronous body becomes a child task that begins at once, on this thread,
  /// and runs until its first suspension before the loop goes on (`addImmediateTask`, SE-0472).
  /// Compared with `addTask`, this saves each tick a hop through the global executor — the
  /// difference between keeping up and falling behind with a thousand 10 ms timers on a loaded
  /// machine — and starts ticks in a deterministic order. The price: a tick's synchronous prefix
  /// delays the loop (documented). A synchronous body is all prefix: it runs inline, without a task.
  private func startTick(
    _ tick: Tick, in group: inout DiscardingTaskGroup, clearingRunning: Bool = false
  ) {
    metrics?.started(lateness: tick.scheduledAt.duration(to: clock.now))
    switch body {
    case .sync(let body):
      defer { if clearingRunning { running.store(false, ordering: .releasing) } }
      do { try body(tick) } catch { report(error, of: tick) }
    case .async:
      if #available(macOS 26.0, iOS 26.0, watchOS 26.0, tvOS 26.0, visionOS 26.0, *) {
        group.addImmediateTask { await self.runTick(tick, clearingRunning: clearingRunning) }
      } else {
        group.addTask { await self.runTick(tick, clearingRunning: clearingRunning) }
      }
    }
  }

  /// Runs one tick in its own task and reports its failure.
  private func runTick(_ tick: Tick, clearingRunning: Bool) async {
    defer { if clearingRunning { running.store(false, ordering: .releasing) } }
    do {
      switch body {
      case .async(let body): try await body(tick)
      case .sync(let body): try body(tick)
      }
    } catch {
      report(error, of: tick)
    }
  }

  /// Hands a tick's error to `onError` or the log. A `CancellationError` from a cancelled tick is
  /// the expected end of a cancelled tick, not a failure.
  private func report(_ error: any Error, of tick: Tick) {
    if error is CancellationError && Task.isCancelled { return }
    if let onError {
      onError(error, tick)
    } else {
      (logger ?? TimerLogging.logger).error(
        "timer tick failed; the timer keeps running",
        metadata: ["tick": "\(tick.number)", "error": "\(String(reflecting: error))"])
    }
  }
}

/// Where tick failures go when no `onError` handler is given: `Logger(label: "AsyncTools.Timer")`. Task-local, so a
/// test can see what a timer logs; the timer's tasks inherit it from the task that starts the timer.
package enum TimerLogging {
  @TaskLocal package static var logger = Logger(label: "AsyncTools.Timer")
}

extension PeriodicTimer {
  /// The argument checks every timer entry point shares; the messages name the offending parameter.
  package static func validate(interval: Duration, initialDelay: Duration) throws(AsyncToolsError) {
    try interval.requirePositive("interval")
    if initialDelay < .zero {
      throw .invalidArgument("initialDelay must not be negative, got \(initialDelay)")
    }
  }
}
