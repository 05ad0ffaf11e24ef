/// How the body of a scope ended, as told to the scope's cleanup.
///
/// Every scoped API of AsyncTools (``withContext(_:isolation:_:)``, ``withContextGroup(_:isolation:_:)``,
/// ``withExitStack(isolation:_:)``) hands its cleanups an `ExitOutcome`, so a cleanup can commit on
/// success and roll back on failure — what Python's `__aexit__(exc_type, exc, tb)` learns from its
/// arguments.
///
/// Cancellation is not a separate case. Swift cancellation is cooperative: a body either notices it
/// and throws (almost always `CancellationError`), which arrives here as `.failure(CancellationError())`
/// and makes ``isCancellation`` true, or it finishes its work regardless, which is a `.success`.
/// So the outcome says what the body *did*, never merely that a cancellation was requested.
public enum ExitOutcome: Sendable {
  /// The body returned normally.
  case success
  /// The body threw this error (a `CancellationError` when it stopped because its task was cancelled).
  case failure(any Error)

  /// The error the body threw, or `nil` when it returned normally.
  public var error: (any Error)? {
    switch self {
    case .success: nil
    case .failure(let error): error
    }
  }

  /// Whether the body threw.
  public var isFailure: Bool { error != nil }

  /// Whether the body stopped with a `CancellationError` (its task was cancelled and it gave up).
  public var isCancellation: Bool { error is CancellationError }
}

extension ExitOutcome: CustomStringConvertible {
  /// `success`, or `failure(<error>)`.
  public var description: String {
    switch self {
    case .success: "success"
    case .failure(let error): "failure(\(error))"
    }
  }
}
