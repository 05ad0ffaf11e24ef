#if os(Linux)
import AsyncToolsTestSupport
import AsyncToolsTesting
import Glibc
import Testing

@testable import AsyncToolsProcess

/// A seeded random mix of children (exit codes, signals, deaths before readiness, both watching
/// modes) with several waiters each, some cancelled at random points.
///
/// Invariants: every waiter that was not cancelled gets the expected status; a cancelled waiter gets
/// `CancellationError` or (if the child won the race) the same status; every child is reaped exactly
/// once (no zombie, `send` is a no-op afterwards); nothing hangs (watchdog).
/// `ASYNCTOOLS_STRESS_ITERATIONS` scales the number of children; `ASYNCTOOLS_STRESS_SEED` replays a run.
@Suite struct ProcessStressTests {
  enum Scenario: Sendable {
    case externalExit(Int32)
    case externalSignal(Int32)
    case entryExit(Int32)
    case diesBeforeReady
  }

  struct Plan: Sendable {
    var scenario: Scenario
    var usePidfd: Bool
    var waiters: Int
    var cancelled: [Bool]
    var cancelAfterYields: [Int]
  }

  @Test func randomChildrenWaitersAndCancellationsKeepTheInvariants() async throws {
    let iterations = Stress.iterations(default: 24)
    let seed = Stress.seed()
    var random = SeededRandomNumberGenerator(seed: seed)
    let signals = [SIGTERM, SIGKILL, SIGINT, SIGHUP, SIGUSR1]
    let plans: [Plan] = (0..<iterations).map { _ in
      let scenario: Scenario
      switch Int.random(in: 0..<4, using: &random) {
      case 0: scenario = .externalExit(Int32.random(in: 0...255, using: &random))
      case 1: scenario = .externalSignal(signals.randomElement(using: &random)!)
      case 2: scenario = .entryExit(Int32.random(in: 0...255, using: &random))
      default: scenario = .diesBeforeReady
      }
      let waiters = Int.random(in: 1...5, using: &random)
      return Plan(
        scenario: scenario, usePidfd: Bool.random(using: &random), waiters: waiters,
        cancelled: (0..<waiters).map { _ in Int.random(in: 0..<3, using: &random) == 0 },
        cancelAfterYields: (0..<waiters).map { _ in Int.random(in: 0..<4, using: &random) })
    }

    try await withWatchdog(seconds: 120) {
      // A few children at a time, so the run stays light on a shared machine.
      for batch in stride(from: 0, to: plans.count, by: 8) {
        try await withThrowingTaskGroup(of: Void.self) { group in
          for (index, plan) in plans[batch..<min(batch + 8, plans.count)].enumerated() {
            group.addTask { try await Self.run(plan, label: "\(Stress.replay(seed: seed, iterations: iterations)), child \(batch + index)") }
          }
          try await group.waitForAll()
        }
      }
    }
  }

  static func run(_ plan: Plan, label: String) async throws {
    let options = ChildProcess.Options(usePidfd: plan.usePidfd)
    let child: ChildProcess
    let expected: ChildProcess.ExitStatus
    switch plan.scenario {
    case .externalExit(let code):
      child = try await ChildProcess.spawn(executable: "/bin/sh", arguments: ["-c", "exit \(code)"], options: options)
      expected = .exited(code)
    case .externalSignal(let signal):
      child = try await ChildProcess.spawn(executable: "/bin/sleep", arguments: ["100"], options: options)
      expected = .signaled(signal, coreDumped: false)
    case .entryExit(let code):
      child = try await startTestChild("exit", ["\(code)"], options: options)
      expected = .exited(code)
    case .diesBeforeReady:
      var environment = ChildProcess.inheritedEnvironment
      environment["ASYNCTOOLS_TEST_STARTUP_FAILURE"] = "kill"
      do {
        _ = try await startTestChild("exit", ["0"], environment: environment, options: options)
        Issue.record("\(label): a child killed before readiness was reported ready")
      } catch let error as ProcessError {
        #expect(error == .diedBeforeReady(.signaled(SIGKILL, coreDumped: false)), "\(label)")
      }
      return
    }

    typealias Outcome = (cancelled: Bool, result: Result<ChildProcess.ExitStatus, any Error>)
    let outcomes = try await withThrowingTaskGroup(of: Outcome.self) { group in
      for waiter in 0..<plan.waiters {
        let cancel = plan.cancelled[waiter]
        let yields = plan.cancelAfterYields[waiter]
        group.addTask {
          let task = Task { try await child.wait() }
          if cancel {
            for _ in 0..<yields { await Task.yield() }
            task.cancel()
          }
          return (cancel, await task.result)
        }
      }
      if case .externalSignal(let signal) = plan.scenario {
        #expect(try child.send(signal: signal), "\(label): the child must be alive to receive its signal")
      }
      return try await group.reduce(into: []) { $0.append($1) }
    }
    for (wasCancelled, outcome) in outcomes {
      switch outcome {
      case .success(let status):
        #expect(status == expected, "\(label)")
      case .failure(let error):
        #expect(wasCancelled && error is CancellationError, "\(label): unexpected \(error)")
      }
    }
    // Cancelled waiters do not stop the child; one more wait always gets the status.
    #expect(try await child.wait() == expected, "\(label)")
    #expect(child.exitStatus == expected, "\(label)")
    #expect(try child.send(signal: SIGKILL) == false, "\(label)")
    #expect(!isUnreapedChild(child.pid), "\(label): process \(child.pid) is a zombie")
  }
}
#endif
