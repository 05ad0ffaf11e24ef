// Small synchronisation helpers for the cancellation tests (cancelAndWait, shields, timeouts).
// They wait for events instead of sleeping, and never block a thread, so they also work on the
// single-threaded virtual-time driver.

import AsyncTools
import Synchronization

enum CancellationFixtures {
  /// A one-shot event: `wait()` suspends until `open()` has been called. Waiting ignores the
  /// waiter's cancellation on purpose, so it models cleanup that must not be cut short.
  final class Gate: Sendable {
    private struct State {
      var isOpen = false
      var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Locked(State())

    init() {}

    func open() {
      let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
        state.isOpen = true
        defer { state.waiters = [] }
        return state.waiters
      }
      for waiter in waiters { waiter.resume() }
    }

    var isOpen: Bool { state.withLock { $0.isOpen } }

    func wait() async {
      await withCheckedContinuation { continuation in
        let resumeNow = state.withLock { state -> Bool in
          if state.isOpen { return true }
          state.waiters.append(continuation)
          return false
        }
        if resumeNow { continuation.resume() }
      }
    }
  }

  /// An append-only, thread-safe log of events, for asserting orderings.
  final class Recorder<Event: Sendable>: Sendable {
    private let events = Locked<[Event]>([])
    init() {}
    func record(_ event: Event) { events.withLock { $0.append(event) } }
    var all: [Event] { events.withLock { $0 } }
  }

  /// A thread-safe counter.
  final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    init() {}
    /// Adds one and returns the new value.
    @discardableResult
    func increment() -> Int { value.add(1, ordering: .relaxed).newValue }
    var current: Int { value.load(ordering: .relaxed) }
  }

  /// Suspends until the current task is cancelled, then throws `CancellationError`.
  static func suspendUntilCancelled() async throws {
    await suspendUntilCancelledQuietly()
    throw CancellationError()
  }

  /// Suspends until the current task is cancelled, then returns.
  static func suspendUntilCancelledQuietly() async {
    // An `AsyncStream` that never yields ends its iteration when the consuming task is cancelled.
    let (stream, continuation) = AsyncStream<Never>.makeStream()
    for await _ in stream {}
    withExtendedLifetime(continuation) {}
  }

  /// An error with an identity, to check which error came out.
  struct Boom: Error, Equatable {
    var id: Int
    init(_ id: Int) { self.id = id }
  }

  /// Whether `result` is a failure with `CancellationError`.
  static func isCancellation<T>(_ result: Result<T, any Error>) -> Bool {
    if case .failure(let error) = result { return error is CancellationError }
    return false
  }
}
