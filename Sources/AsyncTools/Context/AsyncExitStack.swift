import Synchronization

/// A scope's collection of async cleanups, unwound last-in first-out when the scope ends:
/// Python's `contextlib.AsyncExitStack`. Get one from ``withExitStack(isolation:_:)``.
///
/// ```swift
/// try await withExitStack { stack in
///   let config = try await stack.enter(openFile("app.toml"))
///   var connections: [Connection] = []
///   for host in try config.hosts() {
///     connections.append(try await stack.enter(connection(to: host)))   // however many there are
///   }
///   try stack.callback { await metrics.flush() }
///   try await serve(connections)
/// }   // flush, then the connections in reverse order, then the file
/// ```
///
/// Unwinding, when the scope's body returns or throws (also after a cancellation):
/// - cleanups run one after another in reverse order of registration;
/// - every cleanup runs, even when an earlier one threw;
/// - all of them run inside one cancellation shield, so none is cut short;
/// - each exit callback learns the outcome so far: the body's ``ExitOutcome``, or — once a
///   cleanup has thrown — `.failure` of the errors so far, combined as described below (Python
///   passes the current exception along the same way).
///
/// The scope then throws by the rule of ``withContext(_:isolation:_:)``: one error (the body's or a
/// single cleanup's) unchanged; several as one ``ErrorGroup`` — the body's error first, then the
/// cleanup errors in the order the cleanups ran.
///
/// The stack is `Sendable`, so tasks inside the scope may register on it too. Once unwinding has
/// begun it is closed: ``enter(_:)``, ``push(_:)`` and ``callback(_:)`` throw
/// ``AsyncToolsError/Code/closed`` — a reference that escaped the scope cannot register cleanups
/// nobody would run.
public final class AsyncExitStack: Sendable {
  private typealias Cleanup = @Sendable (ExitOutcome) async throws -> Void

  private enum State {
    case open([Cleanup])
    case closed
  }

  private let state = Locked(State.open([]))

  init() {}

  /// Enters `manager` now and registers its ``AsyncContextManager/exit(_:)`` to run when the stack
  /// unwinds.
  ///
  /// The enter runs in the calling task (it may be cancelled). If it throws, nothing is registered
  /// and the error propagates. If the stack is already closed, the manager is not entered and
  /// ``AsyncToolsError/Code/closed`` is thrown; if it closes while the enter is in flight, the
  /// manager is exited at once (shielded) and ``AsyncToolsError/Code/closed`` is thrown.
  ///
  /// - Returns: The manager's value.
  public func enter<Manager: AsyncContextManager>(_ manager: Manager) async throws -> Manager.Value {
    try checkOpen("enter a context manager on")
    let value = try await manager.enter()
    do {
      try register { outcome in try await manager.exit(outcome) }
    } catch let closed {
      // Closed while we were entering: nobody will unwind this manager, so exit it right here.
      var errors: [any Error] = []
      do {
        try await _runShielded { try await manager.exit(.failure(closed)) }
      } catch {
        errors.append(error)
      }
      throw scopeError(body: closed, cleanups: errors)!
    }
    return value
  }

  /// Registers an async cleanup that learns how the scope is ending (aiotools / Python
  /// `push_async_exit`). Throws ``AsyncToolsError/Code/closed`` once the stack is unwinding.
  public func push(_ exit: @escaping @Sendable (ExitOutcome) async throws -> Void) throws {
    try register(exit)
  }

  /// Registers an async cleanup (Python `push_async_callback`). Throws
  /// ``AsyncToolsError/Code/closed`` once the stack is unwinding.
  public func callback(_ cleanup: @escaping @Sendable () async throws -> Void) throws {
    try register { _ in try await cleanup() }
  }

  private func checkOpen(_ action: String) throws(AsyncToolsError) {
    let isOpen = state.withLock { state in
      if case .open = state { true } else { false }
    }
    if !isOpen { throw Self.closedError(action) }
  }

  private func register(_ cleanup: @escaping Cleanup) throws(AsyncToolsError) {
    try state.withLock { state throws(AsyncToolsError) in
      guard case .open(var cleanups) = state else { throw Self.closedError("register a cleanup on") }
      state = .closed  // release the array's storage so the append below does not copy it
      cleanups.append(cleanup)
      state = .open(cleanups)
    }
  }

  private static func closedError(_ action: String) -> AsyncToolsError {
    AsyncToolsError(code: .closed, message: "cannot \(action) an exit stack whose scope has ended")
  }

  /// Closes the stack and runs every cleanup, LIFO, in one shield. Returns the cleanup errors in
  /// the order they happened.
  func unwind(_ outcome: ExitOutcome) async -> [any Error] {
    let cleanups: [Cleanup] = state.withLock { state in
      defer { state = .closed }
      if case .open(let cleanups) = state { return cleanups }
      return []
    }
    if cleanups.isEmpty { return [] }
    return await _runShielded {
      var errors: [any Error] = []
      var current = outcome
      for cleanup in cleanups.reversed() {
        do {
          try await cleanup(current)
        } catch {
          errors.append(error)
          current = .failure(scopeError(body: outcome.error, cleanups: errors)!)
        }
      }
      return errors
    }
  }
}

/// Runs `body` with a fresh ``AsyncExitStack`` and unwinds the stack when the body returns or
/// throws: Python's `async with AsyncExitStack() as stack`.
///
/// Every registered cleanup runs, last-in first-out, shielded from cancellation, even when an
/// earlier one throws. Errors: the body's error alone comes back unchanged, as does a single
/// cleanup error when the body succeeded; otherwise one ``ErrorGroup`` holds the body's error first,
/// then the cleanup errors in the order the cleanups ran. After the scope the stack is closed, and
/// using an escaped reference throws ``AsyncToolsError/Code/closed``.
///
/// - Parameters:
///   - isolation: The actor the body runs on; inferred from the caller.
///   - body: Registers cleanups on the stack and does the work.
/// - Returns: What `body` returned.
public func withExitStack<T>(
  isolation: isolated (any Actor)? = #isolation,
  _ body: (AsyncExitStack) async throws -> T
) async throws -> T {
  let stack = AsyncExitStack()
  let result: Result<T, any Error>
  do {
    result = .success(try await body(stack))
  } catch {
    result = .failure(error)
  }
  let bodyError: (any Error)?
  switch result {
  case .success: bodyError = nil
  case .failure(let error): bodyError = error
  }
  let errors = await stack.unwind(bodyError.map(ExitOutcome.failure) ?? .success)
  if let error = scopeError(body: bodyError, cleanups: errors) { throw error }
  return try result.get()
}
