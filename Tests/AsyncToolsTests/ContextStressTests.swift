import AsyncTools
import AsyncToolsTestSupport
import AsyncToolsTesting
import Testing

/// SplitMix64, shared with every seeded test: `SeededRandomNumberGenerator` of AsyncToolsTesting.
private typealias SplitMix64 = SeededRandomNumberGenerator

/// Everything one iteration did: which resources entered, how often each was exited, which errors
/// were injected and which ones reached someone.
/// It also cancels the scenario at a planned step (every enter, exit, callback and the group body is a step), so
/// cancellation lands anywhere in the scenario, not only before it starts or in the group body.
private final class StressLedger: Sendable {
  private struct State {
    var nextID = 0
    var entered: Set<Int> = []
    var exits: [Int: Int] = [:]
    var injected: [String] = []
    var reported: [String] = []
    var steps = 0
    var cancelAtStep: Int?
    var cancelRequested = false
    var scenario: Task<Void, any Error>?
  }
  private let state = Locked(State())

  init(cancelAtStep: Int?) {
    state.withLock {
      $0.cancelAtStep = cancelAtStep
      $0.cancelRequested = cancelAtStep == 0
    }
  }

  /// Hands over the scenario's task, cancelling it at once if its cancel step has already passed.
  func arm(_ task: Task<Void, any Error>) {
    let cancelNow = state.withLock { state in
      state.scenario = task
      return state.cancelRequested
    }
    if cancelNow { task.cancel() }
  }

  /// One step of the scenario; the planned one cancels it.
  func step() {
    let task = state.withLock { state -> Task<Void, any Error>? in
      state.steps += 1
      guard state.steps == state.cancelAtStep else { return nil }
      state.cancelRequested = true
      return state.scenario
    }
    task?.cancel()
  }

  /// Cancels the scenario now if nothing did before (a body that waits for cancellation would wait forever).
  func ensureCancelled() {
    let task = state.withLock { state -> Task<Void, any Error>? in
      state.cancelRequested = true
      return state.scenario
    }
    task?.cancel()
  }

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
        ledger.step()
        await Task.yield()
        if checksCancellation { try Task.checkCancellation() }
        if failEnter { throw ledger.inject("enter \(id)") }
        ledger.entered(id)
        await body(id)
        ledger.step()
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
    ledger.step()
    await Task.yield()
    if plan.checksCancellation { try Task.checkCancellation() }
    if plan.failEnter { throw ledger.inject("enter \(id)") }
    ledger.entered(id)
    return id
  }

  func exit(_ outcome: ExitOutcome) async throws {
    ledger.step()
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
  /// The step at which the scenario is cancelled (0: before it starts), or `nil`: never, unless its group body waits
  /// for cancellation.
  var cancelAtStep: Int?

  init(seed: UInt64) {
    var rng = SplitMix64(seed: seed)
    stackResources = (0..<Int.random(in: 0...3, using: &rng)).map { _ in ResourcePlan(&rng) }
    toleratesEnterFailures = Bool.random(using: &rng)
    callbacks = (0..<Int.random(in: 0...3, using: &rng)).map { _ in Int.random(in: 0..<3, using: &rng) == 0 }
    groupMembers = (0..<Int.random(in: 0...4, using: &rng)).map { _ in ResourcePlan(&rng) }
    groupBody = BodyPlan.allCases.randomElement(using: &rng)!
    rethrowsGroupExits = Bool.random(using: &rng)
    // Every resource enters and exits, every callback runs, the group body is one step.
    let steps = 2 * (stackResources.count + groupMembers.count) + callbacks.count + 1
    cancelAtStep = Int.random(in: 0..<4, using: &rng) == 0 ? nil : Int.random(in: 0...steps, using: &rng)
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
    let ledger = StressLedger(cancelAtStep: plan.cancelAtStep)
    let task = Task {
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
          try stack.callback {
            ledger.step()
            if throwsError { throw ledger.inject(name) }
          }
        }
        let result = try await withContextGroup(plan.groupMembers.map { $0.manager(ledger) }) { values in
          for case .failure(let error) in values { ledger.report(error) }
          ledger.step()
          switch plan.groupBody {
          case .succeed: return values.count
          case .fail: throw ledger.inject("group body \(ledger.newID())")
          case .awaitCancellation:
            ledger.ensureCancelled()
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
    ledger.arm(task)
    if case .failure(let error) = await task.result { ledger.report(error) }

    let (entered, exits, injected, reported) = ledger.snapshot
    for id in entered {
      #expect(exits[id] == 1, "resource \(id) entered but exited \(exits[id] ?? 0) times (\(Stress.replay(seed: seed, iterations: 1)))")
    }
    for (id, count) in exits where !entered.contains(id) {
      #expect(Bool(false), "resource \(id) never entered but exited \(count) times (\(Stress.replay(seed: seed, iterations: 1)))")
    }
    #expect(
      reported.sorted() == injected.sorted(),
      "every injected error must be reported exactly once (\(Stress.replay(seed: seed, iterations: 1)))")
  }
}
