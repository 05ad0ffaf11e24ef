import AsyncTools

/// A thread-safe count of events that a test can also wait for: `wait(until: n)` returns once the count reached `n`.
package final class TestCounter: Sendable {
  private struct State {
    var value = 0
    var waiters: [(target: Int, continuation: CheckedContinuation<Void, Never>)] = []
  }
  private let state = Locked(State())

  package init() {}

  /// The current count.
  package var value: Int { state.withLock { $0.value } }

  /// Adds one, wakes the waiters whose target is reached, and returns the new count.
  @discardableResult
  package func increment() -> Int {
    let (value, ready) = state.withLock { state in
      state.value += 1
      let value = state.value
      let ready = state.waiters.filter { $0.target <= value }.map(\.continuation)
      state.waiters.removeAll { $0.target <= value }
      return (value, ready)
    }
    for waiter in ready { waiter.resume() }
    return value
  }

  /// Subtracts one (for live counters: a task that ended).
  package func decrement() { state.withLock { $0.value -= 1 } }

  /// Suspends until the count is at least `target`.
  package func wait(until target: Int) async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let reached = state.withLock { state in
        if state.value >= target { return true }
        state.waiters.append((target, continuation))
        return false
      }
      if reached { continuation.resume() }
    }
  }
}

// The spellings the suites grew up with, so their tests read as before.
extension TestCounter {
  /// `value`.
  package var current: Int { value }
  /// `value`.
  package var count: Int { value }
  /// `increment()`, for counters of events.
  package func signal() { increment() }
  /// `wait(until:)`.
  package func wait(for target: Int) async { await wait(until: target) }
}

/// An object that counts its own deinitialisations on a `TestCounter`, to prove nothing keeps captured objects alive.
package final class DeinitCounted: Sendable {
  package let counter: TestCounter
  package init(_ counter: TestCounter) { self.counter = counter }
  deinit { counter.increment() }
}
