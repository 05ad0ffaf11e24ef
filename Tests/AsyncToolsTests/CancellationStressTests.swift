import AsyncTools
import AsyncToolsTestSupport
import AsyncToolsTesting
import Testing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A randomized, seeded stress test mixing timeouts, shields, outer cancellations and
/// `cancelAndWait`, in virtual time. Each scenario's outcome and end instant are predicted by a
/// small model and checked exactly; cleanups are counted.
///
/// `ASYNCTOOLS_STRESS_ITERATIONS` scales the number of scenarios; `ASYNCTOOLS_STRESS_SEED` replays one run.
@Suite("Cancellation stress")
struct CancellationStressTests {
  @Test func randomTimeoutsShieldsAndCancellationsMatchTheModel() async throws {
    let iterations = Stress.iterations(default: 300)
    let seed = Stress.seed()
    var rng = SplitMix64(seed: seed)
    let scenarios = (0..<iterations).map { _ in Scenario.random(using: &rng) }
    let failures = try await withVirtualTime { clock in
      var failures: [String] = []
      // Rounds of concurrent scenarios: they share the driver and the clock, so their jobs
      // interleave, but they must not influence each other's outcome.
      for round in stride(from: 0, to: scenarios.count, by: 8) {
        let batch = scenarios[round..<min(round + 8, scenarios.count)]
        let reports = await withTaskGroup(of: String?.self) { group in
          for scenario in batch {
            group.addTask { await scenario.run(on: clock) }
          }
          var reports: [String] = []
          for await report in group { if let report { reports.append(report) } }
          return reports
        }
        failures += reports
      }
      return failures
    }
    #expect(
      failures.isEmpty,
      "\(Stress.replay(seed: seed, iterations: iterations)):\n\(failures.joined(separator: "\n"))")
  }
}


/// One caller running `withTimeout` (or `moveOnAfter`) around a body, possibly shielded, possibly
/// cancelled from outside (by `cancel()` or `cancelAndWait()`). All instants are offsets from the
/// scenario's start, in milliseconds; timeouts and cancellations fall between body steps so that
/// no two events tie.
private struct Scenario: Sendable, CustomStringConvertible {
  enum Reaction: Sendable { case rethrow, fail, swallow }
  enum Outcome: Equatable, Sendable, CustomStringConvertible {
    case value(Int), timeout, movedOn, cancelled, boom
    var description: String {
      switch self {
      case .value(let v): "value \(v)"
      case .timeout: "TimeoutError"
      case .movedOn: "nil"
      case .cancelled: "CancellationError"
      case .boom: "Boom"
      }
    }
  }

  var bodyMs: Int  // 1000, 2000 or 3000
  var timeoutMs: Int  // 0 (already past), 500, 1500, 2500 or 3500
  var cancelMs: Int?  // nil, 750, 1750 or 2750
  var cancelWithWait: Bool
  var shielded: Bool
  var nestedShield: Bool
  var reaction: Reaction
  var useMoveOnAfter: Bool

  static func random(using rng: inout SplitMix64) -> Scenario {
    Scenario(
      bodyMs: [1000, 2000, 3000].randomElement(using: &rng)!,
      timeoutMs: [0, 500, 1500, 2500, 3500].randomElement(using: &rng)!,
      cancelMs: [nil, 750, 1750, 2750].randomElement(using: &rng)!,
      cancelWithWait: Bool.random(using: &rng),
      shielded: Bool.random(using: &rng),
      nestedShield: Bool.random(using: &rng),
      reaction: [.rethrow, .fail, .swallow].randomElement(using: &rng)!,
      useMoveOnAfter: Bool.random(using: &rng)
    )
  }

  var description: String {
    "body \(bodyMs) ms, timeout \(timeoutMs) ms, cancel \(cancelMs.map { "\($0) ms" } ?? "never")"
      + "\(cancelWithWait ? " (cancelAndWait)" : ""), "
      + "shielded \(shielded)\(nestedShield ? " (nested)" : ""), reaction \(reaction), "
      + (useMoveOnAfter ? "moveOnAfter" : "withTimeout")
  }

  /// What the model predicts: the outcome, when the caller ends, and how many cleanups ran.
  var expected: (outcome: Outcome, endMs: Int, cleanups: Int) {
    let cancelBeforeEnd = cancelMs.map { $0 < bodyMs } ?? false
    if shielded {
      // The body always runs its full length. The shield reports a cancellation only if it
      // arrived while the shield ran: a past deadline cancels the body before it enters.
      let timerFired = timeoutMs > 0 && timeoutMs < bodyMs
      if timeoutMs == 0 || !(timerFired || cancelBeforeEnd) { return (.value(1), bodyMs, 0) }
      if cancelBeforeEnd { return (.cancelled, bodyMs, 0) }
      return (useMoveOnAfter ? .movedOn : .timeout, bodyMs, 0)
    }
    let interruptMs = min(timeoutMs, cancelMs ?? Int.max)
    if interruptMs >= bodyMs { return (.value(1), bodyMs, 0) }
    switch reaction {
    case .fail: return (.boom, interruptMs, 1)
    case .swallow: return (.value(2), interruptMs, 1)
    case .rethrow:
      if let cancelMs, cancelMs < timeoutMs { return (.cancelled, interruptMs, 1) }
      return (useMoveOnAfter ? .movedOn : .timeout, interruptMs, 1)
    }
  }

  /// Runs the scenario and returns a failure report, or nil if it matched the model.
  func run(on clock: VirtualClock) async -> String? {
    let start = clock.now
    let cleanups = CancellationFixtures.Counter()
    let shieldedBodies = CancellationFixtures.Counter()
    let endedAt = CancellationFixtures.Recorder<Duration>()
    let shieldedBodiesAtEnd = CancellationFixtures.Recorder<Int>()
    let scenario = self
    let caller = Task<Outcome, any Error> {
      defer {
        endedAt.record(clock.now.offset - start.offset)
        shieldedBodiesAtEnd.record(shieldedBodies.current)
      }
      let body: @Sendable () async throws -> Int = {
        if scenario.shielded {
          let work: @Sendable () async throws -> Void = {
            try await clock.sleep(for: .milliseconds(scenario.bodyMs))
            shieldedBodies.increment()
          }
          if scenario.nestedShield {
            // The inner shield never sees the cancellation; the outer one reports it.
            try await withCancellationShield { try await withCancellationShield(work) }
          } else {
            try await withCancellationShield(work)
          }
          return 1
        }
        do {
          try await clock.sleep(for: .milliseconds(scenario.bodyMs))
          return 1
        } catch {
          cleanups.increment()
          switch scenario.reaction {
          case .rethrow: throw error
          case .fail: throw CancellationFixtures.Boom(0)
          case .swallow: return 2
          }
        }
      }
      if scenario.useMoveOnAfter {
        return try await moveOnAfter(.milliseconds(scenario.timeoutMs), clock: clock, body).map(Outcome.value)
          ?? .movedOn
      }
      return .value(try await withTimeout(.milliseconds(scenario.timeoutMs), clock: clock, body))
    }
    var waited: Result<Outcome?, any Error>?
    if let cancelMs {
      try? await clock.sleep(until: start.advanced(by: .milliseconds(cancelMs)))
      if cancelWithWait {
        do { waited = .success(try await caller.cancelAndWait()) } catch { waited = .failure(error) }
      } else {
        caller.cancel()
      }
    }
    let actual: Outcome
    switch await caller.result {
    case .success(let outcome): actual = outcome
    case .failure(let error as TimeoutError):
      actual = .timeout
      if error.duration != .milliseconds(timeoutMs) { return "\(self): wrong TimeoutError \(error)" }
    case .failure(is CancellationError): actual = .cancelled
    case .failure(is CancellationFixtures.Boom): actual = .boom
    case .failure(let error): return "\(self): unexpected error \(error)"
    }
    let (outcome, endMs, expectedCleanups) = expected
    var problems: [String] = []
    if actual != outcome { problems.append("outcome \(actual), expected \(outcome)") }
    if endedAt.all != [.milliseconds(endMs)] { problems.append("ended at \(endedAt.all), expected \(endMs) ms") }
    if cleanups.current != expectedCleanups {
      problems.append("\(cleanups.current) cleanups, expected \(expectedCleanups)")
    }
    // A shielded body runs exactly once and has finished before its caller ends (it does not
    // outlive the shield that owns it).
    if shieldedBodiesAtEnd.all != [shielded ? 1 : 0] || shieldedBodies.current != (shielded ? 1 : 0) {
      problems.append("shielded bodies finished before the caller ended: \(shieldedBodiesAtEnd.all)")
    }
    if let waited {
      // cancelAndWait reports the caller's outcome exactly once: nil for cancellation, the
      // value, or the error.
      switch (waited, actual) {
      case (.success(nil), .cancelled), (.failure(is TimeoutError), .timeout),
        (.failure(is CancellationFixtures.Boom), .boom):
        break
      case (.success(let value?), _) where value == actual:
        break
      default:
        problems.append("cancelAndWait gave \(waited), caller ended with \(actual)")
      }
    }
    return problems.isEmpty ? nil : "\(self): " + problems.joined(separator: "; ")
  }
}

/// SplitMix64, shared with every seeded test: `SeededRandomNumberGenerator` of AsyncToolsTesting.
private typealias SplitMix64 = SeededRandomNumberGenerator
