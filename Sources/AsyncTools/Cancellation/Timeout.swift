// Timeouts: aiotools `timeout`, `timeout_at` and `move_on_after`.
//
// The body and a timer race as the two children of one task group: Swift cannot interrupt code
// running in the caller's own task without cancelling that task for good (there is no
// `uncancel()`), so the body runs as a child, which the timer cancels by cancelling the group.
// No unstructured task is created, and a timeout inside a cancellation shield still fires, since
// the whole race lives in the shielded task.

import Synchronization

/// Runs `body`, cancelling it if it has not finished within `duration` on `clock`, and throws
/// ``TimeoutError`` if it ended because of that.
///
/// The Swift spelling of aiotools' `timeout(delay)`:
///
/// ```swift
/// let page = try await withTimeout(.seconds(5)) { try await fetch(url) }
/// ```
///
/// Semantics (shared with ``withTimeout(at:tolerance:clock:_:)``; the deadline is
/// `clock.now.advanced(by: duration)`, measured when the call starts):
/// - The body runs in a child task. When the deadline passes first, the body is cancelled and this
///   function waits for it to finish — cleanup included.
/// - ``TimeoutError`` is thrown **only** when the deadline passed *and* the body then ended with
///   `CancellationError`. A body that still returns a value, or throws any other error (including a
///   `TimeoutError` of its own), keeps that result: no unrelated error is ever swallowed or
///   replaced (aiotools' `move_on_after` swallows every `TimeoutError`; this does not).
/// - A zero or negative `duration` is not an error: the deadline is already past, so the body
///   starts already cancelled and runs until its first cancellation checkpoint (aiotools runs it
///   until its first `await`). A body without checkpoints still completes and returns its value.
/// - A huge `duration` such as `.seconds(Int64.max)` is fine and means "effectively never" (a plain
///   `ContinuousClock.sleep` would trap on it).
/// - If the calling task is cancelled, the body is cancelled too and the call throws
///   `CancellationError`, not `TimeoutError` — even if the deadline passed at the same moment.
/// - Inside ``withCancellationShield(_:)`` the timeout still fires; around a shield, the shield
///   defers it: the shielded body runs to its end and the timeout is reported afterwards.
///
/// - Parameters:
///   - duration: How long the body may run.
///   - tolerance: Leeway the clock may take in waking the timer (`nil`: the clock's default).
///   - clock: The clock that measures the deadline; a `VirtualClock` in tests.
///   - body: The work to bound. It runs in a child task, hence `@escaping` and `sending`.
/// - Returns: The body's value.
/// - Throws: ``TimeoutError`` (see above), the body's own error, `CancellationError` when the caller
///   is cancelled, or ``AsyncToolsError/Code/invalidArgument`` for a negative `tolerance`.
public func withTimeout<T: Sendable, C: Clock>(
  _ duration: Duration,
  tolerance: Duration? = nil,
  clock: C = DefaultClock(),
  // `@_inheritActorContext`, as on `Task.init`: a body written on an actor keeps running there.
  @_inheritActorContext _ body: sending @escaping @isolated(any) () async throws -> T
) async throws -> T where C.Duration == Duration {
  let deadline = clock.now.advanced(by: duration)
  switch try await race(body, deadline: deadline, tolerance: tolerance, clock: clock) {
  case .completed(let value): return value
  case .timedOut: throw TimeoutError(deadline: deadline, duration: duration)
  }
}

/// Runs `body`, cancelling it if it has not finished by `deadline` on `clock`, and throws
/// ``TimeoutError`` if it ended because of that.
///
/// The Swift spelling of aiotools' `timeout_at(when)`. Same rules as
/// ``withTimeout(_:tolerance:clock:_:)``; a deadline at or before `clock.now` means the body starts
/// already cancelled.
///
/// ```swift
/// let deadline = clock.now.advanced(by: .seconds(30))
/// let a = try await withTimeout(at: deadline, clock: clock) { try await stepOne() }
/// let b = try await withTimeout(at: deadline, clock: clock) { try await stepTwo(a) }
/// ```
///
/// - Throws: ``TimeoutError`` with ``TimeoutError/duration`` `nil`, the body's own error,
///   `CancellationError` when the caller is cancelled, or ``AsyncToolsError`` for a negative
///   `tolerance`.
public func withTimeout<T: Sendable, C: Clock>(
  at deadline: C.Instant,
  tolerance: Duration? = nil,
  clock: C,
  @_inheritActorContext _ body: sending @escaping @isolated(any) () async throws -> T
) async throws -> T where C.Duration == Duration {
  switch try await race(body, deadline: deadline, tolerance: tolerance, clock: clock) {
  case .completed(let value): return value
  case .timedOut: throw TimeoutError(deadline: deadline)
  }
}

/// Runs `body` for at most `duration` on `clock`; returns `nil` instead of throwing if it ended
/// because the deadline passed.
///
/// The Swift spelling of aiotools' `move_on_after(delay)`, for work that is optional:
///
/// ```swift
/// if let hint = try await moveOnAfter(.milliseconds(50)) { try await cache.lookup(key) } {
///   use(hint)
/// }
/// ```
///
/// Same rules as ``withTimeout(_:tolerance:clock:_:)``: `nil` only when the deadline passed and the
/// body ended with `CancellationError`. Every other error propagates — a `TimeoutError` the body
/// throws itself too (aiotools swallows those). A body returning an optional gives a nested
/// optional; `.some(nil)` is the body's own `nil`.
///
/// - Returns: The body's value, or `nil` if the timeout cut it short.
/// - Throws: The body's own error, `CancellationError` when the caller is cancelled, or
///   ``AsyncToolsError`` for a negative `tolerance`.
public func moveOnAfter<T: Sendable, C: Clock>(
  _ duration: Duration,
  tolerance: Duration? = nil,
  clock: C = DefaultClock(),
  @_inheritActorContext _ body: sending @escaping @isolated(any) () async throws -> T
) async throws -> T? where C.Duration == Duration {
  let deadline = clock.now.advanced(by: duration)
  switch try await race(body, deadline: deadline, tolerance: tolerance, clock: clock) {
  case .completed(let value): return value
  case .timedOut: return nil
  }
}

/// The longest single timer sleep: about 31,700 years, far below what clocks can represent.
private let maximumSleep = Duration.seconds(1_000_000_000_000)

/// How a race between a body and its deadline ended, when it did not throw.
private enum RaceOutcome<T> {
  case completed(T)
  case timedOut
}

/// What each of the two children reports to the group.
private enum RaceEvent<T: Sendable>: Sendable {
  case body(Result<T, any Error>)
  case timerFired
  case timerStopped
}

/// Races `body` against `deadline`. Returns `.timedOut` only when the timer fired before the body
/// ended, the body then ended with `CancellationError`, and the caller itself is not cancelled.
private func race<T: Sendable, C: Clock>(
  _ body: sending @escaping @isolated(any) () async throws -> T,
  deadline: C.Instant,
  tolerance: Duration?,
  clock: C
) async throws -> RaceOutcome<T> where C.Duration == Duration {
  if let tolerance, tolerance < .zero {
    throw AsyncToolsError.invalidArgument("tolerance must not be negative, got \(tolerance)")
  }
  // The group's closure could in principle run more than once, so the compiler cannot see that
  // `body` is sent to a child only once. A take-once box proves it without unsafe annotations.
  let box = Locked<(@isolated(any) () async throws -> T)?>(Optional(body))
  let bodyResult = await withTaskGroup(of: RaceEvent<T>.self) { group -> Result<RaceOutcome<T>, any Error> in
    let operation = box.withLock { $0.take()! }
    let now = clock.now
    // Deadline already past: no timer child, and the group is cancelled before the body is added,
    // so the body starts cancelled (cancelling after adding it would race the body's first steps).
    var expired = deadline <= now
    if expired { group.cancelAll() }
    group.addTask {
      do {
        return .body(.success(try await operation()))
      } catch {
        return .body(.failure(error))
      }
    }
    if !expired {
      group.addTask {
        do {
          // `ContinuousClock` traps on a deadline whose seconds overflow `Int64` (a timeout of
          // `.seconds(Int64.max)`, used to mean "forever"), so far deadlines are approached in
          // steps a clock can represent. Ordinary deadlines take exactly one sleep.
          var step = now
          repeat {
            step = step.advanced(by: maximumSleep)
            try await clock.sleep(until: min(step, deadline), tolerance: tolerance)
          } while step < deadline
          return .timerFired
        } catch {
          return .timerStopped
        }
      }
    }
    var outcome: Result<T, any Error>?
    for await event in group {
      switch event {
      case .timerFired where outcome == nil:
        // Only a timer that fires while the body still runs can be the reason the body ends.
        expired = true
        group.cancelAll()
      case .timerFired, .timerStopped:
        break
      case .body(let result):
        outcome = result
        group.cancelAll()
      }
    }
    switch outcome! {
    case .success(let value):
      return .success(.completed(value))
    case .failure(let error):
      if expired && error is CancellationError && !Task<Never, Never>.isCancelled {
        return .success(.timedOut)
      }
      return .failure(error)
    }
  }
  return try bodyResult.get()
}
