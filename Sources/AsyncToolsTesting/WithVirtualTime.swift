import AsyncTools
import CAsyncToolsShims
import DequeModule
import Synchronization

/// How time moves inside ``withVirtualTime(startingAt:advancing:autojumpThreshold:deadlockTimeout:_:)``.
public enum VirtualTimeAdvancing: Sendable, Hashable {
  /// The moment no job can run, time jumps to the earliest pending deadline (aiotools'
  /// `VirtualClock` and Trio's autojump semantics).
  case automatic
  /// Time moves only when the body calls ``VirtualClock/advance(by:)`` or
  /// ``VirtualClock/advance(to:)`` (swift-clocks' `TestClock` style, but exact).
  case manual
}

/// Why a virtual-time scope could not run, or had to give up on its body.
public struct VirtualTimeError: Error, Hashable, Sendable, CustomStringConvertible {
  /// The kind of failure.
  public enum Code: Hashable, Sendable {
    /// Nothing could run, no sleeper was due (or, in manual mode, none could be reached without an
    /// `advance`), and nothing arrived from outside for `deadlockTimeout` of real time.
    case deadlock
    /// Another library owns the runtime's global-enqueue hook (SwiftNIO's
    /// `unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()` does).
    case hookUnavailable
    /// This Swift runtime does not export `swift_task_enqueueGlobal_hook`.
    case unsupportedRuntime
    /// `withVirtualTime` was called inside another virtual-time scope (scopes do not nest: use the
    /// outer scope's clock, or `DefaultClock()`, instead).
    case nested
  }

  /// The kind of failure.
  public var code: Code
  /// A sentence naming the problem.
  public var message: String

  public var description: String { "VirtualTimeError(\(code)): \(message)" }
}

/// Runs `body` in virtual time: every task it starts runs on one deterministic thread, and the
/// moment none of them can run, the clock jumps to the earliest pending deadline.
///
/// ```swift
/// @Test func timeoutFiresAfterOneHour() async throws {
///   try await withVirtualTime { clock in
///     await #expect(throws: TimeoutError.self) {
///       try await withTimeout(.seconds(3600), clock: clock) { try await neverResponds(clock) }
///     }
///     #expect(clock.now.offset == .seconds(3600))   // and the test took a millisecond
///   }
/// }
/// ```
///
/// What runs in virtual time: the body, its child tasks (`async let`, task groups, immediate
/// children), unstructured `Task {}` / `Task.detached` it creates, default actors they call,
/// `Task.yield()`, and wake-ups of those tasks that come from other threads. The driver is the
/// body's task executor (so structured work and its yields stay on it) and owns the runtime's
/// global-enqueue hook (so unstructured tasks and foreign wake-ups come to it). Their order is
/// deterministic: jobs run first-in first-out, and sleepers due at the same instant wake in the
/// order they started sleeping, so the same program produces the same event log and the same
/// virtual timestamps on every run.
///
/// Time sources that follow the scope:
/// - the `VirtualClock` handed to `body`, and every `DefaultClock` created in the scope — the
///   default clock of every AsyncTools API (timeouts, cache expiry, timers, supervisor backoff,
///   `PersistentTaskGroup.close(timeout:)`): exact, `now` included;
/// - on Swift 6.3+ (Linux), runtime sleeps — `Task.sleep` in all forms, `ContinuousClock` and
///   `SuspendingClock` sleeps — which the driver receives as a scheduling executor and converts
///   from their real deadline to the roundest duration in reach (exact for multiples of 10 µs,
///   on a loaded machine and in unstructured tasks too; see the testing guide).
///
/// What escapes (runs in real time, on its own threads): a top-level `Task.immediate` whose first
/// suspension is a runtime sleep or a yield (one that first sleeps on the scope's clock stays),
/// `@MainActor` code, actors with a custom executor (SwiftNIO event loops,
/// Dispatch queues), tasks with another executor preference, Dispatch, threads and blocking calls,
/// and every read of `ContinuousClock.now`. With the default `autojumpThreshold` of zero, time
/// jumps even while such outside work is in flight (aiotools does the same); give a threshold to
/// wait that much real time for outside work before each jump.
///
/// Safety in a test process:
/// - Scopes are serialised process-wide: a second `withVirtualTime` waits for the first to end,
///   so virtual-time tests need no `.serialized` trait. Tests running beside a scope are not
///   affected: their jobs are handed straight back to the runtime.
/// - If another library owns the global-enqueue hook, this throws
///   ``VirtualTimeError/Code/hookUnavailable`` instead of taking it over.
/// - When the body returns, the hook is restored, jobs of tasks it left running continue on the
///   normal executor, and sleepers it left on the clock are resumed with `CancellationError`.
/// - A deadlock — nothing runnable, nothing to wake, nothing from outside for `deadlockTimeout` —
///   cancels the body and throws ``VirtualTimeError/Code/deadlock`` instead of hanging; its message
///   says what the driver saw and what escapes it.
/// - Scopes do not nest: a call inside a scope throws ``VirtualTimeError/Code/nested`` at once.
///
/// Cancelling the calling task cancels the body.
///
/// - Parameters:
///   - start: the instant the scope's clock reads when the body starts; zero by default.
///   - advancing: ``VirtualTimeAdvancing/automatic`` (default) or ``VirtualTimeAdvancing/manual``.
///   - autojumpThreshold: real time to wait for outside work before each jump (Trio's
///     `autojump_threshold`); zero by default. Must not be negative.
///   - deadlockTimeout: real time with nothing to do after which the scope reports a deadlock.
///     Must be positive.
///   - body: the program to run; it receives the scope's clock.
/// - Returns: what `body` returns.
/// - Throws: what `body` throws, ``VirtualTimeError``, or `AsyncToolsError` for bad arguments.
@discardableResult
public func withVirtualTime<T: Sendable>(
  startingAt start: VirtualClock.Instant = VirtualClock.Instant(offset: .zero),
  advancing: VirtualTimeAdvancing = .automatic,
  autojumpThreshold: Duration = .zero,
  deadlockTimeout: Duration = .seconds(30),
  _ body: @escaping @Sendable (VirtualClock) async throws -> T
) async throws -> T {
  // Checked before anything else, and never waiting on the scope lock: the outer scope holds it
  // until its body (which is waiting here) returns.
  if ScopedTime.source is VirtualTimeSource || asynctools_thread_marker_get() != nil {
    throw VirtualTimeError(
      code: .nested,
      message: "withVirtualTime was called inside another withVirtualTime scope; scopes do not nest: "
        + "use the outer scope's VirtualClock (or DefaultClock()) in the inner code instead")
  }
  if autojumpThreshold < .zero {
    throw AsyncToolsError.invalidArgument("autojumpThreshold must not be negative, got \(autojumpThreshold)")
  }
  try deadlockTimeout.requirePositive("deadlockTimeout")
  guard asynctools_enqueue_global_hook_address() != nil else {
    throw VirtualTimeError(
      code: .unsupportedRuntime, message: "this Swift runtime has no swift_task_enqueueGlobal_hook")
  }

  await virtualTimeScopeLock.lock()
  defer { virtualTimeScopeLock.unlock() }
  return try await runVirtualTimeScope(
    startingAt: start, advancing: advancing, autojumpThreshold: autojumpThreshold,
    deadlockTimeout: deadlockTimeout, body)
}

/// The scope itself, for a caller that already holds `virtualTimeScopeLock`.
package func runVirtualTimeScope<T: Sendable>(
  startingAt start: VirtualClock.Instant = VirtualClock.Instant(offset: .zero),
  advancing: VirtualTimeAdvancing,
  autojumpThreshold: Duration,
  deadlockTimeout: Duration,
  _ body: @escaping @Sendable (VirtualClock) async throws -> T
) async throws -> T {
  let clock = VirtualClock(now: start)
  let driver = VirtualTimeDriver(
    clock: clock, automatic: advancing == .automatic,
    autojumpThreshold: autojumpThreshold, deadlockTimeout: deadlockTimeout)
  clock.state.withLock { $0.driver = driver }

  let hook = unsafeBitCast(virtualTimeHook, to: UnsafeMutableRawPointer.self)
  let retained = Unmanaged.passRetained(driver)
  defer { retained.release() }
  activeDriver.store(UInt(bitPattern: retained.toOpaque()), ordering: .releasing)
  var owner: UnsafeMutableRawPointer? = nil
  guard asynctools_enqueue_global_hook_cas(nil, hook, &owner) else {
    activeDriver.store(0, ordering: .releasing)
    clock.state.withLock { $0.driver = nil }
    throw VirtualTimeError(
      code: .hookUnavailable,
      message: "the Swift runtime's global-enqueue hook is already owned by another library "
        + "(\(owner.map { String(describing: $0) } ?? "unknown")); virtual time cannot run")
  }

  let outcome = OutcomeBox<T>()
  return try await withTaskCancellationHandler {
    let deadlock: DeadlockSnapshot? = await withCheckedContinuation {
      (continuation: CheckedContinuation<DeadlockSnapshot?, Never>) in
      driver.state.withLock { $0.onFinish = { deadlock in continuation.resume(returning: deadlock) } }
      // The body prefers the driver as its task executor: its jobs, those of its structured and
      // immediate children, their yields and (where the runtime supports it) their runtime sleeps
      // all come to the driver directly.
      let source = VirtualTimeSource(clock: clock, driver: driver)
      let task = Task(executorPreference: driver) {
        let result: Result<T, any Error>
        do {
          // Every `DefaultClock` created in the body (the default clock of every AsyncTools API)
          // follows this scope's clock.
          result = .success(try await ScopedTime.$source.withValue(source) { try await body(clock) })
        } catch {
          result = .failure(error)
        }
        outcome.value.withLock { $0 = result }
        driver.bodyFinished()
      }
      driver.state.withLock { $0.bodyTask = task }
      driver.start()
    }
    if let deadlock {
      throw VirtualTimeError(
        code: .deadlock, message: deadlockMessage(deadlock, manual: advancing == .manual, timeout: deadlockTimeout))
    }
    guard let result = outcome.value.withLock({ $0 }) else {
      throw VirtualTimeError(code: .deadlock, message: "the body did not finish")
    }
    return try result.get()
  } onCancel: {
    driver.cancelBody()
  }
}

/// Where the body's task leaves its result for the caller.
final class OutcomeBox<T: Sendable>: Sendable {
  let value = Locked<Result<T, any Error>?>(nil)
}

/// A first-in first-out async lock: one virtual-time scope at a time in the process.
package let virtualTimeScopeLock = AsyncFIFOLock()

/// A first-in first-out async mutex (no Foundation, no blocking).
package final class AsyncFIFOLock: Sendable {
  struct State {
    var locked = false
    var waiters = Deque<CheckedContinuation<Void, Never>>()
  }
  let state = Locked(State())

  package func lock() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let acquired = state.withLock { state -> Bool in
        if state.locked {
          state.waiters.append(continuation)
          return false
        }
        state.locked = true
        return true
      }
      if acquired { continuation.resume() }
    }
  }

  package func unlock() {
    let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
      if let next = state.waiters.popFirst() { return next }  // ownership passes on
      state.locked = false
      return nil
    }
    next?.resume()
  }
}

/// The sentence a deadlock error carries: what the driver saw, and what usually causes it.
func deadlockMessage(_ seen: DeadlockSnapshot, manual: Bool, timeout: Duration) -> String {
  var message = "the body was stuck at virtual time \(seen.now.exactOffsetDescription): for \(timeout) of real time no task of the scope "
    + "could run and nothing arrived from outside. Seen: \(seen.sleepers) task(s) sleeping on the VirtualClock, "
    + "\(seen.runtimeTimers) runtime sleep(s) scheduled in virtual time, \(seen.foreignWakeups) wake-up(s) from "
    + "other threads during the scope. "
  if manual && seen.sleepers > 0 {
    message += "Manual mode: the sleepers wait for time that nobody advances (call advance(by:)/advance(to:)). "
  } else {
    message += "No virtual timer is pending, so the body waits for something outside virtual time: "
      + "a task sleeping on a real clock that the scope cannot see (a top-level Task.immediate whose first "
      + "suspension was a Task.sleep or Task.yield, a task with another executor preference, @MainActor code, an actor with its own executor), real I/O, Dispatch "
      + "or a thread, or a continuation nobody resumes. A real wait longer than deadlockTimeout ends here: "
      + "pass a larger deadlockTimeout, or let that code sleep on the scope's clock (DefaultClock())."
  }
  return message
}
