import Logging

/// A task scope for children that must not take each other down, with Erlang/OTP-style restart policies.
///
/// You get a `Supervisor` from
/// ``withSupervisor(intensity:backoff:clock:random:isolation:errorHandler:onRestart:metrics:_:)``.
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

  /// Adds a supervised child and returns its handle.
  ///
  /// Each failure of the child goes to the supervisor's error handler with the child's name (from the child's task,
  /// at once). When the child ends, `restart` decides whether it runs again; before a restart the supervisor checks
  /// its intensity limit (giving up if crossed), reports a ``RestartEvent`` and sleeps the backoff delay on its
  /// clock. The same `operation` closure is called for every run.
  ///
  /// The returned ``ChildTaskHandle`` refers to the child across its restarts: ``ChildTaskHandle/cancel()`` stops
  /// this child alone for good (a cancelled child is not restarted), and its value is available once the child has
  /// ended for good (its last error, or ``SupervisorError`` if it made the supervisor give up).
  ///
  /// - Parameters:
  ///   - name: The child's name: its Swift task name, and the name given to the error handler, in a
  ///     ``RestartEvent`` and in a ``SupervisorError``. Unnamed children are called `"child #N"`, numbered from 1 in
  ///     the order children are added.
  ///   - restart: When to restart the child. Default ``RestartPolicy/never``.
  ///   - priority: The child's priority; `nil` inherits the current one.
  ///   - operation: The child's work, run once per start.
  /// - Returns: A handle on the child; discard it if you do not need it.
  @discardableResult
  public mutating func addChild(
    name: String? = nil, restart: RestartPolicy = .never, priority: TaskPriority? = nil,
    operation: sending @escaping () async throws -> Void
  ) -> ChildTaskHandle<Void> {
    let core = self.core
    let label = core.childName(name)
    if restart == .never {
      return scope.addSupervisedOnce(
        name: name, label: label, supervisor: core, priority: priority, operation: operation)
    }
    let scopeCore = scope.core
    // Giving up throws into the scope's group, which cancels every fast-path child at once, and asks the scope's
    // core to cancel the handle's children too.
    return scope.addFailFastTask(name: name, priority: priority) {
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

  /// The number of children added and not ended for good yet (a child waiting to be restarted counts).
  public var liveTaskCount: Int { scope.liveTaskCount }

  /// A Sendable handle for adding children and cancelling the supervisor from any task (see ``TaskScope/handle``).
  public var handle: Handle {
    mutating get { Handle(scope: scope.handle, core: core) }
  }

  /// A Sendable reference to a running ``Supervisor``.
  public struct Handle: Sendable {
    let scope: TaskScope.Handle
    let core: SupervisorCore

    /// Adds a supervised child and returns its handle; same rules as
    /// ``Supervisor/addChild(name:restart:priority:operation:)``.
    ///
    /// - Throws: ``AsyncToolsError`` with code ``AsyncToolsError/Code/closed`` when the supervisor has ended.
    @discardableResult
    public func addChild(
      name: String? = nil, restart: RestartPolicy = .never, priority: TaskPriority? = nil,
      operation: @escaping @Sendable () async throws -> Void
    ) throws(AsyncToolsError) -> ChildTaskHandle<Void> {
      let core = self.core
      let label = core.childName(name)
      if restart == .never {
        return try scope.addTask(name: name, priority: priority) { try await core.runOnce(child: label, operation) }
      }
      let scope = self.scope
      return try scope.addTask(name: name, priority: priority) {
        do {
          try await core.supervise(child: label, restart: restart, scope: scope.core, operation: operation)
        } catch {
          // Recorded in the core; `withSupervisor` throws it once everything has stopped.
          scope.cancelAll()
          throw error
        }
      }
    }

    /// Cancels every child of the supervisor, present and future. The body is not cancelled.
    public func cancelAll() { scope.cancelAll() }

    /// The number of children of the supervisor added and not ended for good yet.
    public var liveTaskCount: Int { scope.liveTaskCount }
  }
}

extension Supervisor {
  /// Receives each failure of a supervised child with the child's name (the name given to `addChild`, or
  /// `"child #N"`). Called from the failing child's task, so it must be thread-safe and should not block.
  public typealias ErrorHandler = @Sendable (_ error: any Error, _ child: String) -> Void

  /// The default error handler of a supervisor: logs the failure at `error` level through swift-log, with the
  /// logger label `AsyncTools.Supervisor`, the child's name under the `child` key and the error under `error`.
  public static let logChildFailure: ErrorHandler = logChildFailure(to: Logger(label: "AsyncTools.Supervisor"))

  /// A restart the supervisor is about to make: reported (to the `onRestart` callback of
  /// ``withSupervisor(intensity:backoff:clock:random:isolation:errorHandler:onRestart:metrics:_:)``)
  /// after the intensity
  /// check has allowed it and before the backoff delay is slept.
  public struct RestartEvent: Sendable, CustomStringConvertible {
    /// The child's name (the name given to `addChild`, or `"child #N"`).
    public var child: String
    /// Which restart of this child this is: 1 for its first restart, counted since the child was added.
    public var attempt: Int
    /// The error that ended the child's last run, or `nil` if it returned normally (a ``RestartPolicy/always``
    /// child).
    public var lastFailure: (any Error)?
    /// How long the supervisor waits before starting the child again.
    public var delay: Duration

    /// Creates a restart event.
    public init(child: String, attempt: Int, lastFailure: (any Error)?, delay: Duration) {
      self.child = child
      self.attempt = attempt
      self.lastFailure = lastFailure
      self.delay = delay
    }

    /// `"restart 2 of 'worker' in 0.2 seconds after: <error>"`.
    public var description: String {
      var text = "restart \(attempt) of '\(child)' in \(delay)"
      if let lastFailure { text += " after: \(lastFailure)" }
      return text
    }
  }
}

/// Runs `body` with a ``Supervisor``, and returns the body's value once every child has ended for good.
///
/// Semantics, beyond those of ``withTaskScope(isolation:errorHandler:_:)`` (child failures reported and contained,
/// body errors cancel the children and propagate unchanged, outer cancellation waits for cleanup and throws
/// `CancellationError`, nothing stored per finished child):
/// - Each child failure goes to `errorHandler` with the child's name.
/// - Children are restarted according to their ``RestartPolicy``; a cancelled child is never restarted. Each restart
///   is reported to `onRestart` (child, attempt, last error, delay) before the backoff delay.
/// - Restarts are counted across all children; a restart that would exceed `intensity` makes the supervisor
///   give up: every child is cancelled and awaited, then ``SupervisorError`` is thrown naming the child and the
///   count. The body is not interrupted (it runs on the caller's task); the error is thrown once it returns.
///   (`SupervisorService` in AsyncToolsServiceLifecycle ends at once instead.)
/// - The wait before each restart follows `backoff`, slept on `clock`; jitter draws from `random`.
///
/// - Parameters:
///   - intensity: The restart limit. Default: 3 restarts within 5 seconds.
///   - backoff: The delay before restarts. Default: 100 ms doubling to 30 s, 20 % jitter.
///   - clock: The clock for backoff sleeps and the intensity window; a `VirtualClock` in tests.
///   - random: The source of jitter; pass a seeded generator for reproducible delays.
///   - isolation: The actor the body runs on; inferred from the caller.
///   - errorHandler: Receives every child failure and the child's name; defaults to
///     ``Supervisor/logChildFailure`` (swift-log).
///   - onRestart: Receives every restart before it happens; `nil` (the default) for none. Called from the
///     restarting child's task, so it must be thread-safe and should not block.
///   - metrics: Opt-in swift-metrics instrumentation (restarts and give-ups per child) under the dimensions
///     `supervisor` and `child`; `nil` (the default) records nothing.
///   - body: Adds children and computes the supervisor's value.
/// - Throws: ``AsyncToolsError`` with code ``AsyncToolsError/Code/invalidArgument`` for an invalid `intensity` or
///   `backoff` (before anything runs), the body's error, ``SupervisorError``, or `CancellationError`.
@discardableResult
public func withSupervisor<Result>(
  intensity: RestartIntensity = .default,
  backoff: Backoff = .default,
  clock: some Clock<Duration> = DefaultClock(),
  random: some RandomNumberGenerator & Sendable = SystemRandomNumberGenerator(),
  isolation: isolated (any Actor)? = #isolation,
  errorHandler: @escaping Supervisor.ErrorHandler = Supervisor.logChildFailure,
  onRestart: (@Sendable (Supervisor.RestartEvent) -> Void)? = nil,
  metrics: MetricsConfiguration? = nil,
  _ body: (inout Supervisor) async throws -> Result
) async throws -> Result {
  try await runSupervisor(
    intensity: intensity, backoff: backoff, clock: clock, random: random, isolation: isolation,
    errorHandler: errorHandler, onRestart: onRestart, onGiveUp: nil, metrics: metrics, body)
}

/// Runs `body` with a ``Supervisor`` whose error handler takes only the error (the form before handlers received
/// the child's name); see
/// ``withSupervisor(intensity:backoff:clock:random:isolation:errorHandler:onRestart:metrics:_:)``.
@discardableResult
public func withSupervisor<Result>(
  intensity: RestartIntensity = .default,
  backoff: Backoff = .default,
  clock: some Clock<Duration> = DefaultClock(),
  random: some RandomNumberGenerator & Sendable = SystemRandomNumberGenerator(),
  isolation: isolated (any Actor)? = #isolation,
  errorHandler: @escaping @Sendable (any Error) -> Void,
  _ body: (inout Supervisor) async throws -> Result
) async throws -> Result {
  try await runSupervisor(
    intensity: intensity, backoff: backoff, clock: clock, random: random, isolation: isolation,
    errorHandler: { error, _ in errorHandler(error) }, onRestart: nil, onGiveUp: nil, body)
}

/// The one implementation behind `withSupervisor` and `SupervisorService`; `onGiveUp` is called once, the moment
/// the supervisor gives up (before its children are cancelled and awaited). With `metrics`, restarts and the
/// give-up are counted (``SupervisorMetrics``) before `onRestart` and `onGiveUp` see them.
@discardableResult
package func runSupervisor<Result>(
  intensity: RestartIntensity,
  backoff: Backoff,
  clock: some Clock<Duration>,
  random: some RandomNumberGenerator & Sendable,
  isolation: isolated (any Actor)? = #isolation,
  errorHandler: @escaping Supervisor.ErrorHandler,
  onRestart: (@Sendable (Supervisor.RestartEvent) -> Void)?,
  onGiveUp: (@Sendable (SupervisorError) -> Void)?,
  metrics: MetricsConfiguration? = nil,
  _ body: (inout Supervisor) async throws -> Result
) async throws -> Result {
  try intensity.validate()
  try backoff.validate()
  let counted = metrics.map(SupervisorMetrics.init)
  let core = SupervisorCore(
    intensity: intensity, backoff: backoff, clock: clock, random: random, errorHandler: errorHandler,
    onRestart: counted?.counting(onRestart) ?? onRestart, onGiveUp: counted?.counting(onGiveUp) ?? onGiveUp)
  // Every child reports its own failures (with its name) before rethrowing them for its handle.
  let result = try await withTaskScope(isolation: isolation, errorHandler: { _ in }) { scope in
    var supervisor = Supervisor(scope: TaskScope(group: scope.group, core: scope.core), core: core)
    return try await body(&supervisor)
  }
  // Giving up cancelled the scope through its core; the scope itself may have ended normally.
  if let gaveUp = core.gaveUp { throw gaveUp }
  return result
}
