/// An event that happens at most once, that any number of tasks can wait for.
///
/// ``fire()`` is idempotent and may be called from any thread, also from a cancellation or graceful-shutdown
/// handler; ``wait()`` returns at once if the event has fired. A waiting task's cancellation does not end the wait:
/// fire the event from its cancellation handler for that.
package final class OneShotEvent: Sendable {
  private struct State {
    var fired = false
    var waiters: [CheckedContinuation<Void, Never>] = []
  }

  private let state = Locked(State())

  /// Creates an event that has not fired.
  package init() {}

  /// Fires the event: every waiter resumes, and later waits return at once.
  package func fire() {
    let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
      if state.fired { return [] }
      state.fired = true
      let waiters = state.waiters
      state.waiters = []
      return waiters
    }
    for waiter in waiters { waiter.resume() }
  }

  /// Whether the event has fired.
  package var hasFired: Bool { state.withLock { $0.fired } }

  /// Waits until the event has fired.
  package func wait() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let firedAlready = state.withLock { state -> Bool in
        if state.fired { return true }
        state.waiters.append(continuation)
        return false
      }
      if firedAlready { continuation.resume() }
    }
  }
}
