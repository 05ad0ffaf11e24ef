// withCancellationShield: aiotools `ShieldScope` for Swift 6.3, which has no built-in shield
// (SE-0504 `withTaskCancellationShield` arrives in 6.4).
//
// Mechanism: Swift's cancellation flag propagates to child tasks but never into an unstructured
// `Task {}`, and awaiting a task's result is not interrupted by the awaiter's cancellation. So the
// body runs in an unstructured task that this function awaits — its only owner — and the caller's
// flag, which is sticky, is read once the body has finished. `Task {}` inherits the caller's
// task-local values, priority and actor isolation, so the body behaves as if it ran inline.

/// Runs `body` to completion even if the calling task is cancelled meanwhile, then reports that
/// cancellation.
///
/// The Swift spelling of aiotools' `ShieldScope`. Typical use: cleanup that must not be cut short.
///
/// ```swift
/// do {
///   try await serve(connection)
/// } catch {
///   // Even if this task is being cancelled, the goodbye is sent completely.
///   try await withCancellationShield { try await connection.sendGoodbye() }
///   throw error
/// }
/// ```
///
/// - Inside `body`, `Task.isCancelled` is `false` and cancellation checkpoints do not throw, until
///   something *inside* the shield cancels (a ``withTimeout(_:tolerance:clock:_:)`` in the body
///   still fires: its timer lives in the body's own task, unlike aiotools, whose nested timeouts a
///   shield neutralises).
/// - When the caller is cancelled while the body runs (the *deferred* cancellation), the body
///   still runs to its end and the shield then throws `CancellationError` instead of returning.
/// - If the body throws, its error wins over a deferred cancellation (as in aiotools). A
///   `CancellationError` the body throws itself propagates unchanged.
/// - A caller that was already cancelled when it entered the shield is *not* reported by the
///   shield: the shield defers only what arrives while it runs. Swift's flag is sticky, so the
///   caller still sees `Task.isCancelled == true` afterwards and its next checkpoint throws. This
///   keeps the common case — a shield inside `catch` after a cancellation — from replacing the
///   error being handled.
/// - Nested shields: an inner shield's body runs in a task nobody outside cancels, so a
///   cancellation of the caller is reported once, by the outermost shield (as in aiotools).
/// - Task-local values, task priority and the caller's actor isolation flow into the body, exactly
///   as for `Task {}`; children of the body inherit the shield, not the caller's cancellation.
///
/// - Parameter body: The work to protect. It runs in an unstructured task owned and awaited by this
///   call, which is why it must be `@escaping` and `sending`.
/// - Returns: The body's value.
/// - Throws: The body's error, else `CancellationError` if the caller was cancelled while the body
///   ran.
public func withCancellationShield<T: Sendable>(
  // `@_inheritActorContext` is what `Task.init` uses: a closure written in an actor-isolated
  // context stays on that actor, so shielding code does not change where it runs.
  @_inheritActorContext _ body: sending @escaping @isolated(any) () async throws -> T
) async throws -> T {
  let cancelledOnEntry = Task<Never, Never>.isCancelled
  let result = await Task(operation: body).result
  switch result {
  case .success(let value):
    if !cancelledOnEntry && Task<Never, Never>.isCancelled { throw CancellationError() }
    return value
  case .failure(let error):
    throw error
  }
}
