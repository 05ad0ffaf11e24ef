/// The error ``withTimeout(_:tolerance:clock:_:)`` and ``withTimeout(at:tolerance:clock:_:)`` throw
/// when their deadline passed and the body ended because of it.
///
/// It is thrown only in that case: a body that finishes first, or that fails with an error of its
/// own — including a `TimeoutError` it threw itself — keeps its result. Match it with
/// `catch let error as TimeoutError`.
public struct TimeoutError: Error, Sendable, CustomStringConvertible {
  /// The deadline that passed, an instant of the clock that measured it. Cast it to the clock's
  /// instant type to compare it: `error.deadline as? ContinuousClock.Instant`.
  public let deadline: any InstantProtocol<Duration>

  /// The requested timeout when it was given as a duration (``withTimeout(_:tolerance:clock:_:)``,
  /// ``moveOnAfter(_:tolerance:clock:_:)``); `nil` for ``withTimeout(at:tolerance:clock:_:)``.
  public let duration: Duration?

  /// Creates a timeout error for a deadline, and the duration it was computed from if there was one.
  ///
  /// Useful to code that enforces deadlines of its own and wants callers to match one error type.
  public init(deadline: some InstantProtocol<Duration>, duration: Duration? = nil) {
    self.deadline = deadline
    self.duration = duration
  }

  /// `"timed out after 3.0 seconds (deadline …)"`, or `"timed out at deadline …"`.
  public var description: String {
    if let duration {
      return "timed out after \(duration.exactDescription) (deadline \(deadline))"
    }
    return "timed out at deadline \(deadline)"
  }
}
