import AsyncTools
import AsyncToolsServer
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import UnixSignals

/// `startServer` in threads mode: the whole lifecycle in-process, stopped through
/// `ServerMain.signal` (the process-level signal tests are in `StartServerProcessTests`).
@Suite("startServer, threads mode")
struct StartServerThreadsTests {
  struct SetupFailed: Error {}

  @Test func stopSignalReachesEveryWorkerAndTheServerReportsIt() async throws {
    let probe = Probe()
    let exit = try await withWatchdog {
      try await startServer(configuration: threadsConfiguration(workers: 3, logTo: probe)) { context in
        #expect(WorkerContext.current?.processIndex == context.processIndex)
        #expect(WorkerContext.processIndex == context.processIndex)
        let signal = await context.stopSignal()
        probe.record("stopped \(context.processIndex) \(signal)")
      } main: { server in
        async let exit = server.runWorkers()
        await probe.waitForReadyWorkers(3)
        server.signal(.sigterm)
        return try await exit
      }
    }
    #expect(exit == .stopped(.sigterm))
    #expect(exit.exitCode == 0)
    #expect(Set(probe.events.filter { $0.hasPrefix("stopped") }) == ["stopped 0 SIGTERM", "stopped 1 SIGTERM", "stopped 2 SIGTERM"])
  }

  @Test func mainContextWrapsTheWorkersAndPassesItsArguments() async throws {
    let probe = Probe()
    var configuration = threadsConfiguration(workers: 2)
    configuration.arguments = ["--extra"]
    configuration.runToCompletion = true
    let exit = try await withWatchdog { [configuration] in
      try await startServer(configuration: configuration) { context in
        probe.record("worker \(context.arguments)")
        _ = await context.stopSignal()
      } main: { server in
        probe.record("enter")
        let exit = try await server.runWorkers(arguments: ["--db", "x"])
        probe.record("exit \(exit)")
        return exit
      }
    }
    #expect(exit == .completed)
    let events = probe.events
    #expect(events.first == "enter")
    #expect(events.last == "exit all workers completed")
    #expect(events.filter { $0 == #"worker ["--db", "x", "--extra"]"# }.count == 2)
  }

  @Test func runToCompletionHandsTheDefaultStopSignalToEveryWorker() async throws {
    let probe = Probe()
    var configuration = threadsConfiguration(workers: 2)
    configuration.runToCompletion = true
    configuration.stopSignals = [.sigint, .sigusr1]
    let exit = try await withWatchdog { [configuration] in
      try await startServer(configuration: configuration) { context in
        probe.record("stopped \(await context.stopSignal())")
      }
    }
    #expect(exit == .completed)
    #expect(probe.events == ["stopped SIGINT", "stopped SIGINT"])
  }

  @Test func aStopSignalDuringStartupInterruptsTheStartup() async throws {
    let probe = Probe()
    let exit = try await withWatchdog {
      try await startServer(configuration: threadsConfiguration(workers: 1)) { context in
        probe.record("starting")
        do {
          try await Task.sleep(for: .seconds(3600))  // a start-up that would never end by itself
        } catch {
          probe.record("start-up interrupted")
          throw error
        }
        _ = await context.stopSignal()
      } main: { server in
        async let exit = server.runWorkers()
        await probe.wait(for: 1, "starting")
        server.signal(.sigint)
        return try await exit
      }
    }
    #expect(exit == .stopped(.sigint))
    #expect(probe.events == ["starting", "start-up interrupted"])
  }

  @Test func aWorkerFailingDuringStartupStopsTheServerWhileOthersAreStillStarting() async throws {
    let probe = Probe()
    let exit = try await withWatchdog {
      try await startServer(configuration: threadsConfiguration(workers: 3)) { context in
        switch context.processIndex {
        case 0:
          _ = await context.stopSignal()
          probe.record("worker 0 stopped")
        case 1:
          await probe.wait(for: 1, "worker 2 starting")
          throw SetupFailed()
        default:
          probe.record("worker 2 starting")
          try await Task.sleep(for: .seconds(3600))  // still starting when worker 1 fails
        }
      }
    }
    guard case .workerFailed(.startupFailed(index: 1, _)) = exit else {
      Issue.record("expected worker 1's start-up failure, got \(exit)")
      return
    }
    #expect(exit.exitCode == 1)
    #expect(probe.events.contains("worker 0 stopped"))
  }

  @Test func aWorkerFailingDuringShutdownIsReported() async throws {
    let probe = Probe()
    let exit = try await withWatchdog {
      try await startServer(configuration: threadsConfiguration(workers: 2, logTo: probe)) { context in
        _ = await context.stopSignal()
        if context.processIndex == 1 { throw SetupFailed() }
      } main: { server in
        async let exit = server.runWorkers()
        await probe.wait { $0.filter { $0.hasPrefix("log: worker") && $0.hasSuffix("is ready") }.count == 2 }
        server.signal(.sigterm)
        return try await exit
      }
    }
    guard case .workerFailed(.shutdownFailed(index: 1, _)) = exit else {
      Issue.record("expected worker 1's shutdown failure, got \(exit)")
      return
    }
  }

  @Test func theServerStopsByItselfWhenEveryWorkerHasEnded() async throws {
    let exit = try await withWatchdog {
      try await startServer(configuration: threadsConfiguration(workers: 3)) { _ in }
    }
    #expect(exit == .completed)
  }

  @Test func theIgnorePolicyKeepsTheOtherWorkersRunning() async throws {
    let probe = Probe()
    var configuration = threadsConfiguration(workers: 2, logTo: probe)
    configuration.onWorkerFailure = .ignore
    let exit = try await withWatchdog { [configuration] in
      try await startServer(configuration: configuration) { context in
        if context.processIndex == 0 { throw SetupFailed() }
        probe.record("stopped \(await context.stopSignal())")
      } main: { server in
        async let exit = server.runWorkers()
        await probe.wait { events in
          events.contains("log: ignoring the failure of worker 0") && events.contains("log: worker 1 is ready")
        }
        server.signal(.sigint)
        return try await exit
      }
    }
    #expect(exit == .stopped(.sigint))
    #expect(probe.events.contains("stopped SIGINT"))
  }

  @Test func aFailedWorkerIsRestartedWithTheSameIndex() async throws {
    let probe = Probe()
    let attempts = Atomic<Int>(0)
    var configuration = threadsConfiguration(workers: 1, logTo: probe)
    configuration.onWorkerFailure = .restart(maxRestarts: 3, within: .seconds(60))
    let exit = try await withWatchdog { [configuration] in
      try await startServer(configuration: configuration) { context in
        if attempts.add(1, ordering: .relaxed).newValue == 1 { throw SetupFailed() }
        probe.record("started \(context.processIndex)")
        _ = await context.stopSignal()
      } main: { server in
        async let exit = server.runWorkers()
        await probe.waitForReadyWorkers(1)
        server.signal(.sigterm)
        return try await exit
      }
    }
    #expect(exit == .stopped(.sigterm))
    #expect(attempts.load(ordering: .relaxed) == 2)
    #expect(probe.testEvents == ["started 0"])
  }

  @Test func tooManyRestartsStopTheServer() async throws {
    let attempts = Atomic<Int>(0)
    var configuration = threadsConfiguration(workers: 1)
    configuration.onWorkerFailure = .restart(maxRestarts: 2, within: .seconds(60))
    let exit = try await withWatchdog { [configuration] in
      try await startServer(configuration: configuration) { _ in
        attempts.add(1, ordering: .relaxed)
        throw SetupFailed()
      }
    }
    guard case .workerFailed(.startupFailed(index: 0, _)) = exit else {
      Issue.record("expected a start-up failure, got \(exit)")
      return
    }
    #expect(attempts.load(ordering: .relaxed) == 3)  // the first run and two restarts
  }

  @Test func aSecondStopSignalForcesTheStop() async throws {
    let probe = Probe()
    let exit = try await withWatchdog {
      try await startServer(configuration: threadsConfiguration(workers: 1, logTo: probe)) { context in
        probe.record("started")
        _ = await context.stopSignal()
        probe.record("tearing down")
        do {
          try await Task.sleep(for: .seconds(3600))  // a tear-down that would never end by itself
        } catch {
          probe.record("tear-down cancelled")
        }
      } main: { server in
        async let exit = server.runWorkers()
        await probe.waitForReadyWorkers(1)
        server.signal(.sigint)
        await probe.wait(for: 1, "tearing down")
        server.signal(.sigint)
        return try await exit
      }
    }
    #expect(exit == .forceStopped(.sigint))
    #expect(exit.exitCode == 2)
    #expect(probe.testEvents == ["started", "tearing down", "tear-down cancelled"])
  }

  @Test func cancellingTheCallerStopsTheServer() async throws {
    let probe = Probe()
    let server = Task {
      try await startServer(configuration: threadsConfiguration(workers: 2, logTo: probe)) { context in
        probe.record("stopped \(await context.stopSignal())")
      }
    }
    try await withWatchdog {
      await probe.waitForReadyWorkers(2)
      server.cancel()
      let exit = try await server.value
      #expect(exit == .stopped(.sigterm))
      #expect(probe.count("stopped SIGTERM") == 2)
    }
  }

  @Test func runWorkersTwiceThrowsAlreadyEntered() async throws {
    var configuration = threadsConfiguration(workers: 1)
    configuration.runToCompletion = true
    let error = try await withWatchdog { [configuration] in
      try await startServer(configuration: configuration) { context in
        _ = await context.stopSignal()
      } main: { server in
        let exit = try await server.runWorkers()
        let error = await #expect(throws: AsyncToolsError.self) { try await server.runWorkers() }
        #expect(error?.code == .alreadyEntered)
        return exit
      }
    }
    #expect(error == .completed)
  }

  @Test func extraProcessesRunBesideTheWorkersWithTheFollowingIndices() async throws {
    let probe = Probe()
    let exit = try await withWatchdog {
      let extra: @Sendable (WorkerContext) async throws -> Void = { context in
        probe.record("extra \(context.processIndex) stopped by \(await context.stopSignal())")
      }
      return try await startServer(
        configuration: threadsConfiguration(workers: 2, logTo: probe),
        worker: { context in probe.record("worker \(context.processIndex) stopped by \(await context.stopSignal())") },
        extraProcesses: [extra, extra]
      ) { server in
        async let exit = server.runWorkers()
        await probe.wait { $0.filter { $0.hasSuffix("is ready") }.count == 4 }
        server.signal(.sigint)
        return try await exit
      }
    }
    #expect(exit == .stopped(.sigint))
    let stops = Set(probe.events.filter { !$0.hasPrefix("log: ") })
    #expect(stops == ["worker 0 stopped by SIGINT", "worker 1 stopped by SIGINT", "extra 2 stopped by SIGINT", "extra 3 stopped by SIGINT"])
  }

  @Test func theRestartSignalReplacesWorkersOneAtATimeFreshFirst() async throws {
    let probe = Probe()
    let generation = Atomic<Int>(0)
    let exit = try await withWatchdog {
      try await startServer(configuration: threadsConfiguration(workers: 2, logTo: probe)) { context in
        let mine = generation.add(1, ordering: .relaxed).newValue
        probe.record("started \(context.processIndex) #\(mine)")
        probe.record("stopped #\(mine) by \(await context.stopSignal())")
      } main: { server in
        async let exit = server.runWorkers()
        await probe.wait { $0.filter { $0.hasSuffix("is ready") }.count == 2 }
        server.signal(.sighup)
        await probe.wait { $0.contains("log: rolling restart done") }
        server.signal(.sigint)
        return try await exit
      }
    }
    #expect(exit == .stopped(.sigint))
    let events = probe.events.filter { !$0.hasPrefix("log: worker") || $0.hasSuffix("is ready") }
    // Each old worker is stopped only after its replacement is ready, one at a time.
    for index in 0..<2 {
      let readies = events.indices.filter { events[$0] == "log: worker \(index) is ready" }
      let stopping = try #require(events.firstIndex(of: "log: rolling restart: stopping the old worker \(index)"))
      #expect(readies.count == 2 && readies[1] < stopping, "\(events)")
    }
    #expect(probe.count("stopped") == 4)
    #expect(probe.events.filter { $0.hasPrefix("stopped") && $0.hasSuffix("SIGTERM") }.count == 2)  // the old ones
    #expect(probe.events.filter { $0.hasPrefix("stopped") && $0.hasSuffix("SIGINT") }.count == 2)  // the fresh ones
  }

  @Test func aRestartSignalDuringARestartIsQueuedAndRunsAfterIt() async throws {
    let probe = Probe()
    let generation = Atomic<Int>(0)
    let exit = try await withWatchdog {
      try await startServer(configuration: threadsConfiguration(workers: 1, logTo: probe)) { context in
        let mine = generation.add(1, ordering: .relaxed).newValue
        probe.record("started #\(mine)")
        _ = await context.stopSignal()
      } main: { server in
        async let exit = server.runWorkers()
        await probe.wait { $0.contains("log: worker 0 is ready") }
        server.signal(.sighup)
        server.signal(.sighup)
        await probe.wait { $0.filter { $0 == "log: rolling restart done" }.count == 2 }
        server.signal(.sigint)
        return try await exit
      }
    }
    #expect(exit == .stopped(.sigint))
    #expect(probe.events.contains("log: SIGHUP during a rolling restart: queued, another restart follows this one"))
    #expect(probe.count("started #") == 3, "the first worker and one per restart")
  }

  @Test func theRestartSignalMustNotBeAStopSignal() async {
    var configuration = threadsConfiguration(workers: 1)
    configuration.restartSignal = .sigterm
    let error = await #expect(throws: AsyncToolsError.self) {
      _ = try await startServer(configuration: configuration) { _ in }
    }
    #expect(error?.code == .invalidArgument)
  }

  @Test func aStopAfterMarkReadyReachesAStopWaitThatStartsLater() async throws {
    // The worker marks itself ready, then only reaches stopSignal() once the stop was sent: the stop
    // must wait for it there, not cancel the worker as a stop during start-up. (Without markReady()
    // the worker would never count as ready, and the watchdog would fail the test.)
    let probe = Probe()
    let gate = Probe()
    let exit = try await withWatchdog {
      try await startServer(configuration: threadsConfiguration(workers: 1, logTo: probe)) { context in
        context.markReady()
        context.markReady()  // again: nothing more
        await gate.wait(for: 1, "go")
        let signal = await context.stopSignal()
        probe.record("stopped by \(signal), cancelled=\(Task.isCancelled)")
      } main: { server in
        async let exit = server.runWorkers()
        await probe.waitForReadyWorkers(1)
        server.signal(.sigterm)
        await probe.wait { $0.contains { $0.hasPrefix("log: stopping 1 worker(s)") } }
        gate.record("go")
        return try await exit
      }
    }
    #expect(exit == .stopped(.sigterm))
    #expect(probe.testEvents == ["stopped by SIGTERM, cancelled=false"])
    #expect(probe.count("log: worker 0 is ready") == 1)
  }

  @Test func theProcessIndexIsATaskLocalOfEachWorker() async throws {
    let probe = Probe()
    var configuration = threadsConfiguration(workers: 4)
    configuration.runToCompletion = true
    _ = try await withWatchdog { [configuration] in
      try await startServer(configuration: configuration) { context in
        // Child tasks inherit it, as they inherit any task-local.
        let inherited = await Task { WorkerContext.processIndex }.value
        probe.record("\(context.processIndex)=\(inherited ?? -1)")
      }
    }
    #expect(Set(probe.events) == ["0=0", "1=1", "2=2", "3=3"])
    #expect(WorkerContext.processIndex == nil)
  }
}

/// A worker running a swift-service-lifecycle `ServiceGroup`.
@Suite("WorkerContext.runServiceGroup")
struct WorkerServiceGroupTests {
  struct RecordingService: Service {
    let probe: Probe
    func run() async throws {
      probe.record("service running")
      try await gracefulShutdown()
      probe.record("service shut down gracefully")
    }
  }

  @Test func theServerStopTriggersTheGroupsGracefulShutdown() async throws {
    let probe = Probe()
    let exit = try await withWatchdog {
      try await startServer(configuration: threadsConfiguration(workers: 2)) { context in
        let group = ServiceGroup(
          configuration: .init(services: [RecordingService(probe: probe)], logger: Logger(label: "test") { _ in
            SwiftLogNoOpLogHandler()
          }))
        try await context.runServiceGroup(group)
      } main: { server in
        async let exit = server.runWorkers()
        await probe.wait(for: 2, "service running")
        server.signal(.sigterm)
        return try await exit
      }
    }
    #expect(exit == .stopped(.sigterm))
    #expect(probe.count("service shut down gracefully") == 2)
  }

  struct FailingService: Service {
    struct Failure: Error {}
    func run() async throws { throw Failure() }
  }

  @Test func aFailingGroupFailsTheWorker() async throws {
    let exit = try await withWatchdog {
      try await startServer(configuration: threadsConfiguration(workers: 1)) { context in
        let group = ServiceGroup(
          configuration: .init(services: [FailingService()], logger: Logger(label: "test") { _ in
            SwiftLogNoOpLogHandler()
          }))
        try await context.runServiceGroup(group)
      }
    }
    guard case .workerFailed(.shutdownFailed(index: 0, _)) = exit else {
      Issue.record("expected the group's failure to fail the worker, got \(exit)")
      return
    }
  }
}
