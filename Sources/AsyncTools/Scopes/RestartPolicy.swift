/// When a supervisor restarts a child that has ended, in Erlang/OTP's vocabulary.
///
/// | policy | OTP name | child returns normally | child throws |
/// |---|---|---|---|
/// | ``never`` | `temporary` | ends | reported, ends |
/// | ``onFailure`` | `transient` | ends | reported, restarted |
/// | ``always`` | `permanent` | restarted | reported, restarted |
///
/// A child that ends with `CancellationError` counts as returning normally. A child is never restarted once it or
/// the supervisor is cancelled.
public enum RestartPolicy: Hashable, Sendable, CustomStringConvertible {
  /// Never restart (OTP `temporary`; aiotools' `Supervisor` behaves like this for every child).
  case never
  /// Restart only after a failure (OTP `transient`).
  case onFailure
  /// Restart whenever the child ends, normally or not (OTP `permanent`).
  case always

  /// OTP's name for ``never``.
  public static var temporary: RestartPolicy { .never }
  /// OTP's name for ``onFailure``.
  public static var transient: RestartPolicy { .onFailure }
  /// OTP's name for ``always``.
  public static var permanent: RestartPolicy { .always }

  /// The case name: `"never"`, `"onFailure"` or `"always"`.
  public var description: String {
    switch self {
    case .never: "never"
    case .onFailure: "onFailure"
    case .always: "always"
    }
  }
}

/// How many restarts a supervisor tolerates in a sliding time window before it gives up (OTP's `intensity` and
/// `period`).
///
/// The limit is shared by all children of one supervisor, as in OTP: if a restart would make more than
/// ``maxRestarts`` restarts within the last ``period``, the supervisor cancels every child and throws
/// ``SupervisorError`` with code ``SupervisorError/Code/restartIntensityExceeded``.
public struct RestartIntensity: Hashable, Sendable, CustomStringConvertible {
  /// The most restarts allowed within ``period``; `0` means the first restart gives up.
  public var maxRestarts: Int
  /// The sliding window restarts are counted in. Must be positive.
  public var period: Duration

  /// Allows at most `maxRestarts` restarts within any window of length `period`.
  public init(maxRestarts: Int, within period: Duration) {
    self.maxRestarts = maxRestarts
    self.period = period
  }

  /// 3 restarts within 5 seconds. (OTP's default is 1 within 5 seconds; with backoff between restarts a little
  /// more room is friendlier, and a child that fails on start still gives up within about a second.)
  public static let `default` = RestartIntensity(maxRestarts: 3, within: .seconds(5))

  /// `"at most 3 restarts within 5.0 seconds"`.
  public var description: String { "at most \(maxRestarts) restarts within \(period)" }

  package func validate() throws(AsyncToolsError) {
    if maxRestarts < 0 { throw .invalidArgument("maxRestarts must not be negative, got \(maxRestarts)") }
    try period.requirePositive("restart intensity period")
  }
}
