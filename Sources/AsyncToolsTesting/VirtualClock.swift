import AsyncTools
import Synchronization

/// A clock whose time moves only when you, or the ``withVirtualTime(startingAt:advancing:autojumpThreshold:deadlockTimeout:_:)``
/// driver, move it.
///
/// Hand a `VirtualClock` to any API that takes `some Clock<Duration>` and its sleeps take no real time:
///
/// ```swift
/// @Test func retriesWithBackoff() async throws {
///   try await withVirtualTime { clock in
///     let client = RetryingClient(clock: clock)       // sleeps 1 s, 2 s, 4 s … between attempts
///     try await client.fetch()
///     #expect(clock.now.offset == .seconds(7))        // exact, and instant in real time
///   }
/// }
/// ```
///
/// Inside `withVirtualTime` the clock auto-advances: the moment no job can run, time jumps to the
/// earliest pending deadline and the sleepers due then wake, earliest deadline first, then in the
/// order they started sleeping. No sleeper ever wakes before its deadline, and ``now`` is exact
/// (no rounding).
///
/// A clock created with ``init(now:)`` and used outside `withVirtualTime` is a *manual* clock:
/// ``advance(by:)`` and ``advance(to:)`` wake the due sleepers in order and yield to let them run,
/// which is best effort (the cooperative pool gives no "everything is idle" signal); prefer
/// `withVirtualTime` for deterministic tests.
public final class VirtualClock: Clock, Sendable {
  /// A point in virtual time: a duration since the clock's zero.
  public struct Instant: InstantProtocol, CustomStringConvertible, Sendable {
    /// The time elapsed since the clock's zero.
    public var offset: Duration

    /// Creates an instant `offset` after the clock's zero.
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

  let state: Locked<State>

  /// Creates a clock whose current time is `now` (the zero instant by default).
  public init(now: Instant = Instant(offset: .zero)) {
    state = Locked(State(now: now.offset))
  }

  /// The current virtual time.
  public var now: Instant {
    Instant(offset: state.withLock { $0.now })
  }

  /// Virtual time has no resolution limit: deadlines are honoured to the attosecond.
  public var minimumResolution: Duration { .zero }

  /// Suspends until the virtual time reaches `deadline`.
  ///
  /// Returns at once (after checking for cancellation) if `deadline` is not in the future.
  /// `tolerance` is ignored: a virtual sleeper wakes exactly at its deadline.
  ///
  /// - Throws: `CancellationError` if the task is cancelled before or while sleeping; the sleeper
  ///   is then removed and never woken later.
  public nonisolated(nonsending) func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
    try await sleep(until: deadline.offset, advancing: false)
  }

  /// Suspends for `duration` of virtual time.
  ///
  /// The same as `sleep(until: now.advanced(by: duration))`, read and registered in one step. Like
  /// ``sleep(until:tolerance:)`` it runs on the caller's executor (`nonisolated(nonsending)`), so
  /// a sleep makes no executor switch of its own on the way in.
  /// `tolerance` is ignored: a virtual sleeper wakes exactly at its deadline.
  ///
  /// - Throws: `CancellationError` if the task is cancelled before or while sleeping.
  public nonisolated(nonsending) func sleep(for duration: Duration, tolerance: Duration? = nil) async throws {
    try Task.checkCancellation()
    let reserved = state.withLock { state -> (Ticket, Duration)? in
      let deadline = state.now + duration
      return state.reserve(until: deadline).map { ($0, deadline) }
    }
    guard let (ticket, deadline) = reserved else { return }
    try await wait(ticket, until: deadline, advancing: false)
  }

  /// Moves time forward by `duration`, waking every sleeper due on the way in deadline order.
  ///
  /// Under a `withVirtualTime` driver this is exact: each batch of due sleepers runs until nothing
  /// can run before time moves on; in `.automatic` mode it simply waits until time reaches the
  /// target. Outside a driver it is best effort (see the type's documentation).
  public func advance(by duration: Duration) async {
    let target = state.withLock { $0.now } + duration
    await advance(to: Instant(offset: target))
  }

  /// Moves time forward to `instant` (no-op if it is not in the future), waking every sleeper due
  /// on the way in deadline order. See ``advance(by:)``.
  public func advance(to instant: Instant) async {
    let hasDriver = state.withLock { $0.driver != nil }
    if hasDriver {
      // The advancing task becomes a sleeper at the target; the driver lets time reach it,
      // waking everything due before it first.
      try? await sleep(until: instant.offset, advancing: true)
      return
    }
    while true {
      let due: [Waker] = state.withLock { state in
        guard let first = state.firstLiveDeadline(), first <= instant.offset else {
          state.now = max(state.now, instant.offset)
          return []
        }
        state.now = max(state.now, first)
        return state.popAllLive(at: first)
      }
      if due.isEmpty { break }
      for waker in due {
        if case .continuation(let continuation) = waker { continuation.resume() }
      }
      for _ in 0..<VirtualClock.manualYields { await Task.yield() }
    }
  }

  /// Lets every job that can run do so before returning, without moving time.
  ///
  /// Exact under a `withVirtualTime` driver (it returns once nothing else is runnable); outside a
  /// driver it yields a number of times, which is best effort.
  public func runUntilIdle() async {
    let hasDriver = state.withLock { $0.driver != nil }
    if hasDriver {
      await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
        let driver = state.withLock { state in
          state.idleWaiters.append(continuation)
          return state.driver
        }
        driver?.notify()
      }
      return
    }
    for _ in 0..<VirtualClock.manualYields { await Task.yield() }
  }

  /// The number of sleepers currently waiting (cancelled ones excluded).
  public var pendingSleepers: Int {
    state.withLock { $0.registeredCount }
  }

  /// How often a manual (driverless) advance yields after waking sleepers.
  static let manualYields = 64

  nonisolated(nonsending) func sleep(until deadline: Duration, advancing: Bool) async throws {
    try Task.checkCancellation()
    guard let ticket = state.withLock({ $0.reserve(until: deadline) }) else { return }
    try await wait(ticket, until: deadline, advancing: advancing)
  }

  /// Suspends until `ticket`'s sleeper, reserved for `deadline`, is woken (or cancelled).
  @inline(__always)
  private nonisolated(nonsending) func wait(_ ticket: Ticket, until deadline: Duration, advancing: Bool) async throws {
    try await withTaskCancellationHandler {
      try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
        let (outcome, driver) = state.withLock { $0.register(ticket, continuation, until: deadline, advancing: advancing) }
        switch outcome {
        case .registered: driver?.notify()
        case .alreadyDue: continuation.resume()
        case .cancelled: continuation.resume(throwing: CancellationError())
        }
      }
    } onCancel: {
      state.withLock { $0.cancel(ticket) }?.resume(throwing: CancellationError())
    }
  }
}
