/// Runs the operations concurrently and returns the first successful value; the others are
/// cancelled **and awaited** before `race` returns (aiotools' `race`).
///
/// ```swift
/// let page = try await race([
///   { try await fetch(from: primary) },
///   { try await fetch(from: mirror) },
/// ], continueOnError: true)
/// ```
///
/// - Losers: once a winner is known, every other operation is cancelled, and `race` returns only
///   after all of them have ended, cleanups included. No operation outlives the call.
/// - `continueOnError == false` (the default): the first operation to *end*, successfully or not,
///   decides. A failure is rethrown after the others were cancelled and awaited.
/// - `continueOnError == true`: failures are skipped until one operation succeeds. If all fail,
///   `race` throws an ``ErrorGroup`` of every failure in the order the operations ended. Use
///   ``raceCollectingErrors(_:)`` to also get the failures that came before the winner.
/// - `CancellationError` thrown by an operation is a failure like any other (unlike aiotools,
///   which lets a child's cancellation escape even with `continue_on_error`): an operation that
///   gave up by itself does not stop the others. But when the *caller* is cancelled, all
///   operations are cancelled with it, and if none succeeds `race` throws `CancellationError`
///   rather than an `ErrorGroup` of the consequences.
///
/// - Throws: ``AsyncToolsError/Code/invalidArgument`` if `operations` is empty; otherwise as
///   described above.
@inlinable
public func race<T: Sendable>(
  _ operations: [@Sendable () async throws -> T], continueOnError: Bool = false
) async throws -> T {
  try await raceCore(operations, continueOnError: continueOnError, collectErrors: false).value
}

/// Variadic form of ``race(_:continueOnError:)``.
@inlinable
public func race<T: Sendable>(
  continueOnError: Bool = false, _ operations: @Sendable () async throws -> T...
) async throws -> T {
  try await raceCore(operations, continueOnError: continueOnError, collectErrors: false).value
}

/// Like ``race(_:continueOnError:)`` with `continueOnError: true`, but also returns the errors of
/// the operations that failed before the winner, in the order they ended (aiotools' `race`
/// returns the same `(result, errors)` pair).
///
/// - Throws: ``AsyncToolsError/Code/invalidArgument`` if `operations` is empty; an ``ErrorGroup``
///   of all failures if every operation fails; `CancellationError` if the caller was cancelled and
///   no operation succeeded.
@inlinable
public func raceCollectingErrors<T: Sendable>(
  _ operations: [@Sendable () async throws -> T]
) async throws -> (value: T, errors: [any Error]) {
  try await raceCore(operations, continueOnError: true, collectErrors: true)
}

/// The shared body of the race functions; inlinable so callers get a specialised task group.
@inlinable
func raceCore<T: Sendable>(
  _ operations: [@Sendable () async throws -> T], continueOnError: Bool, collectErrors: Bool
) async throws -> (value: T, errors: [any Error]) {
  guard !operations.isEmpty else {
    throw AsyncToolsError.invalidArgument("race() needs at least one operation, got none")
  }
  // Children never throw into the group: their outcome is a value, so the group's own error path
  // (cancel the rest, wait for them) is only taken by this body, on purpose.
  return try await withThrowingTaskGroup(of: Result<T, any Error>.self) { group in
    for operation in operations {
      group.addTask {
        do { return .success(try await operation()) } catch { return .failure(error) }
      }
    }
    var errors: [any Error] = []
    while let outcome = try await group.next() {
      switch outcome {
      case .success(let value):
        // Returning from the body waits for the cancelled losers: their cleanups finish first.
        group.cancelAll()
        return (value, collectErrors ? errors : [])
      case .failure(let error):
        guard continueOnError else { throw error }  // throwing cancels and awaits the rest
        errors.append(error)
      }
    }
    if Task.isCancelled { throw CancellationError() }
    throw ErrorGroup("all \(operations.count) operations of race() failed", errors)
  }
}
