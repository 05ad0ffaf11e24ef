#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif
import AsyncTools
import AsyncToolsTestSupport
import Testing

/// What every computation of one stress round did, to check the single-flight invariant as it happens.
private final class FlightLedger: Sendable {
  struct Computation {
    var key: Int
    /// Invalidations/clears of `key` seen when the caller asked; a later one means the computation may be detached.
    var epoch: Int
    var started = false
    var ended = false
    var cancelled = false
  }
  private struct State {
    var computations: [Computation] = []
    var epochs: [Int: Int] = [:]
    var violations: [String] = []
  }
  private let state = Locked(State())

  /// Registers the computation a caller would start on a miss (used only if it does miss).
  func prepare(key: Int) -> Int {
    state.withLock { state in
      state.computations.append(Computation(key: key, epoch: state.epochs[key, default: 0]))
      return state.computations.count - 1
    }
  }

  /// A computation starts: no other computation for its key may be running un-cancelled, unless an invalidation or a
  /// clear detached it (then the cache allows a successor). A computation already cancelled before it starts
  /// is not live and is not checked.
  func start(_ id: Int) {
    state.withLock { state in
      state.computations[id].started = true
      let mine = state.computations[id]
      guard !mine.cancelled else { return }
      let currentEpoch = state.epochs[mine.key, default: 0]
      for (other, computation) in state.computations.enumerated() where other != id && computation.key == mine.key {
        if computation.started && !computation.ended && !computation.cancelled && computation.epoch == currentEpoch {
          state.violations.append("computations \(other) and \(id) for key \(mine.key) ran together")
        }
      }
    }
  }

  func cancel(_ id: Int) { state.withLock { $0.computations[id].cancelled = true } }
  func end(_ id: Int) { state.withLock { $0.computations[id].ended = true } }
  func detach(key: Int?) {
    state.withLock { state in
      if let key { state.epochs[key, default: 0] += 1 } else { for key in 0..<8 { state.epochs[key, default: 0] += 1 } }
    }
  }

  var violations: [String] { state.withLock { $0.violations } }
  var started: Int { state.withLock { $0.computations.filter(\.started).count } }
  var stillRunning: Int { state.withLock { $0.computations.filter { $0.started && !$0.ended }.count } }
  func key(of id: Int) -> Int { state.withLock { $0.computations[id].key } }
}

private struct StressValue: Equatable {
  var key: Int
  var computation: Int
}

@Suite("AsyncLRUCache stress")
struct AsyncLRUCacheStressTests {
  static var iterations: Int { Stress.iterations(default: 40) }

  @Test(.timeLimit(.minutes(5)))
  func randomMissesFailuresCancellationsAndInvalidationsKeepEveryInvariant() async throws {
    let baseSeed = Stress.seed()
    print("AsyncLRUCache stress: base seed \(baseSeed), \(Self.iterations) iterations")
    for iteration in 0..<Self.iterations {
      let seed = baseSeed &+ UInt64(iteration)
      try await Self.round(seed: seed)
    }
  }

  private static func round(seed: UInt64) async throws {
    var random = FunctoolsRandom(seed: seed)
    let keyCount = Int.random(in: 1...4, using: &random)
    let cache = try AsyncLRUCache<Int, StressValue>(maxSize: Int.random(in: 1...3, using: &random))
    let ledger = FlightLedger()
    var cleared = false

    var callers: [(key: Int, task: Task<Result<StressValue, any Error>, Never>, cancelled: Bool)] = []
    for _ in 0..<Int.random(in: 10...60, using: &random) {
      let key = Int.random(in: 0..<keyCount, using: &random)
      let fails = Int.random(in: 0..<4, using: &random) == 0
      let steps = Int.random(in: 0..<20, using: &random)
      let id = ledger.prepare(key: key)
      let task = Task { () -> Result<StressValue, any Error> in
        do {
          return .success(
            try await cache.value(forKey: key) {
              try await withTaskCancellationHandler {
                ledger.start(id)
                defer { ledger.end(id) }
                for _ in 0..<steps {
                  await Task.yield()
                  try Task.checkCancellation()
                }
                if fails { throw FunctoolsTestError(id: id) }
                return StressValue(key: key, computation: id)
              } onCancel: {
                ledger.cancel(id)
              }
            })
        } catch {
          return .failure(error)
        }
      }
      callers.append((key, task, false))
      // Interleave cancellations, invalidations and clears with the calls.
      switch Int.random(in: 0..<20, using: &random) {
      case 0..<4:
        let victim = Int.random(in: 0..<callers.count, using: &random)
        callers[victim].task.cancel()
        callers[victim].cancelled = true
      case 4:
        let key = Int.random(in: 0..<keyCount, using: &random)
        // The ledger learns of the detach first: a successor computation may start on another
        // thread the moment `invalidate` returns, and must not be judged against the old epoch.
        ledger.detach(key: key)
        cache.invalidate(key)
      case 5:
        ledger.detach(key: nil)
        cache.clear()
        cleared = true
      default:
        for _ in 0..<Int.random(in: 0..<3, using: &random) { await Task.yield() }
      }
    }

    for caller in callers {
      switch await caller.task.value {
      case .success(let value):
        #expect(value.key == caller.key, "seed \(seed): a caller of key \(caller.key) got a value of \(value.key)")
        #expect(ledger.key(of: value.computation) == caller.key, "seed \(seed)")
      case .failure(let error as FunctoolsTestError):
        #expect(ledger.key(of: error.id) == caller.key, "seed \(seed): an error from another key's computation")
      case .failure(is CancellationError):
        #expect(caller.cancelled, "seed \(seed): a caller nobody cancelled got CancellationError")
      case .failure(let error):
        Issue.record("seed \(seed): unexpected error \(error)")
      }
    }
    #expect(ledger.violations.isEmpty, "seed \(seed): \(ledger.violations)")
    #expect(ledger.stillRunning == 0, "seed \(seed): a computation outlived every caller")
    #expect(cache.info().inFlight == 0, "seed \(seed): a computation is still attached after every caller returned")
    if !cleared {
      #expect(cache.info().misses == ledger.started, "seed \(seed): each miss runs exactly one computation")
    }
  }
}
