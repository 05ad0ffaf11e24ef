import AsyncToolsTesting
import AsyncTools
import Synchronization

/// A one-shot event for tests: tasks `wait()` until someone calls `open()`. Waiting ignores cancellation, so a
/// cancelled child can block on a gate during its cleanup.
final class ChildGate: Sendable {
  private let state = Locked<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

  func open() {
    let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
      state.open = true
      defer { state.waiters = [] }
      return state.waiters
    }
    for waiter in waiters { waiter.resume() }
  }

  var isOpen: Bool { state.withLock { $0.open } }

  func wait() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let open = state.withLock { state -> Bool in
        if state.open { return true }
        state.waiters.append(continuation)
        return false
      }
      if open { continuation.resume() }
    }
  }
}

/// Counts events and lets a test wait until a count is reached.
final class ChildCounter: Sendable {
  private let state = Locked<(count: Int, waiters: [(Int, CheckedContinuation<Void, Never>)])>((0, []))

  @discardableResult
  func increment() -> Int {
    let (count, ready) = state.withLock { state -> (Int, [CheckedContinuation<Void, Never>]) in
      state.count += 1
      let count = state.count
      let ready = state.waiters.filter { $0.0 <= count }.map(\.1)
      state.waiters.removeAll { $0.0 <= count }
      return (count, ready)
    }
    for waiter in ready { waiter.resume() }
    return count
  }

  func decrement() { state.withLock { $0.count -= 1 } }

  var value: Int { state.withLock { $0.count } }

  func wait(until target: Int) async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let reached = state.withLock { state -> Bool in
        if state.count >= target { return true }
        state.waiters.append((target, continuation))
        return false
      }
      if reached { continuation.resume() }
    }
  }
}

/// An ordered, thread-safe log of strings.
final class ChildLog: Sendable {
  private let entries = Locked<[String]>([])
  func append(_ entry: String) { entries.withLock { $0.append(entry) } }
  var all: [String] { entries.withLock { $0 } }
}

/// A recognisable failure with an identity.
struct ChildError: Error, Equatable, Hashable {
  var id: Int
}

/// Suspends until the current task is cancelled (a wait for an event, not a timed sleep).
func childSleepUntilCancelled() async {
  let (stream, continuation) = AsyncStream<Never>.makeStream()
  // Iteration returns `nil` as soon as the iterating task is cancelled.
  for await _ in stream {}
  continuation.finish()
}

/// A thread-safe box for a value that tests read after concurrent writes.
final class ChildBox<Value: Sendable>: Sendable {
  private let storage: Locked<Value>
  init(_ value: Value) { storage = Locked(value) }
  var value: Value { storage.withLock { $0 } }
  func set(_ value: Value) { storage.withLock { $0 = value } }
  func update<R: Sendable>(_ body: (inout Value) -> R) -> R { storage.withLock { body(&$0) } }
}

/// SplitMix64, shared with every seeded test: `SeededRandomNumberGenerator` of AsyncToolsTesting.
typealias ChildSeededRandom = SeededRandomNumberGenerator

/// A generator that always returns the same value: `UInt64(1) << 63` gives a jitter unit of exactly 0.5.
struct ChildConstantRandom: RandomNumberGenerator, Sendable {
  var value: UInt64
  mutating func next() -> UInt64 { value }
}
