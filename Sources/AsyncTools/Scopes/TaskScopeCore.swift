import DequeModule
import Synchronization

/// The shared state of one task scope: what its Sendable ``TaskScope/Handle`` talks to.
///
/// Two paths add children to a scope:
/// - the **fast path**, `TaskScope.addTask` from the body: straight into the scope's discarding group (the body
///   owns it), costing one task plus two relaxed-contention atomics per child (`started`, `finished`);
/// - the **handle path**, `TaskScope.Handle.addTask` from any task: a job is queued under the lock and a *drainer*
///   helper task (a child of the scope's group) adds it to its own nested discarding group.
///
/// A Swift task group can only be cancelled by its owner or by a child that throws, so a *canceller* helper
/// (also a child of the scope's group) waits for a cancellation request from the handle and then throws
/// ``CancelAll`` to cancel the group. Both helpers start lazily, the first time the body asks for the handle, and
/// exit once the scope is *closed*: the body has ended, every fast-path child has finished (`finished == started`)
/// and no handle-path child is queued or running.
final class TaskScopeCore: Sendable {
  /// Thrown by the canceller helper into the scope's group; swallowed by `withTaskScope`.
  struct CancelAll: Error {}

  /// A child added through the handle, waiting for the drainer.
  struct Job: Sendable {
    var name: String?
    var priority: TaskPriority?
    var operation: @Sendable () async throws -> Void
  }

  /// What the drainer must do next.
  enum DrainerAction: Sendable {
    case spawn([Job], cancelFirst: Bool)
    case finish
  }

  struct State: Sendable {
    var helpersStarted = false
    var bodyDone = false
    var fastPathDrained = false
    var pending: Deque<Job> = []
    /// Handle-path children queued or running.
    var nestedLive = 0
    var cancelRequested = false
    var nestedCancelled = false
    var closed = false
    var drainer: CheckedContinuation<DrainerAction, Never>?
    var canceller: CheckedContinuation<Bool, Never>?

    var isQuiescent: Bool { bodyDone && fastPathDrained && nestedLive == 0 }
  }

  let errorHandler: @Sendable (any Error) -> Void
  /// Fast-path children added (only the body's task increments it) and finished (every child increments it).
  /// Separate atomics so the per-child path never takes the lock; `bodyEnded` tells a finishing child that
  /// `started` is final.
  let started = Atomic<Int>(0)
  let finished = Atomic<Int>(0)
  let bodyEnded = Atomic<Bool>(false)
  let state = Locked(State())

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
      fastPathDrained()
    }
  }

  /// Called by the body's task once the body has returned or thrown; `started` is final from here on.
  func bodyFinished() {
    bodyEnded.store(true, ordering: .sequentiallyConsistent)
    let drained =
      finished.load(ordering: .sequentiallyConsistent) == started.load(ordering: .sequentiallyConsistent)
    let wake = state.withLock { state -> Wakeups in
      state.bodyDone = true
      if drained { state.fastPathDrained = true }
      return Self.closeIfQuiescent(&state)
    }
    wake.resume()
  }

  private func fastPathDrained() {
    let wake = state.withLock { state -> Wakeups in
      state.fastPathDrained = true
      return Self.closeIfQuiescent(&state)
    }
    wake.resume()
  }

  /// Marks the scope closed (no child can be added any more) once nothing can add children.
  /// Called by `withTaskScope` when the group has returned, in case the helpers never started.
  func markClosed() {
    state.withLock { $0.closed = true }
  }

  // MARK: Handle path

  /// Starts the helpers once; returns whether the caller must spawn them.
  func startHelpers() -> Bool {
    state.withLock { state in
      if state.helpersStarted { return false }
      state.helpersStarted = true
      return true
    }
  }

  func enqueue(_ job: Job) throws(AsyncToolsError) {
    let wake = try state.withLock { state throws(AsyncToolsError) -> Wakeups in
      if state.closed {
        throw AsyncToolsError(
          code: .closed, message: "cannot add a task to a task scope that has ended (all its children finished)")
      }
      state.nestedLive += 1
      state.pending.append(job)
      return Wakeups(drainer: Self.takeDrainerAction(&state))
    }
    wake.resume()
  }

  /// Requests cancellation of every child, fast path and handle path alike.
  func requestCancelAll() {
    let wake = state.withLock { state -> Wakeups in
      if state.cancelRequested || state.closed { return Wakeups() }
      state.cancelRequested = true
      var wake = Wakeups()
      if let canceller = state.canceller {
        state.canceller = nil
        wake.canceller = (canceller, true)
      }
      wake.drainer = Self.takeDrainerAction(&state)
      return wake
    }
    wake.resume()
  }

  var isCancelRequested: Bool { state.withLock { $0.cancelRequested } }

  func nestedChildFinished() {
    let wake = state.withLock { state -> Wakeups in
      state.nestedLive -= 1
      return Self.closeIfQuiescent(&state)
    }
    wake.resume()
  }

  // MARK: Helpers

  /// The drainer: adds queued handle-path children to a nested discarding group until the scope closes.
  func runDrainer() async {
    await withDiscardingTaskGroup { nested in
      while true {
        switch await nextAction() {
        case .finish:
          return
        case .spawn(let jobs, let cancelFirst):
          if cancelFirst { nested.cancelAll() }
          for job in jobs {
            let operation = job.operation
            let body: @Sendable () async -> Void = { [self] in
              do { try await operation() } catch { report(error) }
              nestedChildFinished()
            }
            if #available(macOS 26.0, iOS 26.0, watchOS 26.0, tvOS 26.0, visionOS 26.0, *) {
              nested.addTask(name: job.name, priority: job.priority, operation: body)
            } else {
              nested.addTask(priority: job.priority, operation: body)
            }
          }
        }
      }
    }
  }

  /// The canceller: throws ``CancelAll`` into the scope's group when the handle asks for cancellation.
  func runCanceller() async throws {
    let cancel = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
      let immediate = state.withLock { state -> Bool? in
        if state.cancelRequested { return true }
        if state.closed { return false }
        state.canceller = continuation
        return nil
      }
      if let immediate { continuation.resume(returning: immediate) }
    }
    if cancel { throw CancelAll() }
  }

  private func nextAction() async -> DrainerAction {
    await withCheckedContinuation { (continuation: CheckedContinuation<DrainerAction, Never>) in
      let immediate = state.withLock { state -> DrainerAction? in
        if let action = Self.nextDrainerAction(&state) { return action }
        state.drainer = continuation
        return nil
      }
      if let immediate { continuation.resume(returning: immediate) }
    }
  }

  // MARK: State transitions (called with the lock held)

  /// Continuations to resume once the lock is released.
  struct Wakeups {
    var drainer: (CheckedContinuation<DrainerAction, Never>, DrainerAction)?
    var canceller: (CheckedContinuation<Bool, Never>, Bool)?

    func resume() {
      if let (continuation, action) = drainer { continuation.resume(returning: action) }
      if let (continuation, cancel) = canceller { continuation.resume(returning: cancel) }
    }
  }

  /// The drainer's next action, or nil when it has to wait.
  private static func nextDrainerAction(_ state: inout State) -> DrainerAction? {
    let cancelFirst = state.cancelRequested && !state.nestedCancelled
    if cancelFirst { state.nestedCancelled = true }
    if !state.pending.isEmpty || cancelFirst {
      // Not `Array(state.pending)` when it is empty: Deque's copy then writes the count into the
      // shared empty-array singleton, which ThreadSanitizer reports as a race between two scopes.
      let jobs = state.pending.isEmpty ? [] : Array(state.pending)
      state.pending.removeAll(keepingCapacity: true)
      return .spawn(jobs, cancelFirst: cancelFirst)
    }
    return state.closed ? .finish : nil
  }

  private static func takeDrainerAction(_ state: inout State) -> (CheckedContinuation<DrainerAction, Never>, DrainerAction)? {
    guard let drainer = state.drainer, let action = nextDrainerAction(&state) else { return nil }
    state.drainer = nil
    return (drainer, action)
  }

  private static func closeIfQuiescent(_ state: inout State) -> Wakeups {
    guard state.isQuiescent, !state.closed else { return Wakeups() }
    state.closed = true
    var wake = Wakeups()
    if let canceller = state.canceller {
      state.canceller = nil
      wake.canceller = (canceller, false)
    }
    if let drainer = takeDrainerAction(&state) { wake.drainer = drainer }
    return wake
  }
}
