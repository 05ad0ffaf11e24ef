import Logging
import Synchronization

/// The aiotools name of ``PersistentTaskGroup`` (aiotools 2.0 renamed `PersistentTaskGroup` to
/// `TaskContext`; both spell the same long-lived, spawn-from-anywhere task container).
public typealias TaskContext = PersistentTaskGroup

/// A long-lived group of background tasks that any task may spawn into, shut down at the end.
///
/// A server keeps one for its whole life: request handlers add fire-and-forget work with
/// ``addTask(name:priority:_:)``, a failing task is reported to the error handler at once and
/// disturbs no sibling, and at the end ``shutdown()`` cancels everything and waits for every
/// cleanup, or ``close()`` lets the running work finish first.
///
/// ```swift
/// let background = PersistentTaskGroup(name: "mailer") { error, taskName in
///   logger.error("\(taskName ?? "task") failed: \(error)")
/// }
/// let receipt = try background.addTask(name: "receipt") { try await mailer.send(receipt) }
/// // … later, optionally: try await receipt.value
/// await background.shutdown()
/// ```
///
/// Guarantees:
/// - **Usable from any task.** `addTask` is synchronous and thread-safe; the group is `Sendable`.
///   Each task is an unstructured `Task` that, like `Task { }`, inherits the caller's priority
///   and task-local values (plus ``current``, set to this group).
/// - **Per-task handles** (aiotools #44): ``TaskHandle`` lets the caller await the value, get the
///   error, or cancel that one task.
/// - **Errors reported once.** The error handler is called exactly once for each task that ends by
///   throwing an error other than `CancellationError`, from inside that task, before the task
///   counts as finished. Cancellation is not a failure and is never reported. The error is also
///   what the task's handle throws. Without a handler, failures are logged (swift-log, label
///   `AsyncTools.PersistentTaskGroup`, level `error`), never silently dropped.
/// - **Stores nothing for finished tasks**: no results, no errors, no task references (aiotools
///   leaked them: #21 #54 #60 #95). Idle storage shrinks back after a burst.
/// - **Bounded concurrency** (optional, aiojobs-style): with `maxConcurrency`, tasks over the
///   limit wait in FIFO order of `addTask`, admitted one by one as running tasks finish. A queued
///   task that is cancelled (or shut down) before admission never runs.
/// - **Two-phase shutdown** (aiotools #33): ``close(timeout:clock:)`` waits gracefully and cancels
///   only after the timeout.
///
/// **Dropping the last reference without `shutdown()`**: tasks do not keep the group object alive
/// (they hold its internal state only), so the group can be deinitialized while tasks run. Its
/// `deinit` then does what `shutdown()` does minus the waiting: it stops admission, cancels every
/// task and logs a warning naming the group and the number of tasks it cancelled. The tasks'
/// cleanups still run, but nobody awaits them; call ``shutdown()`` or ``close()`` to wait. (A task
/// whose operation captures the group does keep it alive until that task ends.)
public final class PersistentTaskGroup: Sendable {
  /// Called once for each task that fails with an error other than `CancellationError`; receives
  /// the error and the task's name. Runs inside the failed task, so it should not block.
  public typealias ErrorHandler = @Sendable (_ error: any Error, _ taskName: String?) -> Void

  /// The group's name, for logs and ``liveGroups()``; `PersistentTaskGroup-<n>` if none was given.
  public let name: String

  /// The maximum number of tasks running at once, or `nil` for no limit.
  public let maxConcurrency: Int?

  /// Where the group logs (see ``init(name:errorHandler:logger:metrics:)``).
  let logger: Logger

  let core: PersistentTaskGroupCore
  let registryID: UInt64

  @TaskLocal static var currentCore: PersistentTaskGroupCore?

  /// Creates an open group with no concurrency limit.
  ///
  /// - Parameters:
  ///   - name: A name for logs and ``liveGroups()``.
  ///   - errorHandler: Called once per failed task (not for cancellation). `nil` logs the failure.
  ///   - logger: Where the group logs task failures (without an `errorHandler`) and a release without
  ///     shutdown; its metadata is kept. `nil` (the default) uses `Logger(label: "AsyncTools.PersistentTaskGroup")`.
  ///   - metrics: Opt-in swift-metrics instrumentation (tasks running, queued, completed, failed)
  ///     under the dimension `group`; `nil` (the default) records nothing.
  public convenience init(
    name: String? = nil, errorHandler: ErrorHandler? = nil, logger: Logger? = nil,
    metrics: MetricsConfiguration? = nil
  ) {
    self.init(name: name, limit: nil, errorHandler: errorHandler, logger: logger, metrics: metrics)
  }

  /// Creates an open group that runs at most `maxConcurrency` tasks at once; the others wait their
  /// turn in FIFO order.
  ///
  /// The parameters are those of ``init(name:errorHandler:logger:metrics:)``.
  ///
  /// - Throws: ``AsyncToolsError/Code/invalidArgument`` if `maxConcurrency` is less than 1.
  public convenience init(
    name: String? = nil, maxConcurrency: Int, errorHandler: ErrorHandler? = nil, logger: Logger? = nil,
    metrics: MetricsConfiguration? = nil
  ) throws(AsyncToolsError) {
    guard maxConcurrency >= 1 else {
      throw .invalidArgument("maxConcurrency must be at least 1, got \(maxConcurrency)")
    }
    self.init(name: name, limit: maxConcurrency, errorHandler: errorHandler, logger: logger, metrics: metrics)
  }

  private init(
    name: String?, limit: Int?, errorHandler: ErrorHandler?, logger: Logger?, metrics: MetricsConfiguration?
  ) {
    let registryID = Self.nextRegistryID.add(1, ordering: .relaxed).newValue
    self.name = name ?? "PersistentTaskGroup-\(registryID)"
    self.maxConcurrency = limit
    self.registryID = registryID
    let logger = logger ?? Self.defaultLogger
    self.logger = logger
    self.core = PersistentTaskGroupCore(
      name: self.name, limit: limit ?? .max,
      errorHandler: errorHandler ?? Self.logFailure(group: self.name, to: logger),
      metrics: metrics.map(GroupMetrics.init))
    core.owner.withLock { $0.group = self }
    Self.register(self)
  }

  deinit {
    Self.unregister(registryID)
    let cancelled = core.beginShutdown()
    if cancelled > 0 {
      logger.warning(
        """
        PersistentTaskGroup '\(name)' was released without shutdown() or close(); \
        cancelled its \(cancelled) live task(s) without awaiting them
        """)
    }
  }

  // MARK: Adding tasks

  /// Adds a task to the group and returns its handle.
  ///
  /// The task starts at once, or, when ``maxConcurrency`` tasks are already running, waits its
  /// turn (FIFO). It runs with ``current`` set to this group and inherits the caller's priority
  /// (unless `priority` is given) and task-local values. Its failure, other than cancellation,
  /// goes to the error handler once. Nothing about it is kept after it ends.
  ///
  /// - Parameters:
  ///   - name: The task's name (visible to debuggers, `Task.name`, and the error handler).
  ///   - priority: The task's priority; `nil` inherits the caller's.
  ///   - operation: The work. It is not cancelled when the caller is; only ``TaskHandle/cancel()``,
  ///     ``shutdown()``, a timed-out ``close(timeout:clock:)`` or releasing the group cancel it.
  /// - Returns: A handle to await the task's value or error, or to cancel it.
  /// - Throws: ``AsyncToolsError/Code/shuttingDown`` if the group is closing or shut down (also
  ///   when called from one of its own tasks).
  @discardableResult
  public func addTask<T: Sendable>(
    name: String? = nil, priority: TaskPriority? = nil, _ operation: @escaping @Sendable () async throws -> T
  ) throws(AsyncToolsError) -> TaskHandle<T> {
    TaskHandle(try core.add(name: name, priority: priority, operation))
  }

  // MARK: Ending the group

  /// Cancels every task, running or queued, and returns once all of them have finished, cleanups
  /// included. Queued tasks never run. New tasks are refused from the first moment.
  ///
  /// Idempotent, and always waits: cancelling the caller does not cut the wait short (the point
  /// is that nothing outlives this call). A task that ignores cancellation delays it; use
  /// ``close(timeout:clock:)`` for a graceful period first.
  public func shutdown() async {
    core.beginShutdown()
    await core.waitUntilTerminated()
  }

  /// Stops accepting tasks and waits for the running and queued ones to finish on their own.
  ///
  /// If the caller is cancelled while waiting, this escalates to ``shutdown()``: every task is
  /// cancelled and still awaited before `close()` returns.
  public func close() async {
    core.beginClose()
    await withTaskCancellationHandler {
      await core.waitUntilTerminated()
    } onCancel: {
      core.beginShutdown()
    }
  }

  /// Stops accepting tasks, waits up to `timeout` for the running and queued ones to finish, then
  /// cancels whatever is left and waits for it (the two-phase shutdown of aiotools #33).
  ///
  /// Returns only when every task has finished, in both phases. If the caller is cancelled, the
  /// second phase starts at once.
  ///
  /// - Parameters:
  ///   - timeout: The grace period before cancelling; must be positive.
  ///   - clock: The clock that measures the grace period.
  /// - Returns: `true` if every task finished within the grace period, `false` if the remaining
  ///   ones had to be cancelled.
  /// - Throws: ``AsyncToolsError/Code/invalidArgument`` if `timeout` is not positive (nothing is
  ///   closed then).
  @discardableResult
  public func close(
    timeout: Duration, clock: some Clock<Duration> = DefaultClock()
  ) async throws(AsyncToolsError) -> Bool {
    try timeout.requirePositive("timeout")
    core.beginClose()
    return await withTaskGroup(of: Bool.self) { group in
      group.addTask { [core] in
        await core.waitUntilTerminated()
        return true
      }
      group.addTask {
        // Ends early (with `CancellationError`) only when the drain finished first, or when the
        // caller was cancelled: escalating in that case is what the doc promises.
        try? await clock.sleep(for: timeout)
        return false
      }
      let drainedFirst = await group.next()!
      if !drainedFirst { core.beginShutdown() }
      group.cancelAll()
      await group.waitForAll()
      return drainedFirst
    }
  }

  // MARK: Introspection

  /// The number of tasks admitted and not yet finished.
  public var runningCount: Int { core.state.withLock { $0.running } }

  /// The number of tasks waiting for admission under ``maxConcurrency``.
  public var queuedCount: Int { core.state.withLock { $0.queued } }

  /// Whether ``addTask(name:priority:_:)`` currently accepts tasks (false once closing or shut down).
  public var isAcceptingTasks: Bool { core.state.withLock { $0.phase == .open } }

  /// The group whose task is running the caller, if any (a task-local, like aiotools'
  /// `current_ptaskgroup`). `nil` outside the group's tasks and once the group object is released.
  /// Child tasks created inside a group task inherit it, as task-locals do.
  public static var current: PersistentTaskGroup? {
    currentCore?.owner.withLock { $0.group }
  }

  // MARK: Package-internal observation, for leak tests

  /// Task bodies that have not returned yet (running, queued and rejected-but-not-yet-resumed).
  package var liveTaskCount: Int { core.state.withLock { $0.entries.count } }

  /// Whether the group holds no per-task state at all: no entries, no queue, no waiters, and no
  /// storage capacity left over from earlier bursts.
  package var storedStateIsEmpty: Bool {
    core.state.withLock { s in
      s.entries.isEmpty && s.entries.capacity <= 64 && s.admissionQueue.isEmpty && s.terminationWaiters.isEmpty
    }
  }

  /// Whether the group is closing or shut down and all its tasks have ended.
  package var isTerminated: Bool { core.state.withLock { $0.isTerminated } }

  /// Stops admission without waiting (what a graceful-shutdown handler needs: it cannot await).
  package func beginClose() { core.beginClose() }

  /// Cancels everything without waiting (what a cancellation handler needs: it cannot await).
  package func beginShutdown() { core.beginShutdown() }

  /// Waits, without reacting to cancellation, until the group is closing or shut down and empty.
  package func waitUntilTerminated() async { await core.waitUntilTerminated() }

  // MARK: Logging

  /// The logger of a group created without `logger:`.
  static let defaultLogger = Logger(label: "AsyncTools.PersistentTaskGroup")

  private static func logFailure(group: String, to logger: Logger) -> ErrorHandler {
    { error, taskName in
      logger.error("task '\(taskName ?? "unnamed")' of PersistentTaskGroup '\(group)' failed: \(error)")
    }
  }
}
