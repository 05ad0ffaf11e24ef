// Small event primitives for the PersistentTaskGroup / coordination tests: tests wait for events,
// never for time.
import AsyncTools
import AsyncToolsTestSupport
import AsyncToolsTesting
import Testing

typealias PtgFailure = TestError

/// A one-shot gate whose `wait()` throws `CancellationError` if the waiting task is cancelled first.
struct PtgGate: Sendable {
  private let gate = TestGate()
  init() {}
  var isOpen: Bool { gate.isOpen }
  func open() { gate.open() }
  /// Waits until opened; throws `CancellationError` if the waiting task is cancelled first.
  func wait() async throws { try await gate.waitUnlessCancelled() }
  /// Waits until opened, ignoring cancellation (for cleanups that must not be cut short).
  func waitIgnoringCancellation() async { await gate.wait() }
}

// The shared fixtures of AsyncToolsTestSupport under the names these suites use.
typealias PtgEvents = TestCounter
typealias PtgRecorder = TestLog
typealias PtgCounter = TestCounter
typealias PtgDeinitCounted = DeinitCounted

/// Polls `condition` with `Task.yield()` until it holds: for states that have no event to await (a flag flipped
/// inside the library). Fails loudly instead of hanging.
func ptgWaitUntil(
  _ what: String, sourceLocation: SourceLocation = #_sourceLocation, _ condition: () -> Bool
) async {
  await waitUntil(what, sourceLocation: sourceLocation, condition)
}

/// `ASYNCTOOLS_STRESS_ITERATIONS`, or `defaultValue`.
func ptgStressIterations(default defaultValue: Int) -> Int { Stress.iterations(default: defaultValue) }

/// SplitMix64, shared with every seeded test: `SeededRandomNumberGenerator` of AsyncToolsTesting.
typealias PtgRandom = SeededRandomNumberGenerator
