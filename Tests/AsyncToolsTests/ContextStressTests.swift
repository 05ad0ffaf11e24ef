import AsyncTools
import AsyncToolsTestSupport
import AsyncToolsTesting
import Testing

/// SplitMix64, shared with every seeded test: `SeededRandomNumberGenerator` of AsyncToolsTesting.
private typealias SplitMix64 = SeededRandomNumberGenerator

/// Everything one iteration did: which resources entered, how often each was exited, which errors
/// were injected and which ones reached someone.
private final class StressLedger: Sendable {
  private struct State {
    var nextID = 0
    var entered: Set<Int> = []
    var exits: [Int: Int] = [:]
    var injected: [String] = []
    var reported: [String] = []
  }
  private let state = Locked(State())

  func newID() -> Int { state.withLock { state in defer { state.nextID += 1 }; return state.nextID } }
  func entered(_ id: Int) { state.withLock { _ = $0.entered.insert(id) } }
  func exited(_ id: Int) { state.withLock { $0.exits[id, default: 0] += 1 } }
  func inject(_ name: String) -> ScopeTestError {
    state.withLock { $0.injected.append(name) }
    return ScopeTestError(name)
  }
  /// Records every named error inside `error` as delivered to someone (cancellations are not named).
  func report(_ error: any Error) {
    let names = scopeErrorNames(error).filter { $0 != "cancelled" }
    state.withLock { $0.reported += names }
  }
  var snapshot: (entered: Set<Int>, exits: [Int: Int], injected: [String], reported: [String]) {
    state.withLock { ($0.entered, $0.exits, $0.injected, $0.reported) }
  }
}

private struct ResourcePlan {
  var failEnter: Bool
  var failExit: Bool
  var builtFromClosure: Bool
  var checksCancellation: Bool

  init(_ rng: inout SplitMix64) {
    failEnter = Int.random(in: 0..<4, using: &rng) == 0
    failExit = Int.random(in: 0..<4, using: &rng) == 0
    builtFromClosure = Bool.random(using: &rng)
    checksCancellation = Bool.random(using: &rng)
  }

  func manager(_ ledger: StressLedger) -> any AsyncContextManager<Int> {
    let id = ledger.newID()
    if builtFromClosure {
      return AsyncContext { body in
        await Task.yield()
        if checksCancellation { try Task.checkCancellation() }
        if failEnter { throw ledger.inject("enter \(id)") }
        ledger.entered(id)
        await body(id)
        await Task.yield()
        ledger.exited(id)
        if failExit { throw ledger.inject("exit \(id)") }
      }
    }
    return StressMember(id: id, plan: self, ledger: ledger)
  }
}

private struct StressMember: AsyncContextManager {
  let id: Int
  let plan: ResourcePlan
  let ledger: StressLedger

  func enter() async throws -> Int {
    await Task.yield()
    if plan.checksCancellation { try Task.checkCancellation() }
    if plan.failEnter { throw ledger.inject("enter \(id)") }
    ledger.entered(id)
    return id
  }

  func exit(_ outcome: ExitOutcome) async throws {
    await Task.yield()
    ledger.exited(id)
    if plan.failExit { throw ledger.inject("exit \(id)") }
  }
}

private enum BodyPlan: CaseIterable { case succeed, fail, awaitCancellation }

private struct IterationPlan {
  var stackResources: [ResourcePlan]
  var toleratesEnterFailures: Bool
  var callbacks: [Bool]  // whether each callback throws
  var groupMembers: [ResourcePlan]
  var groupBody: BodyPlan
  var rethrowsGroupExits: Bool
  var cancelBeforeStart: Bool

  init(seed: UInt64) {
    var rng = SplitMix64(seed: seed)
    stackResources = (0..<Int.random(in: 0...3, using: &rng)).map { _ in ResourcePlan(&rng) }
    toleratesEnterFailures = Bool.random(using: &rng)
    callbacks = (0..<Int.random(in: 0...3, using: &rng)).map { _ in Int.random(in: 0..<3, using: &rng) == 0 }
    groupMembers = (0..<Int.random(in: 0...4, using: &rng)).map { _ in ResourcePlan(&rng) }
    groupBody = BodyPlan.allCases.randomElement(using: &rng)!
    rethrowsGroupExits = Bool.random(using: &rng)
    cancelBeforeStart = Int.random(in: 0..<8, using: &rng) == 0
  }
}

@Suite("Scoped resources stress")
struct ContextStressTests {
  static var iterations: Int { Stress.iterations(default: 1000) }

  @Test func randomFailuresAndCancellationsExitEveryEnteredResourceOnceAndLoseNoError() async throws {
    let baseSeed = Stress.seed()
    for iteration in 0..<Self.iterations {
      let seed = baseSeed &+ UInt64(iteration)
      try await Self.run(seed: seed)
    }
  }

  private static func run(seed: UInt64) async throws {
    let plan = IterationPlan(seed: seed)
    let ledger = StressLedger()
    let reachedGroupBody = ScopeSignal()
    let task = Task {
      defer { reachedGroupBody.fire() }  // also when the scope ended before the group body
      try await withExitStack { stack in
        for resource in plan.stackResources {
          do {
            _ = try await stack.enter(resource.manager(ledger))
          } catch where plan.toleratesEnterFailures {
            ledger.report(error)
          }
        }
        for throwsError in plan.callbacks {
          let name = "callback \(ledger.newID())"
          try stack.callback { if throwsError { throw ledger.inject(name) } }
        }
        let result = try await withContextGroup(plan.groupMembers.map { $0.manager(ledger) }) { values in
          for case .failure(let error) in values { ledger.report(error) }
          switch plan.groupBody {
          case .succeed: return values.count
          case .fail: throw ledger.inject("group body \(ledger.newID())")
          case .awaitCancellation:
            reachedGroupBody.fire()
            try await awaitScopeCancellation()
            return values.count
          }
        }
        if plan.rethrowsGroupExits {
          _ = try result.get()
        } else {
          result.exitErrors.forEach(ledger.report)
        }
      }
    }
    if plan.cancelBeforeStart {
      task.cancel()
    } else {
      await reachedGroupBody.wait()
      task.cancel()
    }
    if case .failure(let error) = await task.result { ledger.report(error) }

    let (entered, exits, injected, reported) = ledger.snapshot
    for id in entered {
      #expect(exits[id] == 1, "seed \(seed): resource \(id) entered but exited \(exits[id] ?? 0) times")
    }
    for (id, count) in exits where !entered.contains(id) {
      #expect(Bool(false), "seed \(seed): resource \(id) never entered but exited \(count) times")
    }
    #expect(
      reported.sorted() == injected.sorted(),
      "seed \(seed): every injected error must be reported exactly once")
  }
}
