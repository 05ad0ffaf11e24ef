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
    /// Invalidations/clears of `key` seen when the computation's closure started: it was registered in the cache no
    /// earlier than the detaches counted before that, so a caller that asked after a later detach cannot join it.
    var startEpoch = 0
    /// How the computation's own closure ended: `true` returned its value, `false` threw, `nil` did not end (yet).
    var succeeded: Bool?
  }
  private struct State {
    var computations: [Computation] = []
    var epochs: [Int: Int] = [:]
    var violations: [String] = []
    /// Overlaps seen at a start whose older computation's cancellation handler had not run yet: judged at the end of
    /// the round (see `start`).
    var overlaps: [(older: Int, newer: Int)] = []
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
  ///
  /// A computation prepared before a detach of its key is not judged: the cache may have registered it before that
  /// detach, and its closure may only start now, after its successor (seen under ThreadSanitizer: "computations 20
  /// and 0 ran together", the newer one prepared first).
  ///
  /// An overlap is recorded here and judged in `judgeOverlaps()`, once the round is over, because "cancelled" is seen
  /// through the computation's cancellation handler, which can run a moment *after* the cache let a successor start:
  /// `Task.cancel()` sets the task's cancelled flag, then runs its handlers; a second `cancel()` of the same task (the
  /// cache's cancel-then-retry path, on another thread) returns at once once the flag is set, before the first call
  /// has run the handler. The cache's invariant is about the flag ("at most one computation per key whose task is
  /// not cancelled"), so an overlap is a violation only if the older computation was never cancelled at all.
  func start(_ id: Int) {
    state.withLock { state in
      state.computations[id].started = true
      state.computations[id].startEpoch = state.epochs[state.computations[id].key, default: 0]
      let mine = state.computations[id]
      let currentEpoch = state.epochs[mine.key, default: 0]
      // A computation whose caller asked before a detach of its key may have been registered (and detached) before
      // that detach, its closure only starting now, late, beside the legitimate successor: not judged.
      guard !mine.cancelled, mine.epoch == currentEpoch else { return }
      for (other, computation) in state.computations.enumerated() where other != id && computation.key == mine.key {
        if computation.started && !computation.ended && !computation.cancelled && computation.epoch == currentEpoch {
          state.overlaps.append((older: other, newer: id))
        }
      }
    }
  }

  func cancel(_ id: Int) { state.withLock { $0.computations[id].cancelled = true } }
  func finish(_ id: Int, succeeded: Bool) { state.withLock { $0.computations[id].succeeded = succeeded } }
  func computation(_ id: Int) -> Computation { state.withLock { $0.computations[id] } }
  func end(_ id: Int) { state.withLock { $0.computations[id].ended = true } }
  func detach(key: Int?) {
    state.withLock { state in
      if let key { state.epochs[key, default: 0] += 1 } else { for key in 0..<8 { state.epochs[key, default: 0] += 1 } }
    }
  }

  /// Turns every overlap whose older computation was never cancelled into a violation; call once every caller
  /// returned (every cancellation handler has run by then).
  func judgeOverlaps() {
    state.withLock { state in
      for (older, newer) in state.overlaps where !state.computations[older].cancelled {
        let key = state.computations[newer].key
        state.violations.append("computations \(older) and \(newer) for key \(key) ran together")
      }
      state.overlaps.removeAll()
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
  /// 10,000 rounds: the last bug this suite found (an oracle race, RELIABILITY.md) showed up in about 1 round in
  /// 4,300 (7 in 30,000; 4 in 10,000), so 10,000 rounds catch a bug of that rate with a chance of
  /// 1 − (1 − 1/4,300)^10,000 ≈ 90 %, in about 15 s of a debug build. Under a sanitizer (5–20× slower) 1,000 rounds.
  static var iterations: Int { Stress.iterations(default: 10_000, underSanitizer: 1_000) }

  @Test(.timeLimit(.minutes(5)))
  func randomMissesFailuresCancellationsAndInvalidationsKeepEveryInvariant() async throws {
    let baseSeed = Stress.seed()
    print("AsyncLRUCache stress: base seed \(baseSeed), \(Self.iterations) iterations")
    let heapBefore = Stress.heapInUseBytes() ?? 0
    for iteration in 0..<Self.iterations {
      let seed = baseSeed &+ UInt64(iteration)
      try await Self.round(seed: seed)
    }
    let heapAfter = Stress.heapInUseBytes() ?? 0
    print("AsyncLRUCache stress: heap in use \(heapBefore / 1024) KiB before, \(heapAfter / 1024) KiB after")
  }

  private static func round(seed: UInt64) async throws {
    var random = FunctoolsRandom(seed: seed)
    let keyCount = Int.random(in: 1...4, using: &random)
    let cache = try AsyncLRUCache<Int, StressValue>(maxSize: Int.random(in: 1...3, using: &random))
    let ledger = FlightLedger()
    var cleared = false

    var callers: [(key: Int, id: Int, task: Task<Result<StressValue, any Error>, Never>, cancelled: Bool)] = []
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
                if fails {
                  ledger.finish(id, succeeded: false)
                  throw FunctoolsTestError(id: id)
                }
                ledger.finish(id, succeeded: true)
                return StressValue(key: key, computation: id)
              } onCancel: {
                ledger.cancel(id)
              }
            })
        } catch {
          return .failure(error)
        }
      }
      callers.append((key, id, task, false))
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

    // Each caller got the outcome of a computation it may get: of its key, that really ended that way, not detached
    // before the caller asked (an invalidation or clear the loop made before it created the caller's task), and its
    // own computation's if its own closure ran (the caller that misses runs the computation and awaits it). A caller
    // asks at the earliest at `asked.epoch` (its task is created then), so its source started at that epoch or later.
    let context = Stress.replay(seed: seed, iterations: 1)
    for caller in callers {
      let asked = ledger.computation(caller.id)
      let result = await caller.task.value
      if asked.started && !caller.cancelled {
        let own: Bool =
          switch result {
          case .success(let value): value.computation == caller.id
          case .failure(let error as FunctoolsTestError): error.id == caller.id
          case .failure: false
          }
        #expect(own, "caller \(caller.id) ran its own computation but got \(result) (\(context))")
      }
      switch result {
      case .success(let value):
        let source = ledger.computation(value.computation)
        #expect(value.key == caller.key, "a caller of key \(caller.key) got a value of \(value.key) (\(context))")
        #expect(source.key == caller.key && source.succeeded == true, "caller \(caller.id) got \(value) (\(context))")
        #expect(source.startEpoch >= asked.epoch, "caller \(caller.id) got a detached computation's value (\(context))")
      case .failure(let error as FunctoolsTestError):
        let source = ledger.computation(error.id)
        #expect(source.key == caller.key, "an error from another key's computation (\(context))")
        #expect(source.succeeded == false, "caller \(caller.id) got an error computation \(error.id) did not throw")
        #expect(source.startEpoch >= asked.epoch, "caller \(caller.id) got a detached computation's error (\(context))")
      case .failure(is CancellationError):
        #expect(caller.cancelled, "a caller nobody cancelled got CancellationError (\(context))")
      case .failure(let error):
        Issue.record("unexpected error \(error) (\(context))")
      }
    }
    ledger.judgeOverlaps()
    #expect(ledger.violations.isEmpty, "\(ledger.violations) (\(Stress.replay(seed: seed, iterations: 1)))")
    #expect(ledger.stillRunning == 0, "a computation outlived every caller (seed \(seed))")
    #expect(cache.info().inFlight == 0, "a computation is still attached after every caller returned (seed \(seed))")
    if !cleared {
      #expect(cache.info().misses == ledger.started, "each miss runs exactly one computation (seed \(seed))")
    }
  }
}
