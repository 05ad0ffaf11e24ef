/// A small, fast, seedable random number generator (SplitMix64), for tests that must replay exactly.
///
/// Hand it to APIs that take a random source — a supervisor's backoff jitter, say — or use it to
/// draw a stress test's scenario, and print the seed when a test fails:
///
/// ```swift
/// var random = SeededRandomNumberGenerator(seed: seed)
/// let delay = Int.random(in: 1...100, using: &random)
/// try await withSupervisor(random: SeededRandomNumberGenerator(seed: 42)) { … }
/// ```
///
/// The same seed gives the same sequence on every platform and run. Not for cryptography.
public struct SeededRandomNumberGenerator: RandomNumberGenerator, Sendable {
  private var state: UInt64

  /// Creates a generator whose sequence is determined by `seed`.
  public init(seed: UInt64) {
    state = seed
  }

  /// The next 64 random bits.
  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
