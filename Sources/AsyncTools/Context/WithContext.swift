/// Enters `manager`, runs `body` with its value, and exits it however the body ends.
///
/// ```swift
/// let answer = try await withContext(database.connection()) { connection in
///   try await connection.query("select 42")
/// }
/// ```
///
/// - Cleanup always runs: ``AsyncContextManager/exit(_:)`` is called when the body returns, throws,
///   or stops because the task was cancelled, with the matching ``ExitOutcome``.
/// - Cleanup is not cut short: the exit runs in a cancellation shield, so a cancellation that ended
///   the body does not reach it (`Task.isCancelled` is `false` inside it) and every await in it
///   completes.
/// - If ``AsyncContextManager/enter()`` throws, the body does not run, `exit` is not called, and the
///   error propagates unchanged.
///
/// Errors: the body's error reaches the caller unchanged; so does an exit error when the body
/// succeeded. When both fail, nothing is dropped: the caller gets one ``ErrorGroup`` whose
/// `errors` are the body's error followed by the exit's. A manager cannot suppress the body's error.
///
/// - Parameters:
///   - manager: The resource to enter.
///   - isolation: The actor the body runs on; inferred from the caller, so the body may touch its
///     state and need not be `Sendable`.
///   - body: Works with the entered value; its result is returned.
/// - Returns: What `body` returned.
public func withContext<Manager: AsyncContextManager, T>(
  _ manager: Manager,
  isolation: isolated (any Actor)? = #isolation,
  _ body: (Manager.Value) async throws -> T
) async throws -> T {
  let value = try await manager.enter()
  let result: Result<T, any Error>
  do {
    result = .success(try await body(value))
  } catch {
    result = .failure(error)
  }
  let bodyError: (any Error)?
  let outcome: ExitOutcome
  switch result {
  case .success:
    bodyError = nil
    outcome = .success
  case .failure(let error):
    bodyError = error
    outcome = .failure(error)
  }
  var exitErrors: [any Error] = []
  do {
    try await _runShielded { try await manager.exit(outcome) }
  } catch {
    exitErrors.append(error)
  }
  if let error = scopeError(body: bodyError, cleanups: exitErrors) { throw error }
  return try result.get()
}
