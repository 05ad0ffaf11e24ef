/// A handle on one child of a ``TaskScope``, an ``ErrorGroupScope`` or a ``Supervisor``: cancel that child alone,
/// await its value or result, or ask whether it has finished (aiotools' `TaskScope.create_task` returns the same).
///
/// ```swift
/// try await withTaskScope { scope in
///   let slow = scope.addTask { try await fetchReport() }
///   let fast = scope.addTask { try await fetchSummary() }
///   let summary = try await fast.value
///   if summary.isEnough { slow.cancel() }    // only that child: its siblings and the body go on
/// }
/// ```
///
/// The scope owns the child, not the handle: dropping the handle does nothing, and the scope still waits for the
/// child. A child's failure follows its scope's rules (reported to a task scope's handler, or failing an error
/// group) *and* is what ``value`` throws. Nothing but the outcome is kept, and only as long as a handle exists.
///
/// Awaiting ``value`` or ``result`` from a cancelled task does not cancel the child and does not stop the wait:
/// like `Task.value`, it waits until the child ends. Call ``cancel()`` first if that is what you want.
public struct ChildTaskHandle<Success: Sendable>: Sendable, Hashable {
  let record: ChildTaskRecord

  init(_ record: ChildTaskRecord) {
    self.record = record
  }

  /// The child's return value, once it has finished.
  ///
  /// Throws the error the child threw (`CancellationError` if it ended by throwing one). Can be awaited any number
  /// of times, before or after the child has finished, from any task.
  public var value: Success {
    get async throws { try await result.get() }
  }

  /// The child's outcome as a `Result`, once it has finished. Never throws.
  public var result: Result<Success, any Error> {
    get async { await record.outcome().map { $0 as! Success } }  // run(_:) stored a `Success`
  }

  /// Cancels this child alone: it sees `Task.isCancelled` and its cancellation handlers fire, as usual in Swift;
  /// its siblings and the scope's body are not affected. A supervised child that is cancelled is not restarted.
  /// Cancelling a child that has not started yet makes it start cancelled; cancelling a finished child does nothing.
  public func cancel() {
    record.cancel()
  }

  /// Whether the child has finished: its ``value`` is available without waiting.
  public var isFinished: Bool { record.isFinished }

  /// Whether ``cancel()`` was called on this handle. (A child cancelled with its whole scope does not set it.)
  public var isCancelled: Bool { record.isCancelRequested }

  /// Handles are equal when they refer to the same child.
  public static func == (lhs: Self, rhs: Self) -> Bool { lhs.record === rhs.record }

  /// Hashes the identity of the child.
  public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(record)) }
}

/// What a ``ChildTaskHandle`` refers to: the child's task while it runs, its outcome once it has ended, and the
/// callers waiting for that outcome.
///
/// Swift gives no `Task` for a child of a (discarding) task group, so the child publishes its own task here while it
/// runs, for ``cancel()``. The task reference is only valid while the child runs, so the child, before it ends,
/// withdraws it under the lock and, if a ``cancel()`` is calling `cancel()` on it at that moment (outside the lock,
/// because cancellation handlers are user code), waits for that call to return.
///
/// Not generic: the outcome is kept as `any Sendable` (free for `Void`, the common child) and cast back by the
/// handle. A generic record ran every child through unspecialised code that looked up its generic metadata at each
/// step (the record, its state, its lock), which cost about 1.6 µs per child, more than the child's task itself.
final class ChildTaskRecord: Sendable {
  typealias Outcome = Result<any Sendable, any Error>

  /// `UnsafeCurrentTask` is not `Sendable`: it must not be used once its task has ended. This box crosses threads
  /// only inside `state` (behind its lock), and ``cancel()`` uses it only while `cancelling` keeps the child from
  /// ending, which is what makes the `@unchecked` safe.
  struct TaskReference: @unchecked Sendable {
    let task: UnsafeCurrentTask
  }

  struct State {
    /// The child's task while it runs.
    var task: TaskReference?
    var cancelRequested = false
    /// A `cancel()` is calling `task.cancel()` outside the lock.
    var cancelling = false
    /// The child, ending, waits for that call to return.
    var exitWaiter: CheckedContinuation<Void, Never>?
    var outcome: Outcome?
    var waiters: [CheckedContinuation<Outcome, Never>] = []

    /// Stores the outcome and hands back the callers waiting for it.
    mutating func publish(_ outcome: Outcome) -> [CheckedContinuation<Outcome, Never>] {
      self.outcome = outcome
      defer { waiters = [] }
      return waiters
    }
  }

  private let state = Locked(State())

  /// Runs `operation` as this record's child, from the child's task; stores its outcome and returns the error it
  /// threw, if any.
  ///
  /// `nonisolated(nonsending)`, as the other calls a child makes through the record: it runs on the child's own
  /// executor, so entering it is no executor switch (each switch takes the task's status-record lock).
  nonisolated(nonsending) func run<Success: Sendable>(_ operation: () async throws -> Success) async -> (any Error)? {
    withUnsafeCurrentTask { task in
      let cancelNow = state.withLock { state -> Bool in
        state.task = task.map(TaskReference.init)
        return state.cancelRequested
      }
      if cancelNow { task?.cancel() }
    }
    let outcome: Outcome
    let failure: (any Error)?
    do {
      outcome = .success(try await operation())
      failure = nil
    } catch {
      outcome = .failure(error)
      failure = error
    }
    // Withdraw the task reference and publish the outcome in one critical section, unless a `cancel()` is calling
    // into the task at this moment: then wait for that call to return first.
    var waiters = state.withLock { state -> [CheckedContinuation<Outcome, Never>]? in
      if state.cancelling { return nil }
      state.task = nil
      return state.publish(outcome)
    }
    if waiters == nil {
      await withdrawTaskOnceCancelReturns()
      waiters = state.withLock { $0.publish(outcome) }
    }
    for waiter in waiters ?? [] { waiter.resume(returning: outcome) }
    return failure
  }

  /// Runs `operation` as this record's child and rethrows its error, for scopes that report or record it.
  nonisolated(nonsending) func runThrowing<Success: Sendable>(_ operation: () async throws -> Success) async throws {
    if let error = await run(operation) { throw error }
  }

  /// The child is ending while a `cancel()` calls into its task: waits until that call has returned (it resumes the
  /// exit waiter), then withdraws the task reference.
  nonisolated(nonsending) private func withdrawTaskOnceCancelReturns() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let resumeNow = state.withLock { state -> Bool in
        if state.cancelling {
          state.exitWaiter = continuation
          return false
        }
        state.task = nil
        return true
      }
      if resumeNow { continuation.resume() }
    }
  }

  func cancel() {
    let task = state.withLock { state -> TaskReference? in
      if state.cancelRequested || state.outcome != nil { return nil }
      state.cancelRequested = true
      guard let task = state.task else { return nil }
      state.cancelling = true
      return task
    }
    guard let task else { return }
    task.task.cancel()
    let exitWaiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
      state.cancelling = false
      guard let waiter = state.exitWaiter else { return nil }
      state.exitWaiter = nil
      state.task = nil
      return waiter
    }
    exitWaiter?.resume()
  }

  var isFinished: Bool { state.withLock { $0.outcome != nil } }

  var isCancelRequested: Bool { state.withLock { $0.cancelRequested } }

  func outcome() async -> Outcome {
    await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
      let ready = state.withLock { state -> Outcome? in
        if let outcome = state.outcome { return outcome }
        state.waiters.append(continuation)
        return nil
      }
      if let ready { continuation.resume(returning: ready) }
    }
  }
}
