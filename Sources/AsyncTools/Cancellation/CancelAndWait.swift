// cancelAndWait: cancel a task and wait until it has really finished (aiotools `cancel_and_wait`).
//
// aiotools decides "was it only my cancellation?" by comparing asyncio cancel counts. Swift has no
// counts and no `uncancel()`: cancellation is one sticky flag per task. So the rules reduce to
// (1) cancel the target and await its result, then (2) look at the *caller's* own flag.

extension Task {
  /// Cancels this task and waits until it has finished, including its cleanup.
  ///
  /// The Swift spelling of aiotools' `cancel_and_wait(task)`:
  ///
  /// ```swift
  /// let worker = Task { try await consume(queue) }
  /// …
  /// try await worker.cancelAndWait()   // returns once `consume` has unwound
  /// ```
  ///
  /// - Returns: `nil` when the task ended by throwing `CancellationError` (the cancellation this
  ///   call caused is absorbed); the task's value when it returned one anyway, either because it
  ///   had already finished or because it handled the cancellation by returning (for example a
  ///   loop that returns what it has gathered so far). Swift cannot tell those two apart, and
  ///   returning on cancellation is idiomatic Swift, so neither is an error (aiotools raises
  ///   `InvalidStateError` for a task that swallows its cancellation).
  /// - Throws: the task's error when it failed with anything other than `CancellationError` (also
  ///   when it had failed before this call: Swift has no cheap "already done" query, and an error
  ///   nobody has seen must not vanish). Otherwise `CancellationError` when the *calling* task is
  ///   cancelled — before or during the wait — because that cancellation belongs to the caller.
  ///   A real error from the target wins over the caller's cancellation.
  ///
  /// Cancelling the caller while it waits does **not** cancel the target again and does not
  /// interrupt the target's cleanup (in asyncio it does): an unstructured task never inherits its
  /// awaiter's cancellation, and the target was already cancelled by this call anyway. The wait
  /// therefore always lasts until the target has finished; it cannot be cut short.
  ///
  /// Any `CancellationError` the target throws counts as the one this call caused: without cancel
  /// counts, a cancellation someone else requested earlier looks the same.
  ///
  /// Do not call it on the task you are running in: like awaiting one's own `value`, it would wait
  /// for itself forever.
  @discardableResult
  public func cancelAndWait() async throws -> Success? {
    cancel()
    let result = await self.result
    switch result {
    case .success(let value):
      try Task<Never, Never>.checkCancellation()
      return value
    case .failure(let error):
      guard error is CancellationError else { throw error }
      try Task<Never, Never>.checkCancellation()
      return nil
    }
  }
}

extension Task where Failure == Never {
  /// Cancels this non-throwing task and waits until it has finished; returns its value.
  ///
  /// A task that cannot throw handles cancellation by returning, so its value is always
  /// available. See `Task.cancelAndWait()` for the general rules: the caller's own cancellation
  /// (before or during the wait) is reported as `CancellationError`, and the target's cleanup is
  /// never interrupted by it.
  ///
  /// - Throws: `CancellationError` when the calling task is cancelled.
  @discardableResult
  public func cancelAndWait() async throws(CancellationError) -> Success {
    cancel()
    let value = await self.value
    if Task<Never, Never>.isCancelled { throw _Concurrency.CancellationError() }
    return value
  }
}

/// Cancels every task in `tasks` at once, then waits until all of them have finished.
///
/// The grouped form of aiotools' `cancel_and_wait(tasks)`. Every task is cancelled before the first
/// wait, so their cleanups run concurrently; the call returns when the slowest has finished.
///
/// - A task that ends with `CancellationError` (the cancellation this call caused) or that returns
///   a value is fine; values are discarded (use `Task.cancelAndWait()` per task to keep them).
/// - Every other error, including errors of tasks that had failed before this call, is collected
///   and thrown as one ``ErrorGroup``, ordered as the tasks are in `tasks` (aiotools skips tasks
///   that were already done; Swift cannot tell cheaply, and an unseen error must not vanish).
/// - Otherwise, if the calling task was cancelled before or during the wait, `CancellationError`.
///   Real errors win over the caller's cancellation (aiotools prefers the cancellation and loses
///   the errors).
/// - An empty collection is a no-op, even for a cancelled caller (as in aiotools).
///
/// - Throws: ``ErrorGroup`` of the tasks' real errors, or `CancellationError`.
public func cancelAndWait<Success: Sendable, Failure: Error>(
  _ tasks: some Collection<Task<Success, Failure>>
) async throws {
  if tasks.isEmpty { return }
  for task in tasks { task.cancel() }
  var errors: [any Error] = []
  for task in tasks {
    // Awaiting one after the other costs no concurrency: the tasks are already running and already
    // cancelled, so this loop ends when the slowest one ends.
    if case .failure(let error) = await task.result, !(error is CancellationError) {
      errors.append(error)
    }
  }
  if !errors.isEmpty {
    throw ErrorGroup("tasks failed while being cancelled", errors)
  }
  if Task<Never, Never>.isCancelled { throw CancellationError() }
}
