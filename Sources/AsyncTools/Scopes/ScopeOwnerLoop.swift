import DequeModule

/// The one owner loop of the scopes whose children may be added from any task: ``TaskScope`` (through its
/// ``TaskScope/Handle``) and ``ErrorGroupScope``.
///
/// A Swift task group can only be grown and cancelled by its owner, so a task other than the owner *queues* a job
/// here, and the owner (for an error group, the task running the group; for a task scope, its drainer helper) adds
/// the queued jobs to its group in ``run(spawn:cancelAll:)``. A cancellation request is relayed the same way, once,
/// and also to a parked *canceller* (a task scope's helper that throws into the outer group, which only a child
/// that throws can cancel).
///
/// The loop *closes* when the owner's side is done (``ownerFinished()``: its body has ended and it adds nothing
/// more itself) and no queued job is left queued or running; from then on ``enqueue(_:closedMessage:)`` throws
/// ``AsyncToolsError/Code/closed``, the owner's loop returns and the canceller is released.
///
/// Continuations are taken under the lock and resumed outside it.
final class ScopeOwnerLoop: Sendable {
  /// A child queued for the owner to add.
  struct Job: Sendable {
    var name: String?
    var priority: TaskPriority?
    var operation: @Sendable () async throws -> Void
  }

  /// What the owner must do next.
  enum Action: Sendable {
    /// Cancel the group first if `cancel`, then add `jobs`.
    case spawn([Job], cancel: Bool)
    /// The loop has closed: nothing can be added any more.
    case finish
  }

  struct State {
    var pending: Deque<Job> = []
    /// Jobs queued or running.
    var live = 0
    var ownerDone = false
    var closed = false
    var cancelRequested = false
    var cancelDelivered = false
    var owner: CheckedContinuation<Action, Never>?
    var canceller: CheckedContinuation<Bool, Never>?

    /// The owner's next action, or nil when it has to wait.
    mutating func nextAction() -> Action? {
      let cancel = cancelRequested && !cancelDelivered
      if cancel { cancelDelivered = true }
      if !pending.isEmpty || cancel {
        // Not `Array(pending)` when it is empty: Deque's copy then writes the count into the shared empty-array
        // singleton, which ThreadSanitizer reports as a race between two scopes.
        let jobs = pending.isEmpty ? [] : Array(pending)
        pending.removeAll(keepingCapacity: true)
        return .spawn(jobs, cancel: cancel)
      }
      return closed ? .finish : nil
    }

    mutating func wakeOwner() -> Wakeups {
      guard let owner, let action = nextAction() else { return Wakeups() }
      self.owner = nil
      return Wakeups(owner: (owner, action))
    }

    mutating func closeIfQuiescent() -> Wakeups {
      guard ownerDone, live == 0, !closed else { return Wakeups() }
      closed = true
      var wake = wakeOwner()
      if let canceller {
        self.canceller = nil
        wake.canceller = (canceller, false)
      }
      return wake
    }
  }

  /// Continuations to resume once the lock is released.
  struct Wakeups {
    var owner: (CheckedContinuation<Action, Never>, Action)?
    var canceller: (CheckedContinuation<Bool, Never>, Bool)?

    func resume() {
      if let (continuation, action) = owner { continuation.resume(returning: action) }
      if let (continuation, cancel) = canceller { continuation.resume(returning: cancel) }
    }
  }

  private let state = Locked(State())

  // MARK: Events

  /// Queues a job for the owner.
  ///
  /// - Throws: ``AsyncToolsError/Code/closed`` with `closedMessage` once the loop has closed.
  func enqueue(_ job: Job, closedMessage: @autoclosure () -> String) throws(AsyncToolsError) {
    let wake = try state.withLock { state throws(AsyncToolsError) -> Wakeups in
      if state.closed { throw AsyncToolsError(code: .closed, message: closedMessage()) }
      state.live += 1
      state.pending.append(job)
      return state.wakeOwner()
    }
    wake.resume()
  }

  /// A queued job has finished running.
  func jobFinished() {
    let wake = state.withLock { state -> Wakeups in
      state.live -= 1
      return state.closeIfQuiescent()
    }
    wake.resume()
  }

  /// The owner's side will add nothing more by itself. Idempotent.
  func ownerFinished() {
    let wake = state.withLock { state -> Wakeups in
      state.ownerDone = true
      return state.closeIfQuiescent()
    }
    wake.resume()
  }

  /// Closes the loop whatever is left, for an owner that has ended without the helpers ever running.
  func markClosed() {
    state.withLock { $0.closed = true }
  }

  /// Requests the cancellation of the whole group, once; does nothing once the loop has closed.
  func requestCancel() {
    let wake = state.withLock { state -> Wakeups in
      if state.cancelRequested || state.closed { return Wakeups() }
      state.cancelRequested = true
      var wake = state.wakeOwner()
      if let canceller = state.canceller {
        state.canceller = nil
        wake.canceller = (canceller, true)
      }
      return wake
    }
    wake.resume()
  }

  /// Whether ``requestCancel()`` was called.
  var isCancelRequested: Bool { state.withLock { $0.cancelRequested } }

  /// The jobs queued or running.
  var liveJobs: Int { state.withLock { $0.live } }

  // MARK: The owner and the canceller

  /// The owner's loop: adds queued jobs with `spawn` and relays a cancellation request to `cancelAll`, until the
  /// loop closes.
  func run(spawn: (Job) -> Void, cancelAll: () -> Void) async {
    while case .spawn(let jobs, let cancel) = await nextAction() {
      if cancel { cancelAll() }
      for job in jobs { spawn(job) }
    }
  }

  /// Waits for a cancellation request (`true`) or for the loop to close (`false`).
  func waitForCancelRequest() async -> Bool {
    await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
      let immediate = state.withLock { state -> Bool? in
        if state.cancelRequested { return true }
        if state.closed { return false }
        state.canceller = continuation
        return nil
      }
      if let immediate { continuation.resume(returning: immediate) }
    }
  }

  private func nextAction() async -> Action {
    await withCheckedContinuation { (continuation: CheckedContinuation<Action, Never>) in
      let immediate = state.withLock { state -> Action? in
        if let action = state.nextAction() { return action }
        state.owner = continuation
        return nil
      }
      if let immediate { continuation.resume(returning: immediate) }
    }
  }
}
