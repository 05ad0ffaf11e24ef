import Synchronization

/// A fail-fast group of named tasks: the first failure cancels everything, and all failures come out together.
///
/// You get an `ErrorGroupScope` from ``withErrorGroup(name:_:)``, the Swift form of aiotools' `TaskGroup` (and of
/// Python's `asyncio.TaskGroup`, Go's `errgroup`). Unlike ``TaskScope`` it is a reference type usable from any
/// task, and the running group is reachable as ``current`` from the body and from every task of the group:
///
/// ```swift
/// try await withErrorGroup(name: "fetch") { group in
///   for url in urls {
///     try group.addTask(name: url.description) { try await fetch(url) }
///   }
/// }
/// ```
public final class ErrorGroupScope: Sendable {
  /// The group whose body or task is running, if any: the innermost ``withErrorGroup(name:_:)`` of the current
  /// task (aiotools' `current_taskgroup`). Set for the group's body and every task added to it.
  ///
  /// Read-only: only ``withErrorGroup(name:_:)`` binds it, so no caller can make a task believe it runs in a
  /// group it does not belong to.
  public static var current: ErrorGroupScope? { currentScope }

  /// The task-local behind ``current``; internal so that its `withValue` projection is not public API.
  @TaskLocal static var currentScope: ErrorGroupScope?

  /// The group's name: the one given to ``withErrorGroup(name:_:)``, or `"error-group-N"`.
  public let name: String

  /// Thrown by a failing task into the underlying throwing group, so the runtime cancels every sibling at once.
  struct FailFast: Error {}

  /// The queue of tasks for the group's owner to add, and the cancellation relay.
  let loop = ScopeOwnerLoop()
  private let recordedFailures = Locked<[any Error]>([])

  init(name: String) {
    self.name = name
  }

  /// Adds a task to the group and returns its handle.
  ///
  /// If the task throws an error other than `CancellationError`, that error is kept for the group's
  /// ``ErrorGroup``, and every other task of the group and the body are cancelled. A task added to a cancelled group
  /// starts cancelled. The returned handle cancels this task alone (that is not a failure) or awaits its value.
  ///
  /// - Parameters:
  ///   - name: The Swift task name (visible as `Task.name` inside the task), or `nil`.
  ///   - priority: The task's priority; `nil` inherits the group's.
  ///   - operation: The task's work.
  /// - Returns: A handle on the task; discard it if you do not need it.
  /// - Throws: ``AsyncToolsError`` with code ``AsyncToolsError/Code/closed`` once the group has ended.
  @discardableResult
  public func addTask<Success: Sendable>(
    name: String? = nil, priority: TaskPriority? = nil, operation: @escaping @Sendable () async throws -> Success
  ) throws(AsyncToolsError) -> ChildTaskHandle<Success> {
    let record = ChildTaskRecord()
    let job = ScopeOwnerLoop.Job(name: name, priority: priority) { try await record.runThrowing(operation) }
    try loop.enqueue(job, closedMessage: "cannot add a task to error group '\(self.name)': it has ended")
    return ChildTaskHandle(record)
  }

  /// Cancels the body and every task of the group, present and future, without it counting as a failure.
  /// The group still waits for them all.
  public func cancelAll() {
    loop.requestCancel()
  }

  /// Whether a task of the group failed or ``cancelAll()`` was called.
  public var isCancelled: Bool { loop.isCancelRequested || !failures.isEmpty }

  /// The number of tasks added to the group and not finished yet (queued or running), not counting the body.
  public var liveTaskCount: Int { loop.liveJobs }

  // MARK: Internals used by withErrorGroup

  func recordFailure(_ error: any Error) {
    recordedFailures.withLock { $0.append(error) }
  }

  var failures: [any Error] { recordedFailures.withLock { $0 } }

  /// Wraps a task of the group: failures are recorded and thrown into the group so the runtime cancels the rest.
  func runTask(_ operation: () async throws -> Void) async throws {
    defer { loop.jobFinished() }
    do {
      try await operation()
    } catch is CancellationError {
      // Not a failure: typically a sibling's failure cancelled this task, or the task cancelled itself.
    } catch {
      recordFailure(error)
      throw FailFast()
    }
  }

  /// Wraps the body: as a task, except that a `CancellationError` of the body cancels the whole group (aiotools'
  /// `TaskGroup`, `asyncio.TaskGroup` and Swift's groups do the same), and the owner's side ends with it.
  func runBody(_ body: () async throws -> Void) async throws {
    defer { loop.ownerFinished() }
    do {
      try await body()
    } catch is CancellationError {
      loop.requestCancel()
    } catch {
      recordFailure(error)
      throw FailFast()
    }
  }
}

private let errorGroupCounter = Atomic<Int>(0)

/// Runs `body` and the tasks it adds as a fail-fast group: the first failure cancels the body and every other task,
/// and when all have ended every failure is thrown together in one ``ErrorGroup``.
///
/// The Swift form of aiotools' `TaskGroup` with `MultiError` (and of `asyncio.TaskGroup`):
/// - **A task or the body fails** (any error but `CancellationError`) → the error is kept; the body and all other
///   tasks are cancelled at once; tasks added later start cancelled. The group waits for everything to end.
/// - **Errors** → if any task or the body failed, ``ErrorGroup`` is thrown with *all* failures in the order they
///   happened, never nested (a task throwing an `ErrorGroup` has its members spliced in). `CancellationError`s are
///   never included: neither those of tasks cancelled because of the first failure, nor a task cancelling itself.
///   Even a single failure is thrown as an `ErrorGroup`, so there is one type to match.
/// - **No failure** → the body's value, once every task has ended.
/// - **The calling task is cancelled**, or ``ErrorGroupScope/cancelAll()`` is called → everything is cancelled and
///   awaited; then `CancellationError` is thrown unless something failed (then the `ErrorGroup`).
/// - **The body throws `CancellationError`** → not a failure, but every task is cancelled at once and awaited, as in
///   aiotools' `TaskGroup`, `asyncio.TaskGroup` and Swift's groups; then `CancellationError` is thrown unless
///   something failed. (A *task* ending with `CancellationError` cancels nobody.)
/// - **Handles** → ``ErrorGroupScope/addTask(name:priority:operation:)`` returns a ``ChildTaskHandle`` that cancels
///   that task alone (not a failure) or awaits its value.
/// - **Names and the task-local** → the body runs as a task named after the group; each task carries the name given
///   to ``ErrorGroupScope/addTask(name:priority:operation:)`` as its Swift task name; ``ErrorGroupScope/current``
///   is this group for the body and all its tasks.
///
/// The body runs in a child task (that is what lets a failure cancel it), so it must be `@Sendable` and its value
/// `Sendable`. Nothing is kept for tasks that end without failing.
///
/// - Parameters:
///   - name: The group's name; default `"error-group-N"`.
///   - body: Adds tasks and computes the value.
/// - Returns: The body's value.
/// - Throws: ``ErrorGroup`` of all failures, or `CancellationError`.
@discardableResult
public func withErrorGroup<Result: Sendable>(
  name: String? = nil,
  _ body: @Sendable (ErrorGroupScope) async throws -> Result
) async throws -> Result {
  let groupName = name ?? "error-group-\(errorGroupCounter.wrappingAdd(1, ordering: .relaxed).newValue)"
  let scope = ErrorGroupScope(name: groupName)
  let result = ErrorGroupResult<Result>()
  do {
    try await runErrorGroup(scope, result: result, body)
  } catch is ErrorGroupScope.FailFast {
    // The failures are recorded in `scope`; the group only rethrew the marker that cancelled it.
  }
  let failures = scope.failures
  if !failures.isEmpty { throw ErrorGroup("tasks of error group '\(groupName)' failed", failures) }
  if Task.isCancelled { throw CancellationError() }
  // No value and no failure: the body was cancelled through cancelAll() and ended with CancellationError.
  guard let value = result.value.withLock({ $0.take() }) else { throw CancellationError() }
  return value
}

private func runErrorGroup<Result: Sendable>(
  _ scope: ErrorGroupScope, result: ErrorGroupResult<Result>, _ body: @Sendable (ErrorGroupScope) async throws -> Result
) async throws {
  let groupName = scope.name
  try await withoutActuallyEscaping(body) { body in
    // Bound around the group, not inside it: every task the owner adds inherits it.
    try await ErrorGroupScope.$currentScope.withValue(scope) {
      try await withThrowingDiscardingTaskGroup { group in
        let runBody: @Sendable () async throws -> Void = {
          try await scope.runBody {
            let value = try await body(scope)
            result.value.withLock { $0 = value }
          }
        }
        if #available(macOS 26.0, iOS 26.0, watchOS 26.0, tvOS 26.0, visionOS 26.0, *) {
          group.addTask(name: groupName, operation: runBody)
        } else {
          group.addTask(operation: runBody)
        }
        // The owner's loop: add queued tasks, relay cancelAll(), until the body and every task have ended.
        await scope.loop.run(
          spawn: { job in
            let operation = job.operation
            let runTask: @Sendable () async throws -> Void = { try await scope.runTask(operation) }
            if #available(macOS 26.0, iOS 26.0, watchOS 26.0, tvOS 26.0, visionOS 26.0, *) {
              group.addTask(name: job.name, priority: job.priority, operation: runTask)
            } else {
              group.addTask(priority: job.priority, operation: runTask)
            }
          },
          cancelAll: { group.cancelAll() })
      }
    }
  }
}

/// Where the body, running in a child task, leaves its value for `withErrorGroup`.
private final class ErrorGroupResult<Value: Sendable>: Sendable {
  let value = Locked<Value?>(nil)
}
