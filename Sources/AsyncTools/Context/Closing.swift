/// Something released by an async `close()`: a connection, a file, a stream.
///
/// Conform to use ``withClosing(_:isolation:_:)`` and ``Closing`` (aiotools' `closing_async`;
/// Python's `aclosing`, which calls `aclose()` instead).
public protocol AsyncClosable: Sendable {
  /// Releases the resource. Called once, shielded from cancellation, when the scope ends.
  func close() async throws
}

/// An ``AsyncContextManager`` whose value is an already-open resource and whose exit closes it:
/// use it to put a closable thing on an ``AsyncExitStack`` or in a context group.
///
/// ```swift
/// let file = try await stack.enter(Closing(try await File.open(path)))
/// ```
public struct Closing<Resource: AsyncClosable>: AsyncContextManager {
  /// The resource that the exit closes.
  public let resource: Resource

  /// Wraps `resource`, which must already be open.
  public init(_ resource: Resource) {
    self.resource = resource
  }

  /// Returns the resource.
  public func enter() async throws -> Resource { resource }

  /// Closes the resource, whatever the outcome.
  public func exit(_ outcome: ExitOutcome) async throws {
    try await resource.close()
  }
}

/// Runs `body` with `resource` and closes it when the body returns, throws or is cancelled:
/// aiotools' `closing_async` / Python's `aclosing`.
///
/// ```swift
/// let reply = try await withClosing(try await Connection.open("db")) { connection in
///   try await connection.query("select 1")
/// }
/// ```
///
/// `close()` runs shielded from cancellation. Errors follow ``withContext(_:isolation:_:)``: the
/// body's error unchanged, a close error unchanged when the body succeeded, both as one
/// ``ErrorGroup`` (body first).
///
/// - Parameters:
///   - resource: An open resource; this scope owns closing it.
///   - isolation: The actor the body runs on; inferred from the caller.
///   - body: Works with the resource.
/// - Returns: What `body` returned.
public func withClosing<Resource: AsyncClosable, T>(
  _ resource: Resource,
  isolation: isolated (any Actor)? = #isolation,
  _ body: (Resource) async throws -> T
) async throws -> T {
  try await withContext(Closing(resource), isolation: isolation, body)
}
