import AsyncTools
import ServiceLifecycle

/// A periodic timer that runs as a swift-service-lifecycle `Service`: it ticks while the
/// `ServiceGroup` runs, and stops when the group shuts down.
///
/// ```swift
/// let eviction = try TimerService(every: .seconds(30)) { _ in await cache.evictExpired() }
/// let group = ServiceGroup(configuration: .init(services: [server, eviction], logger: logger))
/// try await group.run()
/// ```
///
/// `run()` is
/// ``AsyncTools/withTimer(every:initialDelay:policy:schedule:clock:onError:logger:metrics:_:body:isolation:)``
/// around a wait for graceful shutdown, so every timer semantic applies (first tick at once, delay
/// policy, schedule, failing ticks reported and the timer lives on).
///
/// - On graceful shutdown, the timer stops: no tick starts any more, and a tick still running is
///   cancelled and awaited, cleanup included (ticks are periodic work: the next run redoes it);
///   then `run()` returns.
/// - On cancellation, the same happens, and `run()` returns too.
/// - Outside a `ServiceGroup`, `run()` ticks until the calling task is cancelled.
///
/// `run()` never throws; tick errors go to `onError` or the log. It can be run more than once,
/// each run with a fresh schedule.
public struct TimerService<C: Clock>: Service where C.Duration == Duration {
  let interval: Duration
  let initialDelay: Duration
  let policy: PeriodicTimer.DelayPolicy
  let schedule: PeriodicTimer.Schedule
  let clock: C
  let onError: (@Sendable (any Error, PeriodicTimer.Tick<C>) -> Void)?
  let tick: @Sendable (PeriodicTimer.Tick<C>) async throws -> Void

  /// Describes a timer service; for the parameters, see
  /// ``AsyncTools/PeriodicTimer/start(every:initialDelay:policy:schedule:clock:onError:logger:metrics:_:)``.
  ///
  /// - Throws: `AsyncToolsError` with code `invalidArgument` for a non-positive `interval` or a
  ///   negative `initialDelay`.
  public init(
    every interval: Duration,
    initialDelay: Duration = .zero,
    policy: PeriodicTimer.DelayPolicy = .overlap,
    schedule: PeriodicTimer.Schedule = .fixedRate,
    clock: C,
    onError: (@Sendable (any Error, PeriodicTimer.Tick<C>) -> Void)? = nil,
    _ tick: @escaping @Sendable (PeriodicTimer.Tick<C>) async throws -> Void
  ) throws(AsyncToolsError) {
    try PeriodicTimer.validate(interval: interval, initialDelay: initialDelay)
    self.interval = interval
    self.initialDelay = initialDelay
    self.policy = policy
    self.schedule = schedule
    self.clock = clock
    self.onError = onError
    self.tick = tick
  }

  /// Ticks until graceful shutdown or cancellation, then stops the timer and returns once every
  /// running tick has finished. Never throws.
  public func run() async throws {
    try await withTimer(
      every: interval, initialDelay: initialDelay, policy: policy, schedule: schedule, clock: clock,
      onError: onError, tick
    ) {
      // Returns on graceful shutdown; throws (ignored) on cancellation, which also cancels the ticks.
      try? await gracefulShutdown()
    }
  }
}

extension TimerService where C == ContinuousClock {
  /// Describes a timer service on `ContinuousClock`; see
  /// ``init(every:initialDelay:policy:schedule:clock:onError:logger:metrics:_:)``.
  public init(
    every interval: Duration,
    initialDelay: Duration = .zero,
    policy: PeriodicTimer.DelayPolicy = .overlap,
    schedule: PeriodicTimer.Schedule = .fixedRate,
    onError: (@Sendable (any Error, PeriodicTimer.Tick<ContinuousClock>) -> Void)? = nil,
    _ tick: @escaping @Sendable (PeriodicTimer.Tick<ContinuousClock>) async throws -> Void
  ) throws(AsyncToolsError) {
    try self.init(
      every: interval, initialDelay: initialDelay, policy: policy, schedule: schedule, clock: ContinuousClock(),
      onError: onError, tick)
  }
}
