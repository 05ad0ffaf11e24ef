import AsyncToolsTesting
import AsyncTools

/// A one-shot gate: tasks `wait()` until someone calls `open()` (also if they wait after it opened).
final class FunctoolsGate: Sendable {
  private let state = Locked<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

  func wait() async {
    await withCheckedContinuation { continuation in
      let resumeNow = state.withLock { state in
        if state.open { return true }
        state.waiters.append(continuation)
        return false
      }
      if resumeNow { continuation.resume() }
    }
  }

  /// Waits until the gate opens or the task is cancelled; returns whether the task was cancelled.
  func waitOrCancel() async -> Bool {
    await withTaskCancellationHandler {
      await wait()
      return Task.isCancelled
    } onCancel: {
      open()
    }
  }

  func open() {
    let waiters = state.withLock { state in
      state.open = true
      defer { state.waiters = [] }
      return state.waiters
    }
    for waiter in waiters { waiter.resume() }
  }
}

/// A thread-safe counter.
final class FunctoolsCounter: Sendable {
  private let value = Locked(0)
  @discardableResult
  func increment() -> Int {
    value.withLock {
      $0 += 1; return $0
    }
  }
  var current: Int { value.withLock { $0 } }
}

/// A thread-safe flag.
final class FunctoolsFlag: Sendable {
  private let value = Locked(false)
  func set() { value.withLock { $0 = true } }
  var isSet: Bool { value.withLock { $0 } }
}

/// Yields until `condition` holds: waiting for an event another task makes observable, not a timed sleep.
func functoolsEventually(_ condition: () -> Bool) async {
  while !condition() { await Task.yield() }
}

struct FunctoolsTestError: Error, Equatable {
  var id: Int
}

/// SplitMix64, shared with every seeded test: `SeededRandomNumberGenerator` of AsyncToolsTesting.
typealias FunctoolsRandom = SeededRandomNumberGenerator
