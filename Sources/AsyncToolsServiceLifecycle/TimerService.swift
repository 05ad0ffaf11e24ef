import AsyncTools
import Logging
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
/// `run()` is `withTimer(every:initialDelay:policy:schedule:clock:onError:logger:metrics:_:body:isolation:)`
/// around a wait for graceful shutdown, so every timer semantic applies (first tick at once, delay
/// policy, schedule, failing ticks reported and the timer lives on).
///
/// - On graceful shutdown, the timer stops: no tick starts any more, and a tick still running is
///   cancelled and awaited, cleanup included (ticks are periodic work: the next run redoes it);
///   then `run()` returns. With `onGracefulShutdown: .finishRunningTick`, a running tick is *not*
///   cancelled: it is awaited to its normal end (no new tick starts meanwhile), then `run()` returns.
/// - On cancellation, running ticks are cancelled and awaited in either mode, and `run()` returns
///   too (also while a graceful shutdown waits for a tick to finish).
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
  let logger: Logger?
  let metrics: MetricsConfiguration?
  let shutdownBehavior: ShutdownBehavior
  let tick: @Sendable (PeriodicTimer.Tick<C>) async throws -> Void

  /// Describes a timer service; for the parameters, see
  /// `PeriodicTimer/start(every:initialDelay:policy:schedule:clock:onError:logger:metrics:_:)`.
  ///
  /// `onGracefulShutdown` says what happens to a tick still running at graceful shutdown:
  /// ``ShutdownBehavior/cancelRunningTick`` (the default) or ``ShutdownBehavior/finishRunningTick``.
  /// `logger` (where a failing tick is logged when there is no `onError`; `nil`: the label
  /// `AsyncTools.Timer`) and `metrics` (ticks, skipped ticks and lateness under the dimension `timer`;
  /// `nil`: none) are passed to the timer of each `run()`.
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
    onGracefulShutdown: ShutdownBehavior = .cancelRunningTick,
    logger: Logger? = nil,
    metrics: MetricsConfiguration? = nil,
    _ tick: @escaping @Sendable (PeriodicTimer.Tick<C>) async throws -> Void
  ) throws(AsyncToolsError) {
    try PeriodicTimer.validate(interval: interval, initialDelay: initialDelay)
    self.interval = interval
    self.initialDelay = initialDelay
    self.policy = policy
    self.schedule = schedule
    self.clock = clock
    self.onError = onError
    self.logger = logger
    self.metrics = metrics
    self.shutdownBehavior = onGracefulShutdown
    self.tick = tick
  }

  /// Ticks until graceful shutdown or cancellation, then stops the timer and returns once every
  /// running tick has finished. Never throws.
  public func run() async throws {
    guard shutdownBehavior == .finishRunningTick else {
      try await withTimer(
        every: interval, initialDelay: initialDelay, policy: policy, schedule: schedule, clock: clock,
        onError: onError, logger: logger, metrics: metrics, tick
      ) {
        // Returns on graceful shutdown; throws (ignored) on cancellation, which also cancels the ticks.
        try? await gracefulShutdown()
      }
      return
    }
    let ticks = RunningTicks()
    let tick = self.tick
    try await withTimer(
      every: interval, initialDelay: initialDelay, policy: policy, schedule: schedule, clock: clock,
      onError: onError, logger: logger, metrics: metrics,
      { value in
        // Once the shutdown has begun, a tick that falls due runs nothing.
        guard ticks.enter() else { return }
        defer { ticks.leave() }
        try await tick(value)
      }
    ) {
      do {
        try await gracefulShutdown()
      } catch {
        return  // cancelled: withTimer cancels the running ticks
      }
      // Graceful: refuse new ticks, wait for the running ones; a cancellation meanwhile cuts the wait short.
      await ticks.stopAndWaitUntilIdle()
    }
  }
}

extension TimerService {
  /// What happens to a tick that is running when the service is asked to shut down gracefully.
  public struct ShutdownBehavior: Hashable, Sendable, CustomStringConvertible {
    fileprivate enum Base: Hashable, Sendable { case cancel, finish }
    fileprivate var base: Base

    /// The running tick is cancelled and awaited (the default: periodic work is redone by the next run).
    public static var cancelRunningTick: ShutdownBehavior { ShutdownBehavior(base: .cancel) }

    /// The running tick finishes normally, without being cancelled; no tick starts after the shutdown
    /// began. A cancellation of the service still cancels it. (With the `cancelPrevious` delay policy
    /// the timer still cancels a tick that reaches the next deadline.)
    public static var finishRunningTick: ShutdownBehavior { ShutdownBehavior(base: .finish) }

    /// `"cancelRunningTick"` or `"finishRunningTick"`.
    public var description: String {
      switch base {
      case .cancel: "cancelRunningTick"
      case .finish: "finishRunningTick"
      }
    }
  }
}

/// The ticks of a ``TimerService`` running with ``TimerService/ShutdownBehavior/finishRunningTick``: how many
/// run, whether new ones are refused, and the graceful shutdown waiting for the last one to end.
private final class RunningTicks: Sendable {
  private struct State {
    var running = 0
    var stopping = false
    var idle: CheckedContinuation<Void, Never>?
  }

  private let state = Locked(State())

  /// Whether a tick may run (false once the shutdown has begun); a `true` must be paired with ``leave()``.
  func enter() -> Bool {
    state.withLock { state in
      if state.stopping { return false }
      state.running += 1
      return true
    }
  }

  func leave() {
    let idle = state.withLock { state -> CheckedContinuation<Void, Never>? in
      state.running -= 1
      guard state.running == 0, let idle = state.idle else { return nil }
      state.idle = nil
      return idle
    }
    idle?.resume()
  }

  /// Refuses new ticks and waits until none runs, or until the calling task is cancelled.
  func stopAndWaitUntilIdle() async {
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let resumeNow = state.withLock { state -> Bool in
          state.stopping = true
          if state.running == 0 || Task.isCancelled { return true }
          state.idle = continuation
          return false
        }
        if resumeNow { continuation.resume() }
      }
    } onCancel: {
      let idle = state.withLock { state -> CheckedContinuation<Void, Never>? in
        defer { state.idle = nil }
        return state.idle
      }
      idle?.resume()
    }
  }
}

extension TimerService where C == DefaultClock {
  /// Describes a timer service on `DefaultClock`; see
  /// ``init(every:initialDelay:policy:schedule:clock:onError:onGracefulShutdown:logger:metrics:_:)``.
  public init(
    every interval: Duration,
    initialDelay: Duration = .zero,
    policy: PeriodicTimer.DelayPolicy = .overlap,
    schedule: PeriodicTimer.Schedule = .fixedRate,
    onError: (@Sendable (any Error, PeriodicTimer.Tick<DefaultClock>) -> Void)? = nil,
    onGracefulShutdown: ShutdownBehavior = .cancelRunningTick,
    logger: Logger? = nil,
    metrics: MetricsConfiguration? = nil,
    _ tick: @escaping @Sendable (PeriodicTimer.Tick<DefaultClock>) async throws -> Void
  ) throws(AsyncToolsError) {
    try self.init(
      every: interval, initialDelay: initialDelay, policy: policy, schedule: schedule, clock: DefaultClock(),
      onError: onError, onGracefulShutdown: onGracefulShutdown, logger: logger, metrics: metrics, tick)
  }
}
