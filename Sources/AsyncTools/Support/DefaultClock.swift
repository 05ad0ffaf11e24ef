/// The clock every AsyncTools API uses when you do not pass one: `ContinuousClock`, unless it was
/// created inside a scope that provides its own time, such as AsyncToolsTesting's
/// `withVirtualTime`, where it reads and sleeps on that scope's virtual clock.
///
/// ```swift
/// // Production: real time.
/// let cache = try AsyncLRUCache<String, Int>(maxSize: 100, expireAfter: .seconds(60))
///
/// // Test: the same code, in virtual time.
/// try await withVirtualTime { clock in
///   let cache = try AsyncLRUCache<String, Int>(maxSize: 100, expireAfter: .seconds(60))
///   _ = try await cache.value(forKey: "k") { 1 }
///   try await Task.sleep(for: .seconds(61))     // virtual too
///   #expect(!cache.contains("k"))               // expired after 60 virtual seconds
/// }
/// ```
///
/// A `DefaultClock` binds to its scope when it is created (when a default argument is
/// evaluated): one created inside `withVirtualTime` stays virtual, even if a task outside the
/// scope uses it later, and one created outside stays real. Its ``Instant`` is a duration since
/// an origin: the boot-time epoch of `ContinuousClock` for a real clock, the virtual zero inside
/// a scope. Instants of a real and a virtual `DefaultClock` must not be mixed.
public struct DefaultClock: Clock, Sendable {
  /// A point in time: a duration since the clock's origin.
  public struct Instant: InstantProtocol, Sendable, CustomStringConvertible {
    /// The time elapsed since the clock's origin.
    public var offset: Duration

    /// Creates the instant `offset` after the clock's origin.
    public init(offset: Duration) {
      self.offset = offset
    }

    /// The instant `duration` after this one.
    public func advanced(by duration: Duration) -> Instant {
      Instant(offset: offset + duration)
    }

    /// The duration from this instant to `other`.
    public func duration(to other: Instant) -> Duration {
      other.offset - offset
    }

    /// Orders instants by their offsets.
    public static func < (lhs: Instant, rhs: Instant) -> Bool {
      lhs.offset < rhs.offset
    }

    /// The offset, exactly (to the attosecond), e.g. `"+3.0 seconds"`.
    public var description: String { offset.exactOffsetDescription }
  }

  /// The scope's time source, or `nil` for real time.
  let source: (any ScopedTimeSource)?

  /// The clock of the current scope: virtual inside `withVirtualTime`, `ContinuousClock` elsewhere.
  public init() {
    source = ScopedTime.source
  }

  /// The current time.
  public var now: Instant {
    if let source { return Instant(offset: source.now) }
    let clock = ContinuousClock()
    return Instant(offset: clock.systemEpoch.duration(to: clock.now))
  }

  /// `ContinuousClock`'s resolution in real time; zero in a virtual scope.
  public var minimumResolution: Duration {
    source == nil ? ContinuousClock().minimumResolution : .zero
  }

  /// Suspends until `deadline`, on the scope's clock or on `ContinuousClock`.
  ///
  /// - Throws: `CancellationError` if the task is cancelled before or while sleeping.
  public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
    if let source {
      try await source.sleep(until: deadline.offset, tolerance: tolerance)
    } else {
      let clock = ContinuousClock()
      try await clock.sleep(until: clock.systemEpoch.advanced(by: deadline.offset), tolerance: tolerance)
    }
  }
}
