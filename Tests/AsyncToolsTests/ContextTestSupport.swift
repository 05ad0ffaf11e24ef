import AsyncTools
import AsyncToolsTestSupport
import Testing

// Fixtures for the scoped-resource tests (Context*, ExitStack*, Closing*, Deferred* suites).
// Names carry a `Scope` prefix so they cannot collide with other suites' helpers in this target.

// The shared fixtures of AsyncToolsTestSupport under the names these suites use.
typealias ScopeEventLog = TestLog<String>
typealias ScopeTestError = NamedTestError

/// Names of the `ScopeTestError`s in a thrown error: one name for a plain error, every member's for
/// an `ErrorGroup` (in order), `"cancelled"` for a `CancellationError`.
func scopeErrorNames(_ error: any Error) -> [String] {
  if let group = error as? ErrorGroup { return group.errors.flatMap(scopeErrorNames) }
  if let error = error as? ScopeTestError { return [error.name] }
  if error is CancellationError { return ["cancelled"] }
  return ["\(error)"]
}

/// A configurable manager that records `enter <name>` / `exit <name> <outcome>` in a log.
struct ScopeProbe: AsyncContextManager {
  var name: String
  var log: ScopeEventLog
  var failEnter = false
  var failExit = false
  /// Cleanup awaits several times and records whether it saw cancellation, to prove the shield.
  var slowExit = false

  func enter() async throws -> String {
    if failEnter {
      log.record("enter-failed \(name)")
      throw ScopeTestError("enter \(name)")
    }
    log.record("enter \(name)")
    return name
  }

  func exit(_ outcome: ExitOutcome) async throws {
    if slowExit {
      for _ in 0..<5 { await Task.yield() }
      log.record("exit \(name) cancelled=\(Task.isCancelled)")
    }
    let described: String =
      switch outcome {
      case .success: "success"
      case .failure(let error): scopeErrorNames(error).joined(separator: "+")
      }
    log.record("exit \(name) \(described)")
    if failExit { throw ScopeTestError("exit \(name)") }
  }
}

/// Suspends until the current task is cancelled, then throws `CancellationError`. No time involved:
/// an `AsyncStream` that never yields ends its iteration when the iterating task is cancelled.
func awaitScopeCancellation() async throws {
  let (stream, continuation) = AsyncStream.makeStream(of: Never.self)
  for await _ in stream {}
  continuation.finish()  // also keeps the continuation alive while the loop waits
  try Task.checkCancellation()
}

/// A one-shot signal a test awaits instead of sleeping: `fire()` opens it.
typealias ScopeSignal = TestGate

/// A rendezvous of `parties` tasks: `arrive()` returns only once all of them have arrived, which
/// can only happen if they run concurrently. Cancellable, so a watchdog can end a failed wait.
final class ScopeRendezvous: Sendable {
  private struct State {
    var arrived = 0
    var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
    var cancelled: Set<Int> = []
  }
  private let parties: Int
  private let state = Locked(State())

  init(parties: Int) { self.parties = parties }

  func arrive() async throws {
    let ticket = state.withLock { state -> Int in
      state.arrived += 1
      return state.arrived
    }
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        let release: [CheckedContinuation<Void, any Error>]? = state.withLock { state in
          if state.cancelled.contains(ticket) {
            continuation.resume(throwing: CancellationError())
            return nil
          }
          state.waiters[ticket] = continuation
          guard state.arrived == parties else { return nil }
          defer { state.waiters = [:] }
          return Array(state.waiters.values)
        }
        release?.forEach { $0.resume() }
      }
    } onCancel: {
      let waiter = state.withLock { state in
        state.cancelled.insert(ticket)
        return state.waiters.removeValue(forKey: ticket)
      }
      waiter?.resume(throwing: CancellationError())
    }
  }
}

struct ScopeWatchdogFired: Error {}

/// Runs `operation`, failing with `ScopeWatchdogFired` instead of hanging if it is not done within
/// `limit` of real time. The limit is a bound for a broken build, not a wait: passing tests never
/// reach it.
func withScopeWatchdog<T: Sendable>(
  _ limit: Duration = .seconds(30),
  _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
  try await withThrowingTaskGroup(of: T?.self) { group in
    group.addTask { try await operation() }
    group.addTask {
      try await Task.sleep(for: limit)
      throw ScopeWatchdogFired()
    }
    defer { group.cancelAll() }
    return try await group.next()!!
  }
}
