/// A handle on one task added to a ``PersistentTaskGroup``: await its outcome or cancel it.
///
/// This is aiotools' per-task future (issue #44), but with Swift's semantics: the handle *is* the
/// task, so ``cancel()`` really cancels it (in aiotools, cancelling the mirror future did not).
/// Dropping a handle does nothing; the group owns the task, not the handle.
///
/// Awaiting ``value`` or ``result`` from a task that is cancelled does **not** cancel the group's
/// task and does not stop the wait: like `Task.value`, it keeps waiting until the task ends.
/// Call ``cancel()`` first if that is what you want.
public struct TaskHandle<Success: Sendable>: Sendable, Hashable {
  @usableFromInline
  let task: Task<Success, any Error>

  @inlinable
  init(_ task: Task<Success, any Error>) {
    self.task = task
  }

  /// The task's return value, once it has finished.
  ///
  /// Throws the error the task threw, `CancellationError` if it was cancelled before it was
  /// admitted (see ``PersistentTaskGroup/maxConcurrency``) or if it ended by throwing one. Can be
  /// awaited any number of times, before or after the task has finished, from any task.
  @inlinable
  public var value: Success {
    get async throws { try await task.value }
  }

  /// The task's outcome as a `Result`, once it has finished. Never throws.
  @inlinable
  public var result: Result<Success, any Error> {
    get async { await task.result }
  }

  /// Requests cancellation of the task.
  ///
  /// A running task sees `Task.isCancelled` and its cancellation handlers fire, as usual in Swift:
  /// it ends when its code reacts. A task still waiting for admission under
  /// ``PersistentTaskGroup/maxConcurrency`` leaves the queue at once and never runs; its ``value``
  /// throws `CancellationError`. Cancelling a finished task does nothing.
  @inlinable
  public func cancel() {
    task.cancel()
  }

  /// Whether ``cancel()`` was called on this task (or the group cancelled it).
  @inlinable
  public var isCancelled: Bool { task.isCancelled }
}
