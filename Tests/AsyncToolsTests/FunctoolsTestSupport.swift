import AsyncTools
import AsyncToolsTestSupport
import AsyncToolsTesting
import Testing

// The shared fixtures of AsyncToolsTestSupport under the names these suites use.
typealias FunctoolsGate = TestGate
typealias FunctoolsCounter = TestCounter
typealias FunctoolsTestError = TestError

/// A thread-safe flag.
final class FunctoolsFlag: Sendable {
  private let value = Locked(false)
  func set() { value.withLock { $0 = true } }
  var isSet: Bool { value.withLock { $0 } }
}

/// Yields until `condition` holds: waiting for an event another task makes observable, not a timed sleep. Fails
/// the test instead of hanging if it does not hold within 30 s of real time.
func functoolsEventually(sourceLocation: SourceLocation = #_sourceLocation, _ condition: () -> Bool) async {
  await waitUntil("the condition holds", sourceLocation: sourceLocation, condition)
}

/// SplitMix64, shared with every seeded test: `SeededRandomNumberGenerator` of AsyncToolsTesting.
typealias FunctoolsRandom = SeededRandomNumberGenerator
