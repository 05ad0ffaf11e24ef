/// The delay a supervisor waits before restarting a child: exponential, capped, with jitter.
///
/// Before a child's `k`-th consecutive restart (`k` = 0, 1, 2, …) the supervisor sleeps, on its clock,
///
///     base(k)  = min(maximum, initial × multiplierᵏ)
///     delay(k) = base(k) × (1 − jitter × u)          u uniform in [0, 1) from the supervisor's random source
///
/// rounded to whole nanoseconds. So the delay never exceeds ``maximum`` and is at least `(1 − jitter) × base(k)`.
/// `k` returns to 0 when a run of the child lasted at least the supervisor's ``RestartIntensity/period``: restarts
/// older than that window no longer count against the intensity limit, and no longer lengthen the backoff either.
///
/// Pass a seeded random source to `withSupervisor` to make the jittered delays reproducible in tests.
public struct Backoff: Hashable, Sendable, CustomStringConvertible {
  /// The delay before the first restart. Zero or more.
  public var initial: Duration
  /// The cap on the delay. At least ``initial``.
  public var maximum: Duration
  /// The growth factor between consecutive restarts. At least 1.
  public var multiplier: Double
  /// The fraction of the delay randomly taken off, from 0 (no jitter) to 1.
  public var jitter: Double

  /// Creates a backoff; `withSupervisor` validates it and throws ``AsyncToolsError`` for out-of-range values.
  public init(initial: Duration, maximum: Duration, multiplier: Double = 2, jitter: Double = 0.2) {
    self.initial = initial
    self.maximum = maximum
    self.multiplier = multiplier
    self.jitter = jitter
  }

  /// Restart at once, every time (OTP's behaviour).
  public static let none = Backoff(initial: .zero, maximum: .zero, multiplier: 1, jitter: 0)

  /// 100 ms, doubling up to 30 s, with 20 % jitter.
  public static let `default` = Backoff(initial: .milliseconds(100), maximum: .seconds(30), multiplier: 2, jitter: 0.2)

  /// An exponential backoff from `initial` to `maximum`.
  public static func exponential(
    initial: Duration, maximum: Duration, multiplier: Double = 2, jitter: Double = 0.2
  ) -> Backoff {
    Backoff(initial: initial, maximum: maximum, multiplier: multiplier, jitter: jitter)
  }

  /// `"backoff from 0.1 seconds to 30.0 seconds, ×2.0, jitter 0.2"`.
  public var description: String {
    "backoff from \(initial) to \(maximum), ×\(multiplier), jitter \(jitter)"
  }

  package func validate() throws(AsyncToolsError) {
    if initial < .zero { throw .invalidArgument("backoff initial delay must not be negative, got \(initial)") }
    if maximum < initial {
      throw .invalidArgument("backoff maximum (\(maximum)) must not be less than its initial delay (\(initial))")
    }
    if !(multiplier >= 1) || !multiplier.isFinite {
      throw .invalidArgument("backoff multiplier must be a finite number of at least 1, got \(multiplier)")
    }
    if !(jitter >= 0 && jitter <= 1) { throw .invalidArgument("backoff jitter must be within 0...1, got \(jitter)") }
  }

  /// The delay before the `k`-th consecutive restart, for a random `unit` in [0, 1).
  func delay(beforeRestart k: Int, unit: Double) -> Duration {
    let initialNanos = Double(Self.nanoseconds(initial))
    let maximumNanos = Double(Self.nanoseconds(maximum))
    var base = initialNanos
    var step = 0
    while step < k && base < maximumNanos {
      base *= multiplier
      step += 1
    }
    base = min(base, maximumNanos)
    let nanos = (base * (1 - jitter * unit)).rounded()
    return .nanoseconds(Int64(nanos))
  }

  private static func nanoseconds(_ duration: Duration) -> Int64 {
    let (seconds, attoseconds) = duration.components
    return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
  }
}
