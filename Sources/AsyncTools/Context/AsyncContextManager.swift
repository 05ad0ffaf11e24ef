/// A resource with an asynchronous set-up and tear-down: the Swift shape of Python's async context
/// manager (`__aenter__` / `__aexit__`, aiotools' `actxmgr`).
///
/// You rarely call ``enter()`` and ``exit(_:)`` yourself. Hand the manager to a scope, which pairs
/// them for you and cannot forget the exit:
///
/// ```swift
/// let rows = try await withContext(database.connection()) { connection in
///   try await connection.query("select 1")
/// }
/// ```
///
/// Write a conformance when the resource has state of its own; build one from a single closure
/// with ``AsyncContext`` when set-up and tear-down read best as one piece of code.
///
/// ## The contract every scope keeps
///
/// - ``enter()`` runs in the caller's task, so it can be cancelled. If it throws, nothing was
///   acquired: ``exit(_:)`` is **not** called, and the error propagates (or, in a context group,
///   becomes the member's failure).
/// - After a successful ``enter()``, ``exit(_:)`` is called **exactly once**, with the body's
///   ``ExitOutcome``, when the body returns, throws, or stops because its task was cancelled.
/// - ``exit(_:)`` runs inside a cancellation shield: an unstructured task the caller awaits, so
///   `Task.isCancelled` is `false` there and awaiting in a cleanup is not cut short by the
///   cancellation that ended the body.
/// - ``exit(_:)`` cannot suppress the body's error (Python's `__aexit__` returning `True`): a Swift
///   scope that swallowed the error would have no value to return. Recover inside the body instead.
///   If ``exit(_:)`` throws, its error is reported *alongside* the body's error, never instead of it
///   (see ``withContext(_:isolation:_:)`` for the rule).
public protocol AsyncContextManager<Value>: Sendable {
  /// What entering the manager yields to the body (a connection, a file, a lock token, …).
  associatedtype Value: Sendable

  /// Acquires the resource and returns the value the body works with.
  ///
  /// Runs in the caller's task and may observe its cancellation. Throwing means nothing was
  /// acquired, so ``exit(_:)`` will not be called.
  func enter() async throws -> Value

  /// Releases the resource, knowing how the body ended.
  ///
  /// Called exactly once after a successful ``enter()``, shielded from the cancellation of the
  /// caller's task. Throwing reports a cleanup failure; it never hides the body's own error.
  func exit(_ outcome: ExitOutcome) async throws
}
