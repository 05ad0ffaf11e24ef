import AsyncTools
import AsyncToolsTestSupport
import AsyncToolsTesting
import Testing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Seeded random interleavings of child failures, cancellations and timeouts through task scopes, supervisors and
/// error groups, in virtual time. Invariants: every child error reaches the handler (or the error group) exactly
/// once, no child outlives its scope, the scope's outcome is the one its rules predict, and nothing hangs.
@Suite("Scopes stress")
struct ScopesStressTests {
  static var iterations: Int { Stress.iterations(default: 1000) }

  static let seed: UInt64 = Stress.seed()

  /// What one child does: wait `delay` on the virtual clock, then act.
  enum Action: Sendable {
    case succeed
    case fail
    case hang
    case cancelScope
    case spawn(Int)
  }

  struct Plan: Sendable {
    var delay: Duration
    var action: Action
  }

  /// Shared per-iteration bookkeeping.
  final class Ledger: Sendable {
    let thrown = ChildBox<[Int]>([])
    let reported = ChildBox<[Int]>([])
    let live = ChildBox(0)
    let violations = ChildLog()

    func report(_ error: any Error) {
      if let error = error as? ChildError {
        reported.update { $0.append(error.id) }
      } else {
        violations.append("handler got a foreign error: \(error)")
      }
    }
  }

  static func randomPlan(_ random: inout ChildSeededRandom, allowSpawn: Bool) -> Plan {
    let delay = Duration.seconds(Int.random(in: 0...12, using: &random))
    let roll = Int.random(in: 0..<100, using: &random)
    let action: Action =
      switch roll {
      case 0..<35: .succeed
      case 35..<65: .fail
      case 65..<80: .hang
      case 80..<88: .cancelScope
      default: allowSpawn ? .spawn(Int.random(in: 1...2, using: &random)) : .succeed
      }
    return Plan(delay: delay, action: action)
  }

  /// Runs one child of a task scope according to its plan.
  static func runChild(
    _ plan: Plan, id: Int, clock: VirtualClock, ledger: Ledger, handle: TaskScope.Handle,
    random: ChildSeededRandom
  ) async throws {
    ledger.live.update { $0 += 1 }
    defer { ledger.live.update { $0 -= 1 } }
    try await clock.sleep(for: plan.delay)
    switch plan.action {
    case .succeed: return
    case .fail:
      ledger.thrown.update { $0.append(id) }
      throw ChildError(id: id)
    case .hang: try await clock.sleep(for: .seconds(1000))
    case .cancelScope: handle.cancelAll()
    case .spawn(let count):
      var random = random
      for index in 0..<count {
        let childPlan = randomPlan(&random, allowSpawn: false)
        let childRandom = random
        do {
          try handle.addTask {
            try await runChild(
              childPlan, id: id * 10 + index + 1, clock: clock, ledger: ledger, handle: handle, random: childRandom)
          }
        } catch {
          ledger.violations.append("a live child could not add a grandchild: \(error)")
        }
      }
    }
  }

  @Test(.timeLimit(.minutes(5)))
  func taskScopesUnderRandomFailuresCancellationsAndTimeouts() async throws {
    let seed = Self.seed
    let iterations = Self.iterations
    try await withVirtualTime { clock in
      for iteration in 0..<iterations {
        var random = ChildSeededRandom(seed: seed &+ UInt64(iteration))
        let ledger = Ledger()
        let timeout: Duration? = Bool.random(using: &random) ? .seconds(Int.random(in: 1...15, using: &random)) : nil
        let fastChildren = (0..<Int.random(in: 0...6, using: &random)).map { _ in
          Self.randomPlan(&random, allowSpawn: true)
        }
        let handleChildren = (0..<Int.random(in: 0...3, using: &random)).map { _ in
          Self.randomPlan(&random, allowSpawn: true)
        }
        let bodyDelay = Duration.seconds(Int.random(in: 0...10, using: &random))
        let bodyThrows = Int.random(in: 0..<100, using: &random) < 20
        let outerCancelAfter: Duration? =
          Int.random(in: 0..<100, using: &random) < 20 ? .seconds(Int.random(in: 0...10, using: &random)) : nil
        let childRandom = random
        let bodyThrew = ChildBox(false)
        let context = Stress.replay(seed: seed &+ UInt64(iteration), iterations: 1)

        let start = clock.now
        let scope = Task {
          try await withTaskScope(timeout: timeout, clock: clock, errorHandler: ledger.report) { scope in
            let handle = scope.handle
            for (index, plan) in fastChildren.enumerated() {
              scope.addTask {
                try await Self.runChild(
                  plan, id: 1000 + index * 100, clock: clock, ledger: ledger, handle: handle, random: childRandom)
              }
            }
            for (index, plan) in handleChildren.enumerated() {
              try handle.addTask {
                try await Self.runChild(
                  plan, id: 2000 + index * 100, clock: clock, ledger: ledger, handle: handle, random: childRandom)
              }
            }
            try await clock.sleep(for: bodyDelay)
            if bodyThrows {
              bodyThrew.set(true)
              throw ChildError(id: -1)
            }
            return iteration
          }
        }
        let canceller = Task {
          if let outerCancelAfter {
            try await clock.sleep(for: outerCancelAfter)
            scope.cancel()
          }
        }
        let result = await scope.result
        let outerCancelled = outerCancelAfter.map { start.duration(to: clock.now) >= $0 } ?? false
        canceller.cancel()
        _ = await canceller.result
        let elapsed = start.duration(to: clock.now)

        #expect(ledger.live.value == 0, "a child outlived its scope (\(context))")
        #expect(ledger.reported.value.sorted() == ledger.thrown.value.sorted(), "errors reported ≠ thrown (\(context))")
        #expect(ledger.violations.all.isEmpty, "\(ledger.violations.all) (\(context))")
        switch result {
        case .success(let value):
          #expect(value == iteration, "\(context)")
          #expect(!bodyThrew.value, "the body's error was lost (\(context))")
          if let timeout { #expect(elapsed <= timeout, "returned after its timeout (\(context))") }
        case .failure(let error as ChildError):
          #expect(error.id == -1 && bodyThrew.value, "unexpected error \(error) (\(context))")
        case .failure(is TimeoutError):
          #expect(!bodyThrew.value, "a body error was replaced by a timeout (\(context))")
          #expect(elapsed == timeout, "timed out at \(elapsed), not at \(String(describing: timeout)) (\(context))")
        case .failure(is CancellationError):
          #expect(outerCancelled && !bodyThrew.value, "unexpected CancellationError (\(context))")
        case .failure(let error):
          Issue.record("unexpected error \(error) (\(context))")
        }
      }
    }
  }

  @Test(.timeLimit(.minutes(5)))
  func supervisorsAndErrorGroupsUnderRandomFailures() async throws {
    let seed = Self.seed &+ 1_000_000
    let iterations = Self.iterations
    try await withVirtualTime { clock in
      for iteration in 0..<iterations {
        var random = ChildSeededRandom(seed: seed &+ UInt64(iteration))
        let ledger = Ledger()
        // Scenario `iteration` replays alone from base seed `Self.seed + iteration`; its kind follows that seed.
        let replaySeed = Self.seed &+ UInt64(iteration)
        let context = Stress.replay(seed: replaySeed, iterations: 1)
        let failuresBeforeSuccess = (0..<Int.random(in: 1...5, using: &random)).map { _ in
          Int.random(in: 0...3, using: &random)
        }
        let delays = failuresBeforeSuccess.map { _ in Duration.seconds(Int.random(in: 0...5, using: &random)) }

        if replaySeed.isMultiple(of: 2) {
          // Supervisor: transient children fail a few times, then succeed; the limit may or may not be crossed.
          let maxRestarts = Int.random(in: 0...6, using: &random)
          let result = await Result {
            try await withSupervisor(
              intensity: RestartIntensity(maxRestarts: maxRestarts, within: .seconds(60)),
              backoff: Backoff(initial: .seconds(1), maximum: .seconds(4), jitter: 0.5), clock: clock,
              random: random, errorHandler: ledger.report
            ) { supervisor in
              for (index, failures) in failuresBeforeSuccess.enumerated() {
                let runs = ChildBox(0)
                supervisor.addChild(name: "c\(index)", restart: .onFailure) {
                  ledger.live.update { $0 += 1 }
                  defer { ledger.live.update { $0 -= 1 } }
                  try await clock.sleep(for: delays[index])
                  let run = runs.update { $0 += 1; return $0 }
                  if run <= failures {
                    let id = index * 100 + run
                    ledger.thrown.update { $0.append(id) }
                    throw ChildError(id: id)
                  }
                }
              }
            }
          }
          // Every child's life fits in the 60 s window (≤ 4 runs × 5 s + 3 backoffs × 4 s), so the supervisor gives
          // up exactly when the planned restarts exceed the limit.
          let totalRestarts = failuresBeforeSuccess.reduce(0, +)
          switch result {
          case .success:
            #expect(totalRestarts <= maxRestarts, "did not give up with \(totalRestarts) restarts (\(context))")
          case .failure(let error as SupervisorError):
            #expect(totalRestarts > maxRestarts, "gave up with \(totalRestarts) restarts planned (\(context))")
            #expect(error.restarts == maxRestarts + 1, "\(context)")
          case .failure(let error):
            Issue.record("unexpected error \(error) (\(context))")
          }
        } else {
          // Error group: the first failure cancels the rest; every real failure comes out exactly once.
          let result = await Result {
            try await withErrorGroup { group in
              for (index, failures) in failuresBeforeSuccess.enumerated() {
                try group.addTask {
                  ledger.live.update { $0 += 1 }
                  defer { ledger.live.update { $0 -= 1 } }
                  do {
                    try await clock.sleep(for: delays[index])
                  } catch {
                    // Some tasks fail even during cancellation: that is a real failure too.
                    if failures == 3 {
                      ledger.thrown.update { $0.append(index) }
                      throw ChildError(id: index)
                    }
                    throw error
                  }
                  if failures >= 2 {
                    ledger.thrown.update { $0.append(index) }
                    throw ChildError(id: index)
                  }
                }
              }
            }
          }
          switch result {
          case .success:
            #expect(ledger.thrown.value.isEmpty, "\(context)")
          case .failure(let error as ErrorGroup):
            #expect(!error.contains(CancellationError.self), "\(context)")
            ledger.reported.set(error.errors(ofType: ChildError.self).map(\.id))
            #expect(error.errors.count == ledger.reported.value.count, "\(context)")
          case .failure(let error):
            Issue.record("unexpected error \(error) (\(context))")
          }
        }
        #expect(ledger.live.value == 0, "a child outlived its scope (\(context))")
        #expect(ledger.reported.value.sorted() == ledger.thrown.value.sorted(), "errors reported ≠ thrown (\(context))")
        #expect(ledger.violations.all.isEmpty, "\(ledger.violations.all) (\(context))")
      }
    }
  }
}

extension Result where Failure == any Error {
  fileprivate init(catching body: () async throws -> Success) async {
    do { self = .success(try await body()) } catch { self = .failure(error) }
  }
}
