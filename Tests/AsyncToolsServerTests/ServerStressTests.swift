import AsyncToolsServer
import AsyncToolsTestSupport
import AsyncToolsTesting
import Synchronization
import Testing
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// Random workers (failing in start-up or shutdown, returning early, slow to start or to stop),
/// random policies, timeouts and stop times, in virtual time and threads mode. Invariants: the
/// server always ends (no hang), every worker body that started ended exactly once before
/// `startServer` returned, and the exit is the one `predict` derives from the scenario by the
/// server's rules (which failure, stopped or force-stopped, completed).
@Suite("startServer stress")
struct ServerStressTests {
  enum Behaviour: CaseIterable {
    case normal, failStartup, failShutdown, returnEarly, slowStartup, slowTeardown
  }

  static var iterations: Int { Stress.iterations(default: 200) }

  @Test func randomWorkersAlwaysEndAndAreAccountedFor() async throws {
    let seed = Stress.seed()
    var random = SeededRandomNumberGenerator(seed: seed)
    for iteration in 0..<Self.iterations {
      let workers = Int.random(in: 1...4, using: &random)
      let behaviours = (0..<workers).map { _ in Behaviour.allCases.randomElement(using: &random)! }
      let policyIgnores = Bool.random(using: &random)
      let stopAfter = Duration.milliseconds(Int.random(in: 1...3000, using: &random))
      let waitTimeout = Duration.seconds(Int.random(in: 1...5, using: &random))
      let graceful = Bool.random(using: &random) ? Duration.seconds(Int.random(in: 1...3, using: &random)) : nil
      let scenario = "seed \(seed) iteration \(iteration): \(behaviours), ignore \(policyIgnores), stop after \(stopAfter)"

      let outcome = try await withVirtualTime { clock in
        let started = Atomic<Int>(0)
        let ended = Atomic<Int>(0)
        var configuration = threadsConfiguration(workers: workers)
        configuration.onWorkerFailure = policyIgnores ? .ignore : .stopServer
        configuration.waitTimeout = waitTimeout
        configuration.gracefulShutdownTimeout = graceful
        struct Injected: Error {}
        let exit = try await startServer(configuration: configuration, clock: clock) { context in
          started.add(1, ordering: .relaxed)
          defer { ended.add(1, ordering: .relaxed) }
          switch behaviours[context.processIndex] {
          case .failStartup: throw Injected()
          case .returnEarly: return
          case .slowStartup: try await clock.sleep(for: .seconds(2))
          default: break
          }
          _ = await context.stopSignal()
          switch behaviours[context.processIndex] {
          case .failShutdown: throw Injected()
          case .slowTeardown: try await clock.sleep(for: .seconds(4))
          default: break
          }
        } main: { server in
          async let exit = server.runWorkers()
          try? await clock.sleep(for: stopAfter)
          server.signal(.sigterm)
          return try await exit
        }
        return (exit, started.load(ordering: .relaxed), ended.load(ordering: .relaxed))
      }
      let (exit, started, ended) = outcome
      #expect(started == workers, "\(scenario)")
      #expect(ended == started, "every worker body ends exactly once before startServer returns — \(scenario)")
      let expected = Self.predict(
        behaviours: behaviours, policyIgnores: policyIgnores, waitTimeout: waitTimeout, graceful: graceful)
      #expect(expected.admits(exit), "exit \(exit), predicted \(expected) — \(scenario) (\(Stress.replay(seed: seed, iterations: Self.iterations)))")
    }
  }

  /// What a scenario's `startServer` must return.
  enum Prediction: CustomStringConvertible {
    case completed
    case workerFailedInStartup(Set<Int>)
    case workerFailedInShutdown(Set<Int>)
    case stopped
    case forceStopped
    /// The last worker's end and the wait timeout fall on the same virtual instant: either order is right.
    case stoppedOrForceStopped

    func admits(_ exit: ServerExit) -> Bool {
      switch (self, exit) {
      case (.completed, .completed): true
      case (.workerFailedInStartup(let indices), .workerFailed(.startupFailed(let index, _))): indices.contains(index)
      case (.workerFailedInShutdown(let indices), .workerFailed(.shutdownFailed(let index, _))): indices.contains(index)
      case (.stopped, .stopped(.sigterm)), (.forceStopped, .forceStopped(.sigterm)): true
      case (.stoppedOrForceStopped, .stopped(.sigterm)), (.stoppedOrForceStopped, .forceStopped(.sigterm)): true
      default: false
      }
    }

    var description: String {
      switch self {
      case .completed: "completed"
      case .workerFailedInStartup(let indices): "start-up failure of one of \(indices.sorted())"
      case .workerFailedInShutdown(let indices): "shutdown failure of one of \(indices.sorted())"
      case .stopped: "stopped by SIGTERM"
      case .forceStopped: "force-stopped by SIGTERM"
      case .stoppedOrForceStopped: "stopped or force-stopped by SIGTERM"
      }
    }
  }

  /// The rules of `startServer`, applied to one scenario by hand (threads mode, virtual time):
  /// - `failStartup` and `returnEarly` end at 0 s; every other worker waits for the stop (a stop during `slowStartup`'s
  ///   2 s start-up cancels it), so it ends when the stop comes, except `slowTeardown`, 4 s later — or at the graceful
  ///   timeout, which cancels it, if that comes first.
  /// - Under `.stopServer` a start-up failure stops the server at 0 s and is the exit. Under `.ignore` it is the exit
  ///   only if every worker ended by itself; once SIGTERM stopped the server, only shutdown failures count.
  /// - With no failure and no stop, every worker returned early: `.completed`.
  /// - A failure during shutdown is the exit. Otherwise a worker still running at the wait timeout is killed:
  ///   `.forceStopped`; else `.stopped`.
  static func predict(
    behaviours: [Behaviour], policyIgnores: Bool, waitTimeout: Duration, graceful: Duration?
  ) -> Prediction {
    let startupFailures = Set(behaviours.indices.filter { behaviours[$0] == .failStartup })
    let shutdownFailures = Set(behaviours.indices.filter { behaviours[$0] == .failShutdown })
    let endsByItself = behaviours.allSatisfy { $0 == .failStartup || $0 == .returnEarly }
    if !startupFailures.isEmpty && (!policyIgnores || endsByItself) { return .workerFailedInStartup(startupFailures) }
    if endsByItself { return .completed }
    if !shutdownFailures.isEmpty { return .workerFailedInShutdown(shutdownFailures) }
    guard behaviours.contains(.slowTeardown) else { return .stopped }
    let teardown = min(.seconds(4), graceful ?? .seconds(4))
    if teardown == waitTimeout { return .stoppedOrForceStopped }
    return teardown > waitTimeout ? .forceStopped : .stopped
  }
}

