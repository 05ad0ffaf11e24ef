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
/// `startServer` returned, a failure is reported only for a worker that was made to fail, and
/// a server whose workers all behave stops exactly as asked.
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
      if case .workerFailed(let failure) = exit {
        let made = behaviours[failure.index]
        #expect(made == .failStartup || made == .failShutdown, "\(failure) was not injected — \(scenario)")
      }
      if behaviours.allSatisfy({ $0 == .normal }) {
        #expect(exit == .stopped(.sigterm), "\(scenario)")
      }
      if behaviours.allSatisfy({ $0 == .returnEarly }) {
        #expect(exit == .completed, "\(scenario)")
      }
    }
  }
}
