// Fixtures for the timer tests: an event log, a clock that wakes sleepers late (to model a real
// clock's wake-up latency or a stalled process, exactly, in virtual time), and a seeded RNG.

import AsyncTools
import AsyncToolsTestSupport
import AsyncToolsTesting

enum TimerFixtures {
  typealias Log = TestLog

  /// A `VirtualClock` whose sleepers wake at `wake(deadline)` instead of `deadline` (never
  /// earlier): a real clock's wake-up latency (`deadline + 1 ms`), or a process stalled for a
  /// while (every deadline inside a window wakes at the window's end).
  struct LateClock: Clock {
    typealias Instant = VirtualClock.Instant
    let base: VirtualClock
    let wake: @Sendable (Duration) -> Duration

    var now: Instant { base.now }
    var minimumResolution: Duration { .zero }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
      try await base.sleep(until: Instant(offset: max(deadline.offset, wake(deadline.offset))), tolerance: nil)
    }

    /// Every sleeper wakes `lateness` after its deadline.
    static func late(by lateness: Duration, _ base: VirtualClock) -> LateClock {
      LateClock(base: base) { $0 + lateness }
    }

    /// Sleepers due strictly inside `window` wake at its upper bound: the process was stalled.
    static func stalled(during window: ClosedRange<Duration>, _ base: VirtualClock) -> LateClock {
      LateClock(base: base) { deadline in
        deadline > window.lowerBound && deadline < window.upperBound ? window.upperBound : deadline
      }
    }
  }

  /// SplitMix64, shared with every seeded test: `SeededRandomNumberGenerator` of AsyncToolsTesting.
  typealias SeededRandom = SeededRandomNumberGenerator

  /// The error a failing tick throws; `id` identifies the failing tick.
  typealias TickFailure = TestError

  /// Sleeps for `duration` on `clock` even if the calling task is cancelled: cleanup that takes
  /// time (a shielded wait, as aiotools' tests use).
  static func cleanup<C: Clock>(for duration: Duration, on clock: C) async where C.Duration == Duration {
    _ = try? await withCancellationShield { try await clock.sleep(for: duration) }
  }
}

extension Duration {
  /// Milliseconds, for readable expectations.
  static func ms(_ value: Int) -> Duration { .milliseconds(value) }

  /// Whole milliseconds, for compact event logs.
  var milliseconds: Int64 {
    components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
  }
}
