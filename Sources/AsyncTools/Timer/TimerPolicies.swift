// The knobs of a periodic timer: what happens when a tick is still running when the next one is
// due (`DelayPolicy`), how deadlines are computed (`Schedule`), and what a fixed-rate schedule does
// when the timer itself falls behind (`MissedTickBehavior`). Value types with static members, so
// new cases can be added later without breaking exhaustive switches in user code.

extension PeriodicTimer {
  /// What the timer does when a tick is due while an earlier tick is still running.
  ///
  /// | Policy | aiotools `TimerDelayPolicy` | A slow tick … |
  /// |---|---|---|
  /// | ``overlap`` | `DEFAULT` | keeps running beside the new one; all are cancelled and awaited on stop |
  /// | ``cancelPrevious`` | `CANCEL` | is cancelled and awaited (cleanup included) before the new one starts |
  /// | ``skipWhileRunning`` | — | keeps running; the ticks that fall due meanwhile are skipped |
  public struct DelayPolicy: Hashable, Sendable, CustomStringConvertible {
    enum Kind: Hashable, Sendable {
      case overlap
      case cancelPrevious
      case skipWhileRunning
    }
    let kind: Kind

    /// Every tick starts on time, even if earlier ticks are still running: slow ticks run side by
    /// side and may accumulate. Stopping the timer cancels all of them and waits for all of them.
    /// aiotools' `TimerDelayPolicy.DEFAULT`.
    public static let overlap = DelayPolicy(kind: .overlap)

    /// Before a tick starts, the previous tick is cancelled **and awaited**, cleanup included.
    ///
    /// At most one tick runs at a time. Slow cleanup therefore delays the new tick: with a 0.1 s
    /// interval, ticks that take longer than that and 0.05 s of cleanup, the ``Schedule/fixedDelay``
    /// schedule fires at 0, 0.15, 0.30, 0.45 (as aiotools' `TimerDelayPolicy.CANCEL` does), the
    /// ``Schedule/fixedRate`` schedule at 0, 0.15, 0.25, 0.35 (it returns to its grid).
    ///
    /// A tick that ignores its cancellation (catches `CancellationError` and carries on, or never
    /// checks) simply delays the next tick until it returns; the timer lives on. (aiotools' CANCEL
    /// timer dies with `InvalidStateError` in that case.)
    public static let cancelPrevious = DelayPolicy(kind: .cancelPrevious)

    /// A tick that falls due while the previous tick is still running is skipped (its number is
    /// used up, it never runs). At most one tick runs at a time and nothing is cancelled, except
    /// by stopping the timer. Not in aiotools.
    public static let skipWhileRunning = DelayPolicy(kind: .skipWhileRunning)

    public var description: String {
      switch kind {
      case .overlap: "overlap"
      case .cancelPrevious: "cancelPrevious"
      case .skipWhileRunning: "skipWhileRunning"
      }
    }
  }

  /// How the instants at which ticks fall due are computed.
  public struct Schedule: Hashable, Sendable, CustomStringConvertible {
    enum Kind: Hashable, Sendable {
      case fixedDelay
      case fixedRate(MissedTickBehavior)
    }
    let kind: Kind

    /// aiotools' schedule: after starting a tick the timer sleeps for one interval, measured from
    /// the moment the tick was started. Every delay in starting a tick — a late wake-up of the
    /// timer, the cleanup ``DelayPolicy/cancelPrevious`` waits for — shifts all later ticks: the
    /// schedule drifts. Tick *n* falls due one interval after tick *n − 1* actually started.
    public static let fixedDelay = Schedule(kind: .fixedDelay)

    /// Tick *n* falls due at `start + n × interval`, whatever happened before: late wake-ups do
    /// not accumulate, the schedule does not drift (like swift-async-algorithms'
    /// `AsyncTimerSequence` and Tokio's `Interval`). When the timer itself falls behind by more
    /// than an interval, the overdue ticks are run in a ``MissedTickBehavior/burst``.
    public static let fixedRate = Schedule(kind: .fixedRate(.burst))

    /// A fixed-rate schedule (see ``fixedRate``) with a chosen behaviour for ticks the timer
    /// could not start on time.
    public static func fixedRate(missedTicks: MissedTickBehavior) -> Schedule {
      Schedule(kind: .fixedRate(missedTicks))
    }

    public var description: String {
      switch kind {
      case .fixedDelay: "fixedDelay"
      case .fixedRate(let missed): "fixedRate(missedTicks: \(missed))"
      }
    }
  }

  /// What a ``Schedule/fixedRate`` timer does with ticks whose deadline had already passed by the
  /// time it could start them (Tokio's `MissedTickBehavior`).
  ///
  /// A tick is *missed* when its deadline has already passed at the moment the timer starts the
  /// tick before it: the timer was held up — by the cleanup ``DelayPolicy/cancelPrevious`` waits for,
  /// or because the process was stalled or suspended. A timer that wakes a little late but before
  /// the next deadline misses nothing; its lateness does not accumulate.
  public struct MissedTickBehavior: Hashable, Sendable, CustomStringConvertible {
    enum Kind: Hashable, Sendable {
      case burst
      case skip
      case delay
    }
    let kind: Kind

    /// Start every overdue tick at once, one after the other, until the timer has caught up; the
    /// schedule keeps its grid `start + n × interval`. No tick is lost. The default, as in
    /// `AsyncTimerSequence` and Tokio.
    public static let burst = MissedTickBehavior(kind: .burst)

    /// Drop the overdue ticks (their numbers are used up) and wait for the next instant of the
    /// grid `start + n × interval` that is still in the future.
    public static let skip = MissedTickBehavior(kind: .skip)

    /// Wait one full interval from now for the next tick, and continue from there: the grid moves
    /// by the time the timer fell behind.
    public static let delay = MissedTickBehavior(kind: .delay)

    public var description: String {
      switch kind {
      case .burst: "burst"
      case .skip: "skip"
      case .delay: "delay"
      }
    }
  }
}
