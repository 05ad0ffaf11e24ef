// Small event primitives for the PersistentTaskGroup / coordination tests: tests wait for events,
// never for time.
import AsyncToolsTesting
import AsyncTools
import Synchronization
import Testing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

struct PtgFailure: Error, Equatable, Sendable {
  var id: Int
  init(_ id: Int) { self.id = id }
}

/// A one-shot gate: `wait()` suspends until `open()` (or returns at once if already open).
final class PtgGate: Sendable {
  private struct State {
    var isOpen = false
    var waiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
    var next: UInt64 = 0
  }
  private let state = Locked(State())

  init() {}

  var isOpen: Bool { state.withLock { $0.isOpen } }

  func open() {
    let waiters = state.withLock { s in
      s.isOpen = true
      defer { s.waiters = [:] }
      return Array(s.waiters.values)
    }
    for waiter in waiters { waiter.resume() }
  }

  /// Waits until opened; throws `CancellationError` if the waiting task is cancelled first.
  func wait() async throws {
    let id = state.withLock { s in
      defer { s.next += 1 }
      return s.next
    }
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        let resumeNow: Bool = state.withLock { s in
          if s.isOpen { return true }
          if Task.isCancelled { return true }
          s.waiters[id] = continuation
          return false
        }
        if resumeNow {
          if Task.isCancelled && !isOpen {
            continuation.resume(throwing: CancellationError())
          } else {
            continuation.resume()
          }
        }
      }
    } onCancel: {
      let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
      waiter?.resume(throwing: CancellationError())
    }
  }

  /// Waits until opened, ignoring cancellation (for cleanups that must not be cut short).
  func waitIgnoringCancellation() async {
    await Task.detached { [self] in try? await self.wait() }.value
  }
}

/// A counter of events that tests can await: `wait(for: n)` returns once `n` events happened.
final class PtgEvents: Sendable {
  private struct State {
    var count = 0
    var waiters: [(Int, CheckedContinuation<Void, Never>)] = []
  }
  private let state = Locked(State())

  init() {}

  var count: Int { state.withLock { $0.count } }

  func signal() {
    let ready = state.withLock { s in
      s.count += 1
      let count = s.count
      let ready = s.waiters.filter { $0.0 <= count }.map(\.1)
      s.waiters.removeAll { $0.0 <= count }
      return ready
    }
    for waiter in ready { waiter.resume() }
  }

  func wait(for target: Int) async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let ready = state.withLock { s in
        if s.count >= target { return true }
        s.waiters.append((target, continuation))
        return false
      }
      if ready { continuation.resume() }
    }
  }
}

/// A thread-safe list of what happened, in order.
final class PtgRecorder<T: Sendable>: Sendable {
  private let items = Locked<[T]>([])
  init() {}
  func append(_ item: T) { items.withLock { $0.append(item) } }
  var values: [T] { items.withLock { $0 } }
}

/// Counts its own deinitializations, to prove nothing keeps captured objects alive.
final class PtgDeinitCounted: Sendable {
  let counter: PtgCounter
  init(_ counter: PtgCounter) { self.counter = counter }
  deinit { counter.increment() }
}

final class PtgCounter: Sendable {
  private let value = Atomic<Int>(0)
  init() {}
  func increment() { value.add(1, ordering: .relaxed) }
  var count: Int { value.load(ordering: .relaxed) }
}

/// Polls `condition` with `Task.yield()` until it holds: for states that have no event to await
/// (a flag flipped inside the library). Fails loudly instead of hanging.
func ptgWaitUntil(
  _ what: String, sourceLocation: SourceLocation = #_sourceLocation, _ condition: () -> Bool
) async {
  let deadline = ContinuousClock.now.advanced(by: .seconds(30))
  while !condition() {
    if ContinuousClock.now > deadline {
      Issue.record("timed out waiting until \(what)", sourceLocation: sourceLocation)
      return
    }
    await Task.yield()
  }
}

/// `ASYNCTOOLS_STRESS_ITERATIONS`, or `defaultValue`.
func ptgStressIterations(default defaultValue: Int) -> Int {
  guard let raw = getenv("ASYNCTOOLS_STRESS_ITERATIONS"), let value = Int(String(cString: raw)) else {
    return defaultValue
  }
  return value
}

/// SplitMix64, shared with every seeded test: `SeededRandomNumberGenerator` of AsyncToolsTesting.
typealias PtgRandom = SeededRandomNumberGenerator
