import AsyncTools
import Logging
import ServiceLifecycle

/// A supervisor that runs as a swift-service-lifecycle `Service`: its children run, and are restarted by their
/// policies, while the `ServiceGroup` runs.
///
/// ```swift
/// let workers = try SupervisorService(intensity: .init(maxRestarts: 5, within: .seconds(60))) { supervisor in
///   supervisor.addChild(name: "metrics", restart: .always) { try await pushMetricsForever() }
///   supervisor.addChild(name: "queue", restart: .onFailure) { try await consumeQueue() }
/// }
/// let group = ServiceGroup(configuration: .init(services: [server, workers], logger: logger))
/// try await group.run()
/// ```
///
/// `run()` is `withSupervisor(intensity:backoff:clock:random:isolation:errorHandler:onRestart:metrics:_:)` whose body adds
/// the children with `children` and then waits (`logger` and `metrics` are passed through: see the Observability
/// article of AsyncTools):
/// - **Graceful shutdown** → every child is cancelled (cancelled children are not restarted) and awaited; then
///   `run()` returns.
/// - **Cancellation** → the same.
/// - **The supervisor gives up** (a restart would exceed `intensity`) → `run()` ends *at once*: every child is
///   cancelled and awaited, and `run()` throws the `SupervisorError`, so the `ServiceGroup` applies the service's
///   failure behaviour (by default it shuts the whole group down). A plain `withSupervisor` would only throw once its
///   body returns, which for a service is the end of the process.
/// - **Every child has ended for good** (none restartable left) → the supervisor keeps waiting for shutdown; `run()`
///   does not return early, so a `ServiceGroup` does not see a service that finished.
///
/// `children` may add children through `Supervisor/handle` to keep adding them later. Each `run()`
/// starts a fresh supervisor, with its own restart window.
public struct SupervisorService<C: Clock>: Service where C.Duration == Duration {
  let intensity: RestartIntensity
  let backoff: Backoff
  let clock: C
  let random: any RandomNumberGenerator & Sendable
  let errorHandler: Supervisor.ErrorHandler
  let onRestart: (@Sendable (Supervisor.RestartEvent) -> Void)?
  let metrics: MetricsConfiguration?
  let children: @Sendable (inout Supervisor) async throws -> Void

  /// Describes a supervisor service; the parameters are those of
  /// `withSupervisor(intensity:backoff:clock:random:isolation:errorHandler:onRestart:metrics:_:)`.
  ///
  /// - Parameters:
  ///   - intensity: The restart limit. Default: 3 restarts within 5 seconds.
  ///   - backoff: The delay before restarts. Default: 100 ms doubling to 30 s, 20 % jitter.
  ///   - clock: The clock for backoff sleeps and the intensity window.
  ///   - random: The source of jitter; pass a seeded generator for reproducible delays.
  ///   - errorHandler: Receives every child failure and the child's name; `nil` (the default) logs it to `logger`
  ///     (`Supervisor.logChildFailure(to:)`).
  ///   - onRestart: Receives every restart (child, attempt, last error, delay) before it happens.
  ///   - logger: Where the default error handler logs, with its metadata kept; `nil` (the default) logs to the
  ///     label `AsyncTools.Supervisor`. An explicit `errorHandler` wins.
  ///   - metrics: Opt-in swift-metrics instrumentation: restarts and give-ups per child, dimensions `supervisor`
  ///     and `child`, as for `withSupervisor`; `nil` (the default) records nothing.
  ///   - children: Adds the supervisor's children, once per `run()`.
  /// - Throws: `AsyncToolsError` with code `invalidArgument` for an invalid `intensity` or `backoff`.
  public init(
    intensity: RestartIntensity = .default,
    backoff: Backoff = .default,
    clock: C,
    random: some RandomNumberGenerator & Sendable = SystemRandomNumberGenerator(),
    errorHandler: Supervisor.ErrorHandler? = nil,
    onRestart: (@Sendable (Supervisor.RestartEvent) -> Void)? = nil,
    logger: Logger? = nil,
    metrics: MetricsConfiguration? = nil,
    children: @escaping @Sendable (inout Supervisor) async throws -> Void
  ) throws(AsyncToolsError) {
    try intensity.validate()
    try backoff.validate()
    self.intensity = intensity
    self.backoff = backoff
    self.clock = clock
    self.random = random
    self.errorHandler = errorHandler ?? logger.map(Supervisor.logChildFailure(to:)) ?? Supervisor.logChildFailure
    self.onRestart = onRestart
    self.metrics = metrics
    self.children = children
  }

  /// Runs the supervisor until graceful shutdown or cancellation (then returns once every child has ended), or
  /// until it gives up (then throws `SupervisorError` once every child has ended).
  ///
  /// - Throws: `SupervisorError` when the supervisor gave up; an error thrown by `children`.
  public func run() async throws {
    let stop = OneShotEvent()
    do {
      try await supervise(stop: stop)
    } catch is CancellationError where Task.isCancelled {
      // Cancelled by the ServiceGroup: every child has ended; that is a normal stop, not a failure.
    }
  }

  private func supervise(stop: OneShotEvent) async throws {
    try await runSupervisor(
      intensity: intensity, backoff: backoff, clock: clock, random: random, errorHandler: errorHandler,
      onRestart: onRestart, onGiveUp: { _ in stop.fire() }, metrics: metrics
    ) { supervisor in
      try await children(&supervisor)
      await withTaskCancellationHandler {
        await withGracefulShutdownHandler {
          await stop.wait()
        } onGracefulShutdown: {
          stop.fire()
        }
      } onCancel: {
        stop.fire()
      }
      supervisor.cancelAll()
    }
  }
}

extension SupervisorService where C == DefaultClock {
  /// Describes a supervisor service on `DefaultClock` (virtual inside `withVirtualTime`); see
  /// ``init(intensity:backoff:clock:random:errorHandler:onRestart:logger:metrics:children:)``.
  public init(
    intensity: RestartIntensity = .default,
    backoff: Backoff = .default,
    random: some RandomNumberGenerator & Sendable = SystemRandomNumberGenerator(),
    errorHandler: Supervisor.ErrorHandler? = nil,
    onRestart: (@Sendable (Supervisor.RestartEvent) -> Void)? = nil,
    logger: Logger? = nil,
    metrics: MetricsConfiguration? = nil,
    children: @escaping @Sendable (inout Supervisor) async throws -> Void
  ) throws(AsyncToolsError) {
    try self.init(
      intensity: intensity, backoff: backoff, clock: DefaultClock(), random: random, errorHandler: errorHandler,
      onRestart: onRestart, logger: logger, metrics: metrics, children: children)
  }
}
