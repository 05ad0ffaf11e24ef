import AsyncToolsServer
import AsyncToolsTestSupport
import Logging

#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
import UnixSignals

/// A threads-mode configuration for in-process tests: no OS signal trapping (tests run in
/// parallel in one process; they stop servers through `ServerMain.signal`), and a silent logger.
/// With a `probe`, the server's log messages are recorded there as `log: <message>`, so a test can
/// wait for the supervisor to have handled an event.
func threadsConfiguration(workers: Int, logTo probe: Probe? = nil) -> ServerConfiguration {
  var configuration = ServerConfiguration(mode: .threads, numWorkers: workers)
  configuration.trapsSignals = false
  if let probe {
    configuration.logger = Logger(label: "test") { _ in ProbeLogHandler(probe: probe) }
  } else {
    configuration.logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
  }
  return configuration
}

struct ProbeLogHandler: LogHandler {
  let probe: Probe
  var metadata: Logger.Metadata = [:]
  var logLevel: Logger.Level = .trace
  subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }
  func log(event: LogEvent) { probe.record("log: \(event.message)") }
}

/// Collects what workers report, and lets the test wait for a given report without sleeping.
final class Probe: Sendable {
  private struct State {
    var events: [String] = []
    var waiters: [(predicate: @Sendable ([String]) -> Bool, continuation: CheckedContinuation<Void, Never>)] = []
  }
  private let state = PThreadLocked(State())

  /// Records an event and wakes the waiters whose condition now holds.
  func record(_ event: String) {
    let ready = state.withLock { state in
      state.events.append(event)
      let events = state.events
      var ready: [CheckedContinuation<Void, Never>] = []
      state.waiters.removeAll { waiter in
        if waiter.predicate(events) {
          ready.append(waiter.continuation)
          return true
        }
        return false
      }
      return ready
    }
    for continuation in ready { continuation.resume() }
  }

  var events: [String] { state.withLock { $0.events } }

  func count(_ prefix: String) -> Int { events.filter { $0.hasPrefix(prefix) }.count }

  /// Suspends until `predicate` holds for the events recorded so far.
  func wait(until predicate: @escaping @Sendable ([String]) -> Bool) async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let now = state.withLock { state in
        if predicate(state.events) { return true }
        state.waiters.append((predicate, continuation))
        return false
      }
      if now { continuation.resume() }
    }
  }

  /// Suspends until `count` events start with `prefix`.
  func wait(for count: Int, _ prefix: String) async {
    await wait { events in events.filter { $0.hasPrefix(prefix) }.count >= count }
  }

  /// Suspends until the server (configured with `logTo:` this probe) has logged `count` workers ready.
  ///
  /// Wait for this, not for an event a worker records just before `stopSignal()`: until that call
  /// the worker is still starting, and a stop then cancels it (a stop during start-up) instead of
  /// being delivered, so such a test races the worker's own task.
  func waitForReadyWorkers(_ count: Int) async {
    await wait { events in events.filter { $0.hasPrefix("log: worker ") && $0.hasSuffix(" is ready") }.count >= count }
  }

  /// The events the test recorded, without the server's log lines.
  var testEvents: [String] { events.filter { !$0.hasPrefix("log: ") } }
}

struct WatchdogTimeout: Error, CustomStringConvertible {
  var seconds: Int
  var description: String { "the test did not finish within \(seconds) s (watchdog)" }
}

/// Resumes a continuation once, from whichever side comes first.
private final class FirstResult<T: Sendable>: Sendable {
  private let continuation = PThreadLocked<CheckedContinuation<Result<T, any Error>, Never>?>(nil)
  func set(_ continuation: CheckedContinuation<Result<T, any Error>, Never>) { self.continuation.withLock { $0 = continuation } }
  func resume(_ result: Result<T, any Error>) { continuation.withLock { $0.take() }?.resume(returning: result) }
}

/// Runs `body` and fails the test instead of hanging when it takes longer than `seconds`.
func withWatchdog<T: Sendable>(
  seconds: Int = 30, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
  let task = Task { try await body() }
  let first = FirstResult<T>()
  var timer: Task<Void, Never>?
  let result: Result<T, any Error> = await withCheckedContinuation { continuation in
    first.set(continuation)
    Task { first.resume(await task.result) }
    timer = Task {
      if (try? await Task.sleep(for: .seconds(seconds))) != nil { first.resume(.failure(WatchdogTimeout(seconds: seconds))) }
    }
  }
  timer?.cancel()
  if case .failure(let error) = result, error is WatchdogTimeout { task.cancel() }
  return try result.get()
}
