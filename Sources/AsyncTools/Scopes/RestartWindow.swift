import DequeModule

/// The restart-intensity window shared by ``Supervisor`` and the prefork server's supervisor: at most
/// `maxRestarts` restarts within any `period`. A pure value: the caller passes the time (an offset
/// from any fixed start, on its own clock), so it is unit-testable without a clock.
package struct RestartWindow: Sendable, Hashable {
  /// How many restarts the window admits.
  package let maxRestarts: Int
  /// How long a restart counts against the limit.
  package let period: Duration
  /// When the recent restarts happened; oldest first.
  package private(set) var restarts: Deque<Duration> = []

  /// A window admitting `maxRestarts` restarts within `period`.
  package init(maxRestarts: Int, period: Duration) {
    self.maxRestarts = maxRestarts
    self.period = period
  }

  /// Records a restart at `now` and returns `true` when fewer than `maxRestarts` restarts happened
  /// within the `period` before it; otherwise records nothing and returns `false` (the limit is
  /// crossed). Restarts older than `period` are forgotten first.
  package mutating func admit(at now: Duration) -> Bool {
    while let oldest = restarts.first, now - oldest >= period { restarts.removeFirst() }
    guard restarts.count < maxRestarts else { return false }
    restarts.append(now)
    return true
  }
}
