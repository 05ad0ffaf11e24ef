import Logging

/// A running periodic timer: it calls a tick body every interval until ``cancel()`` — aiotools'
/// `create_timer`, with more policies, a drift-free schedule and an injectable clock.
///
/// ```swift
/// let heartbeat = try PeriodicTimer.start(every: .seconds(5)) { tick in
///   try await peer.sendHeartbeat(sequence: tick.number)
/// }
/// …
/// await heartbeat.cancel()   // returns once every running tick has finished its cleanup
/// ```
///
/// Prefer
/// ``withTimer(every:initialDelay:policy:schedule:clock:onError:logger:metrics:_:body:isolation:)`` when the timer
/// lives only for the duration of some work; use this handle for a timer owned by a long-lived
/// object.
///
/// Semantics:
/// - **Ticks are child tasks** of the timer's own task, started immediately: a tick runs on the
///   timer's thread until its first suspension, so its synchronous work delays the timer (give
///   CPU-heavy work its own task). A synchronous tick body (a closure without `await`) runs inline
///   on the timer's task instead, without a task per tick: it could not suspend anyway. The first tick falls due at once (aiotools) or after
///   `initialDelay`; the next ones follow the ``Schedule`` (``Schedule/fixedRate`` by default:
///   tick *n* is due at `start + n × interval`, no drift).
/// - **A slow tick** is handled by the ``DelayPolicy``: run side by side (``DelayPolicy/overlap``,
///   the default), cancel and await it before the next (``DelayPolicy/cancelPrevious``), or skip
///   the ticks due meanwhile (``DelayPolicy/skipWhileRunning``).
/// - **A failing tick** does not stop the timer (aiotools #86): its error goes to `onError`, or is
///   logged with a swift-log `Logger(label: "AsyncTools.Timer")` at error level. A tick that ends
///   with `CancellationError` because it was cancelled is not a failure.
/// - **Stopping**: ``cancel()`` cancels the timer and every running tick, and returns only after
///   all of them have finished, cleanup included. Dropping the last reference to a timer also
///   cancels it, but nobody waits for its ticks then: call ``cancel()``.
///
/// The timer runs in an unstructured task, so it does not inherit the cancellation of the task
/// that started it (it does inherit its priority and task-local values).
public final class PeriodicTimer: Sendable {
  private let task: Task<Void, Never>

  private init(task: Task<Void, Never>) {
    self.task = task
  }

  deinit {
    // A timer nobody can stop any more must not tick forever.
    task.cancel()
  }

  /// Starts a timer that runs `tick` every `interval` on `clock`, until ``cancel()``.
  ///
  /// - Parameters:
  ///   - interval: the period of the schedule. Must be positive.
  ///   - initialDelay: how long after the start the first tick falls due; zero (the default, as
  ///     in aiotools) runs it at once. Must not be negative.
  ///   - policy: what happens when a tick is due while an earlier one still runs; ``DelayPolicy/overlap``
  ///     (aiotools' `DEFAULT`) by default.
  ///   - schedule: how deadlines are computed; ``Schedule/fixedRate`` (no drift) by default,
  ///     ``Schedule/fixedDelay`` for aiotools' schedule.
  ///   - clock: the clock to sleep on (a `VirtualClock` in tests). The overload without `clock`
  ///     uses ``DefaultClock``.
  ///   - onError: called with every error a tick throws (except the `CancellationError` of a
  ///     cancelled tick), exactly once per error, on the failing tick's task. `nil` (the default)
  ///     logs it to `logger`.
  ///   - logger: Where tick failures are logged when there is no `onError`; its metadata is kept.
  ///     `nil` (the default) uses `Logger(label: "AsyncTools.Timer")`.
  ///   - metrics: Opt-in swift-metrics instrumentation (ticks, skipped ticks, tick lateness) under
  ///     the dimension `timer`; `nil` (the default) records nothing.
  ///   - tick: the work to do on every tick; it receives the tick's number and due instant.
  /// - Returns: the running timer. Keep it, and call ``cancel()`` to stop it.
  /// - Throws: ``AsyncToolsError/Code/invalidArgument`` if `interval` is not positive or
  ///   `initialDelay` is negative; the timer is not started then.
  public static func start<C: Clock>(
    every interval: Duration,
    initialDelay: Duration = .zero,
    policy: DelayPolicy = .overlap,
    schedule: Schedule = .fixedRate,
    clock: C,
    onError: (@Sendable (any Error, Tick<C>) -> Void)? = nil,
    logger: Logger? = nil,
    metrics: MetricsConfiguration? = nil,
    _ tick: @escaping @Sendable (Tick<C>) async throws -> Void
  ) throws(AsyncToolsError) -> PeriodicTimer where C.Duration == Duration {
    start(
      try TimerEngine(
        interval: interval, initialDelay: initialDelay, policy: policy, schedule: schedule, clock: clock,
        onError: onError, logger: logger, metrics: metrics, body: .async(tick)))
  }

  /// Starts a timer whose tick body is synchronous; the semantics are those of
  /// ``start(every:initialDelay:policy:schedule:clock:onError:logger:metrics:_:)-32s67``.
  ///
  /// A closure without `await` picks this overload. Such a tick cannot suspend, so it runs to its
  /// end on the timer's thread before the timer goes on — exactly what an asynchronous tick does
  /// until its first suspension — and it runs inline on the timer's task: no task is created per
  /// tick. With a thousand timers this is about a third less CPU per tick (BENCHMARKS.md,
  /// `timers-1000x10ms`). Policies, schedules, error handling and ``cancel()`` behave the same.
  public static func start<C: Clock>(
    every interval: Duration,
    initialDelay: Duration = .zero,
    policy: DelayPolicy = .overlap,
    schedule: Schedule = .fixedRate,
    clock: C,
    onError: (@Sendable (any Error, Tick<C>) -> Void)? = nil,
    logger: Logger? = nil,
    metrics: MetricsConfiguration? = nil,
    _ tick: @escaping @Sendable (Tick<C>) throws -> Void
  ) throws(AsyncToolsError) -> PeriodicTimer where C.Duration == Duration {
    start(
      try TimerEngine(
        interval: interval, initialDelay: initialDelay, policy: policy, schedule: schedule, clock: clock,
        onError: onError, logger: logger, metrics: metrics, body: .sync(tick)))
  }

  /// Starts `engine`'s loop in the timer's task.
  private static func start<C: Clock>(_ engine: TimerEngine<C>) -> PeriodicTimer {
    PeriodicTimer(task: ScopedTime.startTask { await engine.run() })
  }

  /// Starts a timer on ``DefaultClock``; see
  /// ``start(every:initialDelay:policy:schedule:clock:onError:logger:metrics:_:)-32s67`` for the semantics.
  public static func start(
    every interval: Duration,
    initialDelay: Duration = .zero,
    policy: DelayPolicy = .overlap,
    schedule: Schedule = .fixedRate,
    onError: (@Sendable (any Error, Tick<DefaultClock>) -> Void)? = nil,
    logger: Logger? = nil,
    metrics: MetricsConfiguration? = nil,
    _ tick: @escaping @Sendable (Tick<DefaultClock>) async throws -> Void
  ) throws(AsyncToolsError) -> PeriodicTimer {
    try start(
      every: interval, initialDelay: initialDelay, policy: policy, schedule: schedule, clock: DefaultClock(),
      onError: onError, logger: logger, metrics: metrics, tick)
  }

  /// Starts a timer with a synchronous tick body on ``DefaultClock``; a closure without `await`
  /// picks this overload, which runs each tick inline on the timer's task (see
  /// ``start(every:initialDelay:policy:schedule:clock:onError:logger:metrics:_:)-5ybfg``).
  public static func start(
    every interval: Duration,
    initialDelay: Duration = .zero,
    policy: DelayPolicy = .overlap,
    schedule: Schedule = .fixedRate,
    onError: (@Sendable (any Error, Tick<DefaultClock>) -> Void)? = nil,
    logger: Logger? = nil,
    metrics: MetricsConfiguration? = nil,
    _ tick: @escaping @Sendable (Tick<DefaultClock>) throws -> Void
  ) throws(AsyncToolsError) -> PeriodicTimer {
    try start(
      every: interval, initialDelay: initialDelay, policy: policy, schedule: schedule, clock: DefaultClock(),
      onError: onError, logger: logger, metrics: metrics, tick)
  }

  /// Stops the timer: cancels its loop and every running tick, and returns once all of them have
  /// finished, cleanup included. No tick starts after this call, and none is running when it
  /// returns.
  ///
  /// Calling it again, or from several tasks at once, is harmless: every call returns once the
  /// timer has stopped. Cancelling the caller does not cut the wait short (the ticks' cleanup
  /// cannot be interrupted by it); check `Task.isCancelled` afterwards if you need to know.
  ///
  /// Do not await `cancel()` from one of this timer's own ticks: the tick would wait for itself.
  /// A tick that wants to stop its timer can start the call without awaiting it
  /// (`Task { await timer.cancel() }`): the tick is then cancelled and awaited like the others.
  public func cancel() async {
    task.cancel()
    await task.value
  }

  /// Whether ``cancel()`` was called (or the timer was dropped); the ticks may still be finishing.
  public var isCancelled: Bool {
    task.isCancelled
  }
}
