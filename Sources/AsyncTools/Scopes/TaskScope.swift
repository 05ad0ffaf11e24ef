import Logging

/// A scope whose children fail alone: a child's error goes to an error handler at once and cancels nobody.
///
/// You get a `TaskScope` from ``withTaskScope(isolation:errorHandler:_:)``; it is the Swift form of aiotools'
/// `TaskScope` (and of Kotlin's `supervisorScope`). The body receives it `inout`, like a task group, and adds
/// children with ``addTask(name:priority:operation:)``, which goes straight into the scope's discarding task group:
/// a child costs what a task costs and nothing is kept once it finishes.
///
/// To add children from *other* tasks (typically from the children themselves), take the Sendable ``handle``
/// and capture it:
///
/// ```swift
/// try await withTaskScope { scope in
///   let handle = scope.handle
///   scope.addTask {
///     try handle.addTask { try await cleanUpLater() }   // a child adds a child
///   }
/// }
/// ```
///
/// `TaskScope` is non-copyable: it exists only inside the body, so no copy can outlive the scope's task group.
public struct TaskScope: ~Copyable {
  @usableFromInline var group: ThrowingDiscardingTaskGroup<any Error>
  let core: TaskScopeCore

  init(group: ThrowingDiscardingTaskGroup<any Error>, core: TaskScopeCore) {
    self.group = group
    self.core = core
  }

  /// Adds a child task to the scope and returns its handle.
  ///
  /// If the child throws, its error is passed to the scope's error handler from the child's own task, as soon as it
  /// happens; siblings and the body keep running. A `CancellationError` is not a failure and is not reported.
  /// The scope keeps nothing about the child after it ends. A child added to a cancelled scope starts cancelled.
  ///
  /// The returned ``ChildTaskHandle`` cancels this child alone, awaits its value (or the error it threw, which is
  /// also reported), or tells whether it has finished (aiotools' `TaskScope.create_task`). Discard it if you do not
  /// need it.
  ///
  /// - Parameters:
  ///   - name: The Swift task name of the child (visible in `Task.name` and in debuggers), or `nil`.
  ///   - priority: The child's priority; `nil` inherits the current one.
  ///   - operation: The child's work.
  /// - Returns: A handle on the child.
  @discardableResult
  public mutating func addTask<Success: Sendable>(
    name: String? = nil, priority: TaskPriority? = nil, operation: sending @escaping () async throws -> Success
  ) -> ChildTaskHandle<Success> {
    let core = self.core
    let record = ChildTaskRecord()
    core.fastPathChildStarted()
    let body: () async -> Void = {
      if let error = await record.run(operation) { core.report(error) }
      core.fastPathChildFinished()
    }
    addToGroup(name: name, priority: priority, body)
    return ChildTaskHandle(record)
  }

  /// Adds a child task unless the scope is cancelled; returns whether it was added.
  ///
  /// Same reporting rules as ``addTask(name:priority:operation:)``.
  @discardableResult
  public mutating func addTaskUnlessCancelled(
    name: String? = nil, priority: TaskPriority? = nil, operation: sending @escaping () async throws -> Void
  ) -> Bool {
    if isCancelled { return false }
    addTask(name: name, priority: priority, operation: operation)
    return true
  }

  /// Adds a supervisor's child that is never restarted: its failure goes to the supervisor's error handler with the
  /// child's name, not to the scope's handler (a supervisor's scope has none). The same one closure and one record
  /// per child as ``addTask(name:priority:operation:)``; wrapping the operation in a closure that reports and
  /// rethrows cost a second allocation and a second call per child.
  mutating func addSupervisedOnce(
    name: String?, label: SupervisorCore.ChildName, supervisor: SupervisorCore, priority: TaskPriority?,
    operation: sending @escaping () async throws -> Void
  ) -> ChildTaskHandle<Void> {
    let core = self.core
    let record = ChildTaskRecord()
    core.fastPathChildStarted()
    let body: () async -> Void = {
      if let error = await record.run(operation) { supervisor.reportOnce(error, of: label) }
      core.fastPathChildFinished()
    }
    addToGroup(name: name, priority: priority, body)
    return ChildTaskHandle(record)
  }

  /// Adds a child whose errors are *not* caught: the first one cancels the scope's group and is rethrown by
  /// `withTaskScope`. Used by supervisors to give up.
  mutating func addFailFastTask(
    name: String?, priority: TaskPriority?, operation: sending @escaping () async throws -> Void
  ) -> ChildTaskHandle<Void> {
    let core = self.core
    let record = ChildTaskRecord()
    core.fastPathChildStarted()
    let body: () async throws -> Void = {
      defer { core.fastPathChildFinished() }
      try await record.runThrowing(operation)
    }
    addToGroup(name: name, priority: priority, body)
    return ChildTaskHandle(record)
  }

  /// Adds `body` to the scope's group, named where the platform names tasks.
  ///
  /// `body` is taken as the group's own operation type, `@isolated(any)`: taking it as a plain throwing closure
  /// made each child's closure go through a second conversion on its way into the group (measured: 5–10 % more per
  /// child).
  @inline(__always)
  private mutating func addToGroup(
    name: String?, priority: TaskPriority?, _ body: sending @escaping @isolated(any) () async throws -> Void
  ) {
    if #available(macOS 26.0, iOS 26.0, watchOS 26.0, tvOS 26.0, visionOS 26.0, *) {
      group.addTask(name: name, priority: priority, operation: body)
    } else {
      group.addTask(priority: priority, operation: body)
    }
  }

  /// Cancels every child, present and future (aiotools' `abort()`). The body itself is not cancelled, and the
  /// scope still waits for the children to finish their cleanup.
  public func cancelAll() {
    group.cancelAll()
    core.requestCancelAll()
  }

  /// Whether the scope's children are cancelled: ``cancelAll()`` was called (here or through the handle), or the
  /// task running the scope was cancelled.
  public var isCancelled: Bool { group.isCancelled || core.isCancelRequested }

  /// The number of children added (here or through the ``handle``) and not finished yet.
  public var liveTaskCount: Int { core.liveTaskCount }

  /// A Sendable handle for adding children and cancelling the scope from any task, typically from a child.
  ///
  /// The first access starts two small helper tasks in the scope (one adds the handle's children, one relays
  /// ``Handle/cancelAll()``); a scope whose body never asks for the handle pays nothing for it.
  public var handle: Handle {
    mutating get {
      if core.startHelpers() {
        let core = self.core
        group.addTask { await core.runDrainer() }
        group.addTask { try await core.runCanceller() }
      }
      return Handle(core: core)
    }
  }
}

extension TaskScope {
  /// The default error handler of ``withTaskScope(isolation:errorHandler:_:)``: logs the child's error at `error`
  /// level through swift-log, with the logger label `AsyncTools.TaskScope` and the error under the `error` key.
  public static let logChildFailure: @Sendable (any Error) -> Void = logChildFailure(
    to: Logger(label: "AsyncTools.TaskScope"))
}

/// Runs `body` with a ``TaskScope`` whose children fail alone, and returns the body's value once every child
/// has finished.
///
/// The Swift form of aiotools' `TaskScope` (Kotlin's `supervisorScope`):
///
/// ```swift
/// try await withTaskScope { scope in
///   for connection in connections {
///     scope.addTask { try await serve(connection) }   // one failing connection does not stop the others
///   }
/// }
/// ```
///
/// Semantics:
/// - **A child fails** → `errorHandler` is called with the error, immediately and from the child's task, exactly
///   once. Nobody is cancelled: not the siblings, not the body. The error is not stored and not rethrown.
///   A child ending with `CancellationError` is not a failure and is not reported.
/// - **The body returns** → the scope waits for every child (including children added by children), then returns
///   the body's value. Child failures never turn into an error of the scope.
/// - **The body throws** → every child is cancelled and awaited, then the body's error propagates unchanged.
/// - **The calling task is cancelled** (before or during the scope) → the children are cancelled (Swift
///   propagates it), the scope waits for their cleanup, then throws `CancellationError` — also when the body
///   itself ignored the cancellation and returned. Swift has no way to un-cancel a task, so unlike aiotools there
///   is no shielding here: use `withCancellationShield` around the scope for that.
/// - **Memory** → the scope keeps nothing per finished child (a discarding task group underneath): it can run for
///   months and millions of children (aiotools' long-lived groups leaked, issues #21 #54 #60 #95).
///
/// The body runs on the caller's task (and actor), so it is not cancelled by ``TaskScope/cancelAll()``; to bound
/// the whole scope in time use ``withTaskScope(timeout:clock:errorHandler:_:)``.
///
/// - Parameters:
///   - isolation: The actor the body runs on; inferred from the caller.
///   - errorHandler: Receives each child failure; defaults to ``TaskScope/logChildFailure`` (swift-log).
///     It is called concurrently from the failing children, so it must be thread-safe.
///   - body: Adds children to the scope and computes the scope's value.
/// - Returns: The body's value.
/// - Throws: The body's error, or `CancellationError` when the calling task is cancelled.
@discardableResult
public func withTaskScope<Result>(
  isolation: isolated (any Actor)? = #isolation,
  errorHandler: @escaping @Sendable (any Error) -> Void = TaskScope.logChildFailure,
  _ body: (inout TaskScope) async throws -> Result
) async throws -> Result {
  let core = TaskScopeCore(errorHandler: errorHandler)
  defer { core.markClosed() }
  var result: Result? = nil
  // Kept here because a discarding group that also holds a child error may rethrow the child's error instead.
  var bodyError: (any Error)? = nil
  do {
    try await withThrowingDiscardingTaskGroup(isolation: isolation) { group in
      var scope = TaskScope(group: group, core: core)
      // `started` is final once the body has ended: tell the core so the helpers (if any) can finish.
      defer { core.bodyFinished() }
      do {
        result = try await body(&scope)
      } catch {
        bodyError = error
        // The group would cancel its own children anyway; this also reaches the handle's children at once.
        scope.cancelAll()
        throw error
      }
    }
  } catch is TaskScopeCore.CancelAll {
    // Thrown only by the canceller helper, to cancel the group on behalf of the handle.
  } catch where bodyError == nil {
    // A fail-fast child's error (a supervisor giving up).
    throw error
  }
  if let bodyError { throw bodyError }
  if Task.isCancelled { throw CancellationError() }
  // Set: the body neither threw nor was skipped.
  return result!
}

/// Runs `body` with a ``TaskScope`` bounded by `timeout` on `clock`: when the timeout fires, the body and every
/// child are cancelled and awaited, and ``TimeoutError`` is thrown.
///
/// Everything else is as in ``withTaskScope(isolation:errorHandler:_:)``. The timeout follows the rules of
/// ``withTimeout(_:tolerance:clock:_:)``:
/// - ``TimeoutError`` is thrown only when the deadline passed and the scope then ended with cancellation; a body
///   error of its own (thrown before or after the deadline) propagates unchanged;
/// - a zero or negative timeout is already past: the body and children start cancelled;
/// - if the caller is cancelled, `CancellationError` is thrown, not ``TimeoutError``;
/// - `timeout: nil` means no timeout.
///
/// Unlike aiotools, the timeout interrupts the body even inside a `withCancellationShield`, because the timer lives
/// in the scope. To make the body cancellable, it runs in a child task here, hence `sending` and a `Sendable`
/// result.
///
/// ```swift
/// try await withTaskScope(timeout: .seconds(30), clock: clock) { scope in
///   for peer in peers { scope.addTask { try await sync(with: peer) } }
/// }
/// ```
///
/// - Parameters:
///   - timeout: How long the whole scope (body and children, cleanup excluded) may run; `nil` for no limit.
///   - clock: The clock that measures the timeout; a `VirtualClock` in tests.
///   - errorHandler: Receives each child failure; defaults to ``TaskScope/logChildFailure``.
///   - body: Adds children and computes the scope's value.
/// - Throws: ``TimeoutError``, the body's error, or `CancellationError`.
@discardableResult
public func withTaskScope<Result: Sendable, C: Clock<Duration>>(
  timeout: Duration?,
  clock: C = DefaultClock(),
  errorHandler: @escaping @Sendable (any Error) -> Void = TaskScope.logChildFailure,
  _ body: sending @escaping (inout TaskScope) async throws -> Result
) async throws -> Result {
  guard let timeout else {
    return try await withTaskScope(errorHandler: errorHandler, body)
  }
  return try await withTimeout(timeout, clock: clock) {
    try await withTaskScope(errorHandler: errorHandler, body)
  }
}
