import AsyncTools
import AsyncToolsTestSupport
import AsyncToolsTesting

// The shared fixtures of AsyncToolsTestSupport under the names these suites use.
typealias ChildGate = TestGate
typealias ChildCounter = TestCounter
typealias ChildLog = TestLog<String>
typealias ChildError = TestError

/// Suspends until the current task is cancelled (a wait for an event, not a timed sleep).
func childSleepUntilCancelled() async {
  let (stream, continuation) = AsyncStream<Never>.makeStream()
  // Iteration returns `nil` as soon as the iterating task is cancelled.
  for await _ in stream {}
  continuation.finish()
}

typealias ChildBox = TestBox

/// SplitMix64, shared with every seeded test: `SeededRandomNumberGenerator` of AsyncToolsTesting.
typealias ChildSeededRandom = SeededRandomNumberGenerator

/// A generator that always returns the same value: `UInt64(1) << 63` gives a jitter unit of exactly 0.5.
struct ChildConstantRandom: RandomNumberGenerator, Sendable {
  var value: UInt64
  mutating func next() -> UInt64 { value }
}
