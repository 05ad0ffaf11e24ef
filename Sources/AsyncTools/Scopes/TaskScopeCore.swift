import Synchronization

/// The shared state of one task scope: what its Sendable ``TaskScope/Handle`` talks to.
///
/// Two paths add children to a scope:
/// - the **fast path**, `TaskScope.addTask` from the body: straight into the scope's discarding group (the body
///   owns it), costing one task plus two relaxed-contention atomics per child (`started`, `finished`);
/// - the **handle path**, `TaskScope.Handle.addTask` from any task: a job is queued in the scope's
///   ``ScopeOwnerLoop`` and a *drainer* helper task (a child of the scope's group) adds it to its own nested
///   discarding group.
///
/// A Swift task group can only be cancelled by its owner or by a child that throws, so a *canceller* helper
/// (also a child of the scope's group) waits for a cancellation request from the handle and then throws
/// ``CancelAll`` to cancel the group. Both helpers start lazily, the first time the body asks for the handle, and
/// exit once the loop is *closed*: the body has ended, every fast-path child has finished (`finished == started`)
/// and no handle-path child is queued or running.
final class TaskScopeCore: Sendable {
  /// Thrown by the canceller helper into the scope's group; swallowed by `withTaskScope`.
  struct CancelAll: Error {}

  let errorHandler: @Sendable (any Error) -> Void
  /// Fast-path children added (only the body's task increments it) and finished (every child increments it).
  /// Separate atomics so the per-child path never takes the lock; `bodyEnded` tells a finishing child that
  /// `started` is final.
  let started = Atomic<Int>(0)
  let finished = Atomic<Int>(0)
  let bodyEnded = Atomic<Bool>(false)
  let helpersStarted = Atomic<Bool>(false)
  let loop = ScopeOwnerLoop()

  init(errorHandler: @escaping @Sendable (any Error) -> Void) {
    self.errorHandler = errorHandler
  }

  // MARK: Reporting

  /// Reports a child's error unless it is a `CancellationError` (a cancelled child is not a failure).
  @inline(__always)
  func report(_ error: any Error) {
    if !(error is CancellationError) { errorHandler(error) }
  }

  // MARK: Fast path bookkeeping

  @inline(__always)
  func fastPathChildStarted() {
    started.wrappingAdd(1, ordering: .sequentiallyConsistent)
  }

  @inline(__always)
  func fastPathChildFinished() {
    let done = finished.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue
    // Only the last child of an ended body gets past this check, so the lock is taken once per scope.
    if bodyEnded.load(ordering: .sequentiallyConsistent) && done == started.load(ordering: .sequentiallyConsistent) {
      loop.ownerFinished()
    }
  }

  /// Called by the body's task once the body has returned or thrown; `started` is final from here on.
  func bodyFinished() {
    bodyEnded.store(true, ordering: .sequentiallyConsistent)
    if finished.load(ordering: .sequentiallyConsistent) == started.load(ordering: .sequentiallyConsistent) {
      loop.ownerFinished()
    }
  }

  /// Marks the scope closed (no child can be added any more) once nothing can add children.
  /// Called by `withTaskScope` when the group has returned, in case the helpers never started.
  func markClosed() {
    loop.markClosed()
  }

  /// The children added and not finished yet, from both paths (the helpers are not counted).
  var liveTaskCount: Int {
    let fastPath = started.load(ordering: .sequentiallyConsistent) - finished.load(ordering: .sequentiallyConsistent)
    return fastPath + loop.liveJobs
  }

  // MARK: Handle path

  /// Starts the helpers once; returns whether the caller must spawn them.
  func startHelpers() -> Bool {
    helpersStarted.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged
  }

  func enqueue(_ job: ScopeOwnerLoop.Job) throws(AsyncToolsError) {
    try loop.enqueue(job, closedMessage: "cannot add a task to a task scope that has ended (all its children finished)")
  }

  /// Requests cancellation of every child, fast path and handle path alike.
  func requestCancelAll() {
    loop.requestCancel()
  }

  var isCancelRequested: Bool { loop.isCancelRequested }

  // MARK: Helpers

  /// The drainer: adds queued handle-path children to a nested discarding group until the scope closes.
  func runDrainer() async {
    await withDiscardingTaskGroup { nested in
      await loop.run(
        spawn: { job in
          let operation = job.operation
          let body: @Sendable () async -> Void = { [self] in
            do { try await operation() } catch { report(error) }
            loop.jobFinished()
          }
          if #available(macOS 26.0, iOS 26.0, watchOS 26.0, tvOS 26.0, visionOS 26.0, *) {
            nested.addTask(name: job.name, priority: job.priority, operation: body)
          } else {
            nested.addTask(priority: job.priority, operation: body)
          }
        },
        cancelAll: { nested.cancelAll() })
    }
  }

  /// The canceller: throws ``CancelAll`` into the scope's group when the handle asks for cancellation.
  func runCanceller() async throws {
    if await loop.waitForCancelRequest() { throw CancelAll() }
  }
}
