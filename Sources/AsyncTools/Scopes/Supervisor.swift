/// A task scope for children that must not take each other down, with Erlang/OTP-style restart policies.
///
/// You get a `Supervisor` from
/// ``withSupervisor(intensity:backoff:clock:random:metrics:isolation:errorHandler:_:)``.
/// It is a ``TaskScope`` (a child failure goes to the error handler and cancels nobody) plus, per child, a
/// ``RestartPolicy``, a shared ``RestartIntensity`` limit and a ``Backoff`` between restarts:
///
/// ```swift
/// try await withSupervisor(intensity: .init(maxRestarts: 5, within: .seconds(60))) { supervisor in
///   supervisor.addChild(name: "metrics", restart: .always) { try await pushMetricsForever() }
///   supervisor.addChild(name: "cache-warmer", restart: .onFailure) { try await warmCache() }
///   supervisor.addChild(name: "audit") { try await sendAuditLog() }          // .never: plain aiotools Supervisor
/// }
/// ```
public struct Supervisor: ~Copyable {
  var scope: TaskScope
  let core: SupervisorCore

  init(scope: consuming TaskScope, core: SupervisorCore) {
    self.scope = scope
    self.core = core
  }

  /// Adds a supervised child.
  ///
  /// Each failure of the child goes to the supervisor's error handler (from the child's task, at once). When the
  /// child ends, `restart` decides whether it runs again; before a restart the supervisor checks its intensity
  /// limit (giving up if crossed) and sleeps the backoff delay on its clock. The same `operation` closure is called
  /// for every run. A ``RestartPolicy/never`` child costs exactly what a ``TaskScope`` child costs.
  ///
  /// - Parameters:
  ///   - name: The child's name: its Swift task name, and the name in a ``SupervisorError``. Unnamed children are
  ///     called `"child #N"` in errors, numbered from 1 in the order restartable children are added.
  ///   - restart: When to restart the child. Default ``RestartPolicy/never``.
  ///   - priority: The child's priority; `nil` inherits the current one.
  ///   - operation: The child's work, run once per start.
  public mutating func addChild(
    name: String? = nil, restart: RestartPolicy = .never, priority: TaskPriority? = nil,
    operation: sending @escaping () async throws -> Void
  ) {
    if restart == .never {
      scope.addTask(name: name, priority: priority, operation: operation)
      return
    }
    let core = self.core
    let scopeCore = scope.core
    let label = name ?? core.nameForUnnamedChild()
    // Giving up throws into the scope's group, which cancels every fast-path child at once, and asks the scope's
    // core to cancel the handle's children too.
    scope.addFailFastTask(name: name, priority: priority) {
      do {
        try await core.supervise(child: label, restart: restart, scope: scopeCore, operation: operation)
      } catch {
        scopeCore.requestCancelAll()
        throw error
      }
    }
  }

  /// Cancels every child, present and future; cancelled children are not restarted. The body is not cancelled.
  public func cancelAll() { scope.cancelAll() }

  /// Whether the supervisor's children are cancelled.
  public var isCancelled: Bool { scope.isCancelled }

  /// A Sendable handle for adding children and cancelling the supervisor from any task (see ``TaskScope/handle``).
  public var handle: Handle {
    mutating get { Handle(scope: scope.handle, core: core) }
  }

  /// A Sendable reference to a running ``Supervisor``.
  public struct Handle: Sendable {
    let scope: TaskScope.Handle
    let core: SupervisorCore

    /// Adds a supervised child; same rules as ``Supervisor/addChild(name:restart:priority:operation:)``.
    ///
    /// - Throws: ``AsyncToolsError`` with code ``AsyncToolsError/Code/closed`` when the supervisor has ended.
    public func addChild(
      name: String? = nil, restart: RestartPolicy = .never, priority: TaskPriority? = nil,
      operation: @escaping @Sendable () async throws -> Void
    ) throws(AsyncToolsError) {
      if restart == .never {
        try scope.addTask(name: name, priority: priority, operation: operation)
        return
      }
      let core = self.core
      let scope = self.scope
      let label = name ?? core.nameForUnnamedChild()
      try scope.addTask(name: name, priority: priority) {
        do {
          try await core.supervise(child: label, restart: restart, scope: scope.core, operation: operation)
        } catch {
          // Recorded in the core; `withSupervisor` throws it once everything has stopped.
          scope.cancelAll()
        }
      }
    }

    /// Cancels every child of the supervisor, present and future. The body is not cancelled.
    public func cancelAll() { scope.cancelAll() }
  }
}

/// Runs `body` with a ``Supervisor``, and returns the body's value once every child has ended for good.
///
/// Semantics, beyond those of ``withTaskScope(isolation:errorHandler:_:)`` (child failures reported and contained,
/// body errors cancel the children and propagate unchanged, outer cancellation waits for cleanup and throws
/// `CancellationError`, nothing stored per finished child):
/// - Children are restarted according to their ``RestartPolicy``; a cancelled child is never restarted.
/// - Restarts are counted across all children; a restart that would exceed `intensity` makes the supervisor
///   give up: every child is cancelled and awaited, then ``SupervisorError`` is thrown naming the child and the
///   count. The body is not interrupted (it runs on the caller's task); the error is thrown once it returns.
/// - The wait before each restart follows `backoff`, slept on `clock`; jitter draws from `random`.
///
/// - Parameters:
///   - intensity: The restart limit. Default: 3 restarts within 5 seconds.
///   - backoff: The delay before restarts. Default: 100 ms doubling to 30 s, 20 % jitter.
///   - clock: The clock for backoff sleeps and the intensity window; a `VirtualClock` in tests.
///   - random: The source of jitter; pass a seeded generator for reproducible delays.
///   - metrics: Opt-in swift-metrics instrumentation (restarts and give-ups per child) under the
///     dimensions `supervisor` and `child`; `nil` (the default) records nothing.
///   - isolation: The actor the body runs on; inferred from the caller.
///   - errorHandler: Receives every child failure; defaults to ``TaskScope/logChildFailure``
///     (``TaskScope/logChildFailure(to:)`` logs to your own `Logger`).
///   - body: Adds children and computes the supervisor's value.
/// - Throws: ``AsyncToolsError`` with code ``AsyncToolsError/Code/invalidArgument`` for an invalid `intensity` or
///   `backoff` (before anything runs), the body's error, ``SupervisorError``, or `CancellationError`.
public func withSupervisor<Result>(
  intensity: RestartIntensity = .default,
  backoff: Backoff = .default,
  clock: some Clock<Duration> = ContinuousClock(),
  random: some RandomNumberGenerator & Sendable = SystemRandomNumberGenerator(),
  metrics: MetricsConfiguration? = nil,
  isolation: isolated (any Actor)? = #isolation,
  errorHandler: @escaping @Sendable (any Error) -> Void = TaskScope.logChildFailure,
  _ body: (inout Supervisor) async throws -> Result
) async throws -> Result {
  try intensity.validate()
  try backoff.validate()
  let core = SupervisorCore(
    intensity: intensity, backoff: backoff, clock: clock, random: random, errorHandler: errorHandler,
    metrics: metrics)
  let result = try await withTaskScope(isolation: isolation, errorHandler: errorHandler) { scope in
    var supervisor = Supervisor(scope: TaskScope(group: scope.group, core: scope.core), core: core)
    return try await body(&supervisor)
  }
  // Giving up cancelled the scope through its core; the scope itself may have ended normally.
  if let gaveUp = core.gaveUp { throw gaveUp }
  return result
}
