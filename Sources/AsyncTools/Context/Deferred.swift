/// Registers async cleanups for the end of a ``withDeferred(isolation:_:)`` scope: an async `defer`
/// (aiotools' `adefer`). Call it like a function: `try deferred { await cleanup() }`.
public struct Deferred: Sendable {
  let stack: AsyncExitStack

  /// Registers `cleanup` to run when the scope ends, before every cleanup registered earlier.
  ///
  /// Throws ``AsyncToolsError/Code/closed`` if the scope has already ended (the registrar escaped).
  public func callAsFunction(_ cleanup: @escaping @Sendable () async throws -> Void) throws {
    try stack.callback(cleanup)
  }
}

/// Runs `body` with a registrar for async cleanups, and runs them when the body returns or throws:
/// an async `defer` (aiotools' `@adefer`; Swift's own async `defer` arrives only in 6.4).
///
/// ```swift
/// try await withDeferred { deferred in
///   let socket = try await listen(port: 8080)
///   try deferred { await socket.close() }
///   let log = try await openLog()
///   try deferred { await log.flush() }        // runs first
///   try await serve(socket, log)
/// }
/// ```
///
/// Cleanups run last-in first-out, shielded from cancellation, and **all** of them run even when
/// one throws — aiotools' `adefer` skips the remaining ones after a failure; AsyncTools does not.
/// Errors are reported as by ``withExitStack(isolation:_:)``: one error unchanged, several as one
/// ``ErrorGroup`` (the body's error first, then the cleanup errors in the order they ran).
///
/// - Parameters:
///   - isolation: The actor the body runs on; inferred from the caller.
///   - body: Registers cleanups with its `Deferred` argument and does the work.
/// - Returns: What `body` returned.
public func withDeferred<T>(
  isolation: isolated (any Actor)? = #isolation,
  _ body: (Deferred) async throws -> T
) async throws -> T {
  try await withExitStack(isolation: isolation) { stack in
    try await body(Deferred(stack: stack))
  }
}
