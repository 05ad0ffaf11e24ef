/// Why a supervisor gave up.
///
/// Thrown by ``withSupervisor(intensity:backoff:clock:random:isolation:errorHandler:onRestart:metrics:_:)`` after it
/// cancelled and awaited all of its children.
public struct SupervisorError: Error, Sendable, CustomStringConvertible {
  /// What made the supervisor give up.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    fileprivate enum Base: Hashable, Sendable { case restartIntensityExceeded }
    fileprivate var base: Base

    /// A restart would have exceeded the supervisor's ``RestartIntensity``.
    public static let restartIntensityExceeded = Code(base: .restartIntensityExceeded)

    /// `"restart intensity exceeded"`.
    public var description: String {
      switch base {
      case .restartIntensityExceeded: "restart intensity exceeded"
      }
    }
  }

  /// What made the supervisor give up.
  public var code: Code
  /// The name of the child whose restart crossed the limit (`"child #3"` for the third unnamed child added).
  public var child: String
  /// The number of restarts within ``period`` that the refused restart would have made (the limit plus one).
  public var restarts: Int
  /// The window of the intensity limit.
  public var period: Duration
  /// The child's last error, or `nil` if it had returned normally (a ``RestartPolicy/always`` child).
  public var lastFailure: (any Error)?

  /// Creates a supervisor error.
  public init(code: Code, child: String, restarts: Int, period: Duration, lastFailure: (any Error)?) {
    self.code = code
    self.child = child
    self.restarts = restarts
    self.period = period
    self.lastFailure = lastFailure
  }

  /// A sentence naming the child, the count, the window and the child's last error.
  public var description: String {
    var text = "SupervisorError(\(code)): child '\(child)' needed restart \(restarts) within \(period)"
    text += ", more than the allowed \(restarts - 1)"
    if let lastFailure { text += "; its last error: \(lastFailure)" }
    return text
  }
}
