// Small synchronisation helpers for the cancellation tests (cancelAndWait, shields, timeouts).
// They wait for events instead of sleeping, and never block a thread, so they also work on the
// single-threaded virtual-time driver.

import AsyncTools
import AsyncToolsTestSupport

enum CancellationFixtures {
  // The shared fixtures of AsyncToolsTestSupport under the names these suites use.
  typealias Gate = TestGate
  typealias Recorder = TestLog
  typealias Counter = TestCounter

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
  typealias Boom = TestError

  /// Whether `result` is a failure with `CancellationError`.
  static func isCancellation<T>(_ result: Result<T, any Error>) -> Bool {
    if case .failure(let error) = result { return error is CancellationError }
    return false
  }
}
