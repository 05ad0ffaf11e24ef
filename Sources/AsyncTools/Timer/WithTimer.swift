import Logging

/// Runs `tick` every `interval` while `body` runs; when `body` returns or throws, stops the timer
/// and waits for every running tick to finish, cleanup included, before returning.
///
/// The structured form of ``PeriodicTimer``: the timer cannot outlive the scope.
///
/// ```swift
/// try await withTimer(every: .seconds(30), clock: clock) { _ in
///   await cache.evictExpired()
/// } body: {
///   try await server.run()
/// }
/// ```
///
/// Semantics are those of ``PeriodicTimer/start(every:initialDelay:policy:schedule:clock:onError:logger:metrics:_:)-32s67``:
/// the first tick falls due at once (or after `initialDelay`), ``PeriodicTimer/DelayPolicy``
/// decides what happens to slow ticks, ``PeriodicTimer/Schedule`` how deadlines are computed, a
/// failing tick goes to `onError` (or the log) and the timer lives on. The timer's ticks are child
/// tasks of the calling task: cancelling the caller cancels `body` and the running ticks alike.
///
/// The clock is ``DefaultClock`` (real time, virtual inside `withVirtualTime`) in the overload without `clock` (pass a `VirtualClock` in tests).
/// `logger` and `metrics` are those of ``PeriodicTimer`` (a logger for tick failures without
/// `onError`, opt-in swift-metrics instrumentation).
///
/// - Returns: what `body` returns, once the timer has stopped.
/// - Throws: ``AsyncToolsError/Code/invalidArgument`` for a non-positive `interval` or a negative
///   `initialDelay` (before `body` runs); otherwise what `body` throws, once the timer has stopped.
///   Errors of ticks are never thrown from here.
public func withTimer<C: Clock, Result>(
  every interval: Duration,
  initialDelay: Duration = .zero,
  policy: PeriodicTimer.DelayPolicy = .overlap,
  schedule: PeriodicTimer.Schedule = .fixedRate,
  clock: C,
  onError: (@Sendable (any Error, PeriodicTimer.Tick<C>) -> Void)? = nil,
  logger: Logger? = nil,
  metrics: MetricsConfiguration? = nil,
  _ tick: @escaping @Sendable (PeriodicTimer.Tick<C>) async throws -> Void,
  body: () async throws -> Result,
  isolation: isolated (any Actor)? = #isolation
) async throws -> Result where C.Duration == Duration {
  let engine = try TimerEngine(
    interval: interval, initialDelay: initialDelay, policy: policy, schedule: schedule, clock: clock,
    onError: onError, logger: logger, metrics: metrics, body: .async(tick))
  let outcome: Swift.Result<Result, any Error> = await withDiscardingTaskGroup { group in
    group.addTask { await engine.run() }
    let outcome: Swift.Result<Result, any Error>
    do {
      outcome = .success(try await body())
    } catch {
      outcome = .failure(error)
    }
    group.cancelAll()
    return outcome
  }
  return try outcome.get()
}

/// Runs `tick` every `interval` on ``DefaultClock`` while `body` runs; see
/// ``withTimer(every:initialDelay:policy:schedule:clock:onError:logger:metrics:_:body:isolation:)`` for the semantics.
public func withTimer<Result>(
  every interval: Duration,
  initialDelay: Duration = .zero,
  policy: PeriodicTimer.DelayPolicy = .overlap,
  schedule: PeriodicTimer.Schedule = .fixedRate,
  onError: (@Sendable (any Error, PeriodicTimer.Tick<DefaultClock>) -> Void)? = nil,
  logger: Logger? = nil,
  metrics: MetricsConfiguration? = nil,
  _ tick: @escaping @Sendable (PeriodicTimer.Tick<DefaultClock>) async throws -> Void,
  body: () async throws -> Result,
  isolation: isolated (any Actor)? = #isolation
) async throws -> Result {
  try await withTimer(
    every: interval, initialDelay: initialDelay, policy: policy, schedule: schedule, clock: DefaultClock(),
    onError: onError, logger: logger, metrics: metrics, tick, body: body, isolation: isolation)
}
