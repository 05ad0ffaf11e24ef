@testable import AsyncToolsServer
import AsyncToolsTesting
import Synchronization
import Testing
import UnixSignals

/// The two-phase shutdown and the restart window, in virtual time (threads mode): exact instants.
@Suite("startServer timeouts, in virtual time")
struct ServerShutdownTimingTests {
  /// A worker whose tear-down takes `teardown` on `clock` (cancellable), recording how it ended.
  private func slowTeardownWorker(
    _ clock: VirtualClock, teardown: Duration, probe: Probe
  ) -> @Sendable (WorkerContext) async throws -> Void {
    { context in
      _ = await context.stopSignal()
      do {
        try await clock.sleep(for: teardown)
        probe.record("tear-down finished at \(clock.now.offset)")
      } catch {
        probe.record("tear-down cancelled at \(clock.now.offset)")
        throw error
      }
    }
  }

  private func stopAfterOneSecond(
    _ server: ServerMain, _ clock: VirtualClock, _ probe: Probe, workers: Int
  ) async throws -> ServerExit {
    async let exit = server.runWorkers()
    await probe.wait { $0.filter { $0.hasSuffix("is ready") }.count == workers }
    try await clock.sleep(for: .seconds(1))
    server.signal(.sigterm)
    return try await exit
  }

  @Test func aTearDownWithinTheTimeoutsEndsCleanly() async throws {
    try await withVirtualTime { clock in
      let probe = Probe()
      var configuration = threadsConfiguration(workers: 2, logTo: probe)
      configuration.gracefulShutdownTimeout = .seconds(5)
      configuration.waitTimeout = .seconds(10)
      let exit = try await startServer(
        configuration: configuration, clock: clock, worker: slowTeardownWorker(clock, teardown: .seconds(2), probe: probe)
      ) { try await stopAfterOneSecond($0, clock, probe, workers: 2) }
      #expect(exit == .stopped(.sigterm))
      #expect(clock.now.offset == .seconds(3))
      #expect(probe.count("tear-down finished at 3.0 seconds") == 2)
    }
  }

  @Test func theGracefulShutdownTimeoutCancelsSlowWorkers() async throws {
    try await withVirtualTime { clock in
      let probe = Probe()
      var configuration = threadsConfiguration(workers: 2, logTo: probe)
      configuration.gracefulShutdownTimeout = .seconds(5)
      let exit = try await startServer(
        configuration: configuration, clock: clock,
        worker: slowTeardownWorker(clock, teardown: .seconds(100), probe: probe)
      ) { try await stopAfterOneSecond($0, clock, probe, workers: 2) }
      // Phase two is part of a normal stop: cancelled workers ended as asked.
      #expect(exit == .stopped(.sigterm))
      #expect(clock.now.offset == .seconds(6))
      #expect(probe.count("tear-down cancelled at 6.0 seconds") == 2)
    }
  }

  @Test func theWaitTimeoutForcesTheStop() async throws {
    try await withVirtualTime { clock in
      let probe = Probe()
      var configuration = threadsConfiguration(workers: 1, logTo: probe)
      configuration.waitTimeout = .seconds(3)
      let exit = try await startServer(
        configuration: configuration, clock: clock,
        worker: slowTeardownWorker(clock, teardown: .seconds(100), probe: probe)
      ) { try await stopAfterOneSecond($0, clock, probe, workers: 1) }
      #expect(exit == .forceStopped(.sigterm))
      #expect(clock.now.offset == .seconds(4))
      #expect(probe.events.contains("log: killing worker 0: it outlived the wait timeout"))
    }
  }

  @Test func aWorkerIgnoringCancellationIsAbandonedAfterTheKillGrace() async throws {
    try await withVirtualTime { clock in
      let probe = Probe()
      let release = Probe()
      var configuration = threadsConfiguration(workers: 1, logTo: probe)
      configuration.waitTimeout = .seconds(3)
      let exit = try await startServer(configuration: configuration, clock: clock) { context in
        _ = await context.stopSignal()
        await release.wait(for: 1, "go")  // ignores cancellation
        probe.record("worker finally ended")
      } main: { try await stopAfterOneSecond($0, clock, probe, workers: 1) }
      #expect(exit == .forceStopped(.sigterm))
      #expect(clock.now.offset == .seconds(4) + ServerState.killGrace)
      #expect(probe.events.contains("log: worker 0 ignores its cancellation: abandoned (the process must exit to end it)"))
      #expect(!probe.events.contains("worker finally ended"))
      release.record("go")
      await probe.wait(for: 1, "worker finally ended")
    }
  }

  @Test func restartsSpreadWiderThanTheWindowAreAllowed() async throws {
    try await withVirtualTime { clock in
      let probe = Probe()
      let attempts = Atomic<Int>(0)
      var configuration = threadsConfiguration(workers: 1, logTo: probe)
      configuration.onWorkerFailure = .restart(maxRestarts: 2, within: .seconds(10))
      struct Crash: Error {}
      let exit = try await startServer(configuration: configuration, clock: clock) { context in
        // The first four runs fail 6 s after they start: never more than 2 restarts in 10 s.
        if attempts.add(1, ordering: .relaxed).newValue <= 4 {
          try await clock.sleep(for: .seconds(6))
          throw Crash()
        }
        _ = await context.stopSignal()
      } main: { server in
        async let exit = server.runWorkers()
        await probe.wait { $0.contains("log: worker 0 is ready") }
        server.signal(.sigint)
        return try await exit
      }
      #expect(exit == .stopped(.sigint))
      #expect(attempts.load(ordering: .relaxed) == 5)
      #expect(clock.now.offset == .seconds(24))
    }
  }

  @Test func restartsCrowdedIntoTheWindowStopTheServer() async throws {
    try await withVirtualTime { clock in
      let attempts = Atomic<Int>(0)
      var configuration = threadsConfiguration(workers: 1)
      configuration.onWorkerFailure = .restart(maxRestarts: 2, within: .seconds(10))
      struct Crash: Error {}
      let exit = try await startServer(configuration: configuration, clock: clock) { _ in
        attempts.add(1, ordering: .relaxed)
        try await clock.sleep(for: .seconds(4))
        throw Crash()
      }
      guard case .workerFailed(.startupFailed(index: 0, _)) = exit else {
        Issue.record("expected the third failure to stop the server, got \(exit)")
        return
      }
      // Failures at 4, 8 and 12 s: the third comes with two restarts (at 4 and 8) in the window.
      #expect(attempts.load(ordering: .relaxed) == 3)
      #expect(clock.now.offset == .seconds(12))
    }
  }
}
