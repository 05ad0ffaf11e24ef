import AsyncTools

/// A one-shot event for tests: tasks wait until someone calls `open()` (and return at once if it is already open).
///
/// Tests wait for events, never for time. `wait()` ignores the waiter's cancellation on purpose, so a cancelled task
/// can block on a gate during its cleanup; `waitUnlessCancelled()` and `waitOrCancel()` end early when the waiter is
/// cancelled.
package final class TestGate: Sendable {
  private struct State {
    var isOpen = false
    var nextTicket: UInt64 = 0
    var waiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
  }
  private let state = Locked(State())

  package init() {}

  /// Whether `open()` has been called.
  package var isOpen: Bool { state.withLock { $0.isOpen } }

  /// Opens the gate and wakes every waiter.
  package func open() {
    let waiters = state.withLock { state in
      state.isOpen = true
      defer { state.waiters = [:] }
      return Array(state.waiters.values)
    }
    for waiter in waiters { waiter.resume() }
  }

  /// `open()`, as suites that call the gate a signal spell it.
  package func fire() { open() }

  /// Suspends until the gate opens, whether or not the waiting task is cancelled.
  package func wait() async {
    _ = try? await park(cancellable: false)
  }

  /// Suspends until the gate opens; throws `CancellationError` if the waiting task is cancelled first.
  package func waitUnlessCancelled() async throws {
    try await park(cancellable: true)
  }

  /// Suspends until the gate opens or the waiting task is cancelled; returns whether it was cancelled.
  package func waitOrCancel() async -> Bool {
    (try? await park(cancellable: true)) == nil
  }

  private func park(cancellable: Bool) async throws {
    let ticket = state.withLock { state in
      defer { state.nextTicket += 1 }
      return state.nextTicket
    }
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        enum Now { case open, cancelled, parked }
        let now: Now = state.withLock { state in
          if state.isOpen { return .open }
          if cancellable && Task.isCancelled { return .cancelled }
          state.waiters[ticket] = continuation
          return .parked
        }
        switch now {
        case .open: continuation.resume()
        case .cancelled: continuation.resume(throwing: CancellationError())
        case .parked: break
        }
      }
    } onCancel: {
      guard cancellable else { return }
      let waiter = state.withLock { $0.waiters.removeValue(forKey: ticket) }
      waiter?.resume(throwing: CancellationError())
    }
  }
}
