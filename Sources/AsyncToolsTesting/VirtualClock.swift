import AsyncTools
import HeapModule
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

    /// The offset, e.g. `"+3.0 seconds"`.
    public var description: String { "+\(offset)" }
  }

  /// Identifies one registered sleeper; the heap orders by deadline, then registration.
  struct Key: Comparable {
    var deadline: Duration
    var id: UInt64

    static func < (lhs: Key, rhs: Key) -> Bool {
      (lhs.deadline, lhs.id) < (rhs.deadline, rhs.id)
    }
  }

  /// A sleeper's life: allocated, then registered with its continuation, or cancelled first.
  enum Entry {
    case pending
    case registered(UnsafeContinuation<Void, any Error>)
    case cancelled
    /// A job the runtime scheduled on the driver for a deadline (`Task.sleep`, a sleep on
    /// `ContinuousClock`/`SuspendingClock`), as a bit pattern: it is enqueued when due.
    case job(UInt)
  }

  /// What wakes when a deadline is reached.
  enum Waker {
    case continuation(UnsafeContinuation<Void, any Error>)
    case job(UInt)
  }

  struct State {
    var now: Duration
    var nextID: UInt64 = 0
    var heap = Heap<Key>()
    /// Sleepers not yet woken, by id. A key in `heap` whose entry is gone was cancelled.
    var entries: [UInt64: Entry] = [:]
    /// Number of `.registered` entries.
    var registeredCount = 0
    /// Number of `.job` entries (runtime sleeps scheduled on the driver).
    var jobCount = 0
    /// Sleepers that are `advance(to:)` calls under a manual driver, with their targets.
    var advancers: [UInt64: Duration] = [:]
    /// Tasks waiting in `runUntilIdle()` under a driver.
    var idleWaiters: [UnsafeContinuation<Void, Never>] = []
    /// Set while a `withVirtualTime` driver owns this clock.
    var driver: VirtualTimeDriver?
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
  public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
    try await sleep(until: deadline.offset, advancing: false)
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

  func sleep(until deadline: Duration, advancing: Bool) async throws {
    try Task.checkCancellation()
    let id: UInt64? = state.withLock { state in
      if deadline <= state.now { return nil }
      state.nextID &+= 1
      state.entries[state.nextID] = .pending
      return state.nextID
    }
    guard let id else { return }
    try await withTaskCancellationHandler {
      try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
        let (outcome, driver): (RegisterOutcome, VirtualTimeDriver?) = state.withLock { state in
          guard case .pending = state.entries[id] else {
            state.entries[id] = nil
            return (.cancelled, nil)
          }
          if deadline <= state.now {
            state.entries[id] = nil
            return (.alreadyDue, nil)
          }
          state.entries[id] = .registered(continuation)
          state.registeredCount += 1
          state.heap.insert(Key(deadline: deadline, id: id))
          if advancing { state.advancers[id] = deadline }
          return (.registered, state.driver)
        }
        switch outcome {
        case .registered: driver?.notify()
        case .alreadyDue: continuation.resume()
        case .cancelled: continuation.resume(throwing: CancellationError())
        }
      }
    } onCancel: {
      let continuation = state.withLock { state -> UnsafeContinuation<Void, any Error>? in
        switch state.entries[id] {
        case .registered(let continuation):
          state.entries[id] = nil
          state.registeredCount -= 1
          state.advancers[id] = nil
          return continuation
        case .pending:
          state.entries[id] = .cancelled  // registration will see it and fail
          return nil
        case .cancelled, .job, nil:
          return nil  // already woken or already cancelled
        }
      }
      continuation?.resume(throwing: CancellationError())
    }
  }

  enum RegisterOutcome {
    case registered, alreadyDue, cancelled
  }
}

extension VirtualClock.State {
  /// The earliest deadline of a live sleeper, dropping tombstones of cancelled ones on the way.
  mutating func firstLiveDeadline() -> Duration? {
    while let key = heap.min {
      switch entries[key.id] {
      case .registered, .job: return key.deadline
      default: _ = heap.removeMin()
      }
    }
    return nil
  }

  /// Removes every live sleeper whose deadline is exactly `deadline`, in registration order, and
  /// returns what wakes them (to be resumed or enqueued outside the lock).
  mutating func popAllLive(at deadline: Duration) -> [VirtualClock.Waker] {
    var batch: [VirtualClock.Waker] = []
    while let key = heap.min, key.deadline == deadline {
      _ = heap.removeMin()
      switch entries.removeValue(forKey: key.id) {
      case .registered(let continuation):
        registeredCount -= 1
        advancers[key.id] = nil
        batch.append(.continuation(continuation))
      case .job(let job):
        jobCount -= 1
        batch.append(.job(job))
      default:
        break
      }
    }
    return batch
  }

  /// Schedules a runtime job for `deadline` (at least now), after every sleeper already due then.
  mutating func schedule(job: UInt, at deadline: Duration) {
    nextID &+= 1
    entries[nextID] = .job(job)
    jobCount += 1
    heap.insert(VirtualClock.Key(deadline: max(deadline, now), id: nextID))
  }

  /// What a driver does when nothing is runnable: wake idle waiters first, then jump to the
  /// earliest deadline if the mode allows it. `nil` when there is nothing to do.
  mutating func takeIdleWork(automatic: Bool) -> VirtualClock.IdleWork? {
    if !idleWaiters.isEmpty {
      defer { idleWaiters.removeAll() }
      return .idle(idleWaiters)
    }
    guard let deadline = firstLiveDeadline() else { return nil }
    if !automatic {
      guard let limit = advancers.values.max(), deadline <= limit else { return nil }
    }
    now = max(now, deadline)
    return .sleepers(popAllLive(at: deadline))
  }

  /// Detaches the clock from its driver and returns every sleeper still waiting.
  mutating func detach() -> [VirtualClock.Waker] {
    driver = nil
    var all: [VirtualClock.Waker] = []
    while let key = heap.popMin() {
      switch entries.removeValue(forKey: key.id) {
      case .registered(let continuation): all.append(.continuation(continuation))
      case .job(let job): all.append(.job(job))
      default: break
      }
    }
    registeredCount = 0
    jobCount = 0
    advancers = [:]
    return all
  }
}

extension VirtualClock {
  /// Work a driver found for an idle moment.
  enum IdleWork {
    case idle([UnsafeContinuation<Void, Never>])
    case sleepers([Waker])
  }
}
