@testable import AsyncToolsServer
import MetricsTestKit
import Synchronization
import Testing

/// `ServerConfiguration.metrics`: the main process's worker starts, exits by cause, restarts by
/// reason and stop duration, recorded in a `TestMetrics` (threads mode, in-process; the process-mode
/// test with a real SIGKILL is in `StartServerProcessTests`).
@Suite("server metrics")
struct ServerMetricsTests {
  struct SetupFailed: Error {}

  private static let server = [("server", "api")]

  private func counter(_ metrics: TestMetrics, _ label: String, _ extra: [(String, String)] = []) throws -> Int64 {
    try metrics.expectCounter(label, Self.server + extra).totalValue
  }

  /// One failed start-up restarted by the policy, one rolling restart of both workers, then SIGTERM.
  @Test func startsExitsRestartsAndTheStopAreCounted() async throws {
    let metrics = TestMetrics()
    let probe = Probe()
    let attempts = Atomic<Int>(0)
    var configuration = threadsConfiguration(workers: 2, logTo: probe)
    configuration.onWorkerFailure = .restart(maxRestarts: 3, within: .seconds(60))
    configuration.metrics = .init(name: "api", factory: metrics)
    let exit = try await withWatchdog { [configuration] in
      try await startServer(configuration: configuration) { context in
        if context.processIndex == 0, attempts.add(1, ordering: .relaxed).newValue == 1 { throw SetupFailed() }
        _ = await context.stopSignal()
      } main: { server in
        async let exit = server.runWorkers()
        await probe.wait { $0.filter { $0.hasSuffix("is ready") }.count == 2 }
        server.signal(.sighup)
        await probe.wait { $0.contains("log: rolling restart done") }
        server.signal(.sigterm)
        return try await exit
      }
    }
    #expect(exit == .stopped(.sigterm))
    // 2 first runs, 1 restart after the failure, 2 fresh workers of the rolling restart.
    #expect(try counter(metrics, "asynctools_server_worker_starts_total") == 5)
    #expect(try counter(metrics, "asynctools_server_worker_restarts_total", [("reason", "failure")]) == 1)
    #expect(try counter(metrics, "asynctools_server_worker_restarts_total", [("reason", "rolling")]) == 2)
    #expect(try counter(metrics, "asynctools_server_worker_exits_total", [("cause", "failure")]) == 1)
    // The 2 old workers the rolling restart stopped, and the 2 the SIGTERM stopped.
    #expect(try counter(metrics, "asynctools_server_worker_exits_total", [("cause", "clean")]) == 4)
    #expect(try counter(metrics, "asynctools_server_worker_exits_total", [("cause", "forced")]) == 0)
    #expect(try counter(metrics, "asynctools_server_worker_exits_total", [("cause", "signal")]) == 0)
    #expect(try counter(metrics, "asynctools_server_worker_launch_failures_total") == 0)
    let stop = try metrics.expectTimer("asynctools_server_stop_duration", Self.server)
    #expect(stop.values.count == 1)
    #expect(stop.values.allSatisfy { $0 >= 0 })
  }

  /// A worker whose tear-down never ends is killed by a second stop signal: a forced exit.
  @Test func aWorkerKilledByTheServerIsAForcedExit() async throws {
    let metrics = TestMetrics()
    let probe = Probe()
    var configuration = threadsConfiguration(workers: 2, logTo: probe)
    configuration.metrics = .init(name: "api", factory: metrics)
    let exit = try await withWatchdog { [configuration] in
      try await startServer(configuration: configuration) { context in
        _ = await context.stopSignal()
        guard context.processIndex == 1 else { return }
        probe.record("tearing down")
        try await Task.sleep(for: .seconds(3600))  // a tear-down that would never end by itself
      } main: { server in
        async let exit = server.runWorkers()
        await probe.waitForReadyWorkers(2)
        server.signal(.sigint)
        await probe.wait(for: 1, "tearing down")
        server.signal(.sigint)
        return try await exit
      }
    }
    #expect(exit == .forceStopped(.sigint))
    #expect(try counter(metrics, "asynctools_server_worker_starts_total") == 2)
    #expect(try counter(metrics, "asynctools_server_worker_exits_total", [("cause", "clean")]) == 1)
    #expect(try counter(metrics, "asynctools_server_worker_exits_total", [("cause", "forced")]) == 1)
    #expect(try metrics.expectTimer("asynctools_server_stop_duration", Self.server).values.count == 1)
  }

  /// A server that ends by itself (every worker returned) did not stop: no stop duration.
  @Test func aServerThatCompletesRecordsNoStopDuration() async throws {
    let metrics = TestMetrics()
    var configuration = threadsConfiguration(workers: 2)
    configuration.runToCompletion = true
    configuration.metrics = .init(name: "api", factory: metrics)
    let exit = try await withWatchdog { [configuration] in
      try await startServer(configuration: configuration) { context in _ = await context.stopSignal() }
    }
    #expect(exit == .completed)
    #expect(try counter(metrics, "asynctools_server_worker_starts_total") == 2)
    #expect(try counter(metrics, "asynctools_server_worker_exits_total", [("cause", "clean")]) == 2)
    #expect(try metrics.expectTimer("asynctools_server_stop_duration", Self.server).values.isEmpty)
  }
}

/// `ServerMetrics` fed events and actions directly, for the transitions a real server reaches only
/// through a failed launch or a binary upgrade.
@Suite("ServerMetrics, event by event")
struct ServerMetricsUnitTests {
  @Test func aLaunchFailureIsCountedAndNotAStart() throws {
    let metrics = TestMetrics()
    var server = ServerMetrics(.init(name: "api", factory: metrics))
    server.observe(.start, [.launch(slot: 0, index: 0)], now: .zero)
    server.observe(.launchFailed(slot: 0, message: "no exe"), [], now: .zero)
    server.observe(.exited(slot: 0, .clean), [], now: .zero)  // no exit for a worker that never ran
    let api = [("server", "api")]
    #expect(try metrics.expectCounter("asynctools_server_worker_launch_failures_total", api).totalValue == 1)
    #expect(try metrics.expectCounter("asynctools_server_worker_starts_total", api).totalValue == 0)
    #expect(try metrics.expectCounter("asynctools_server_worker_exits_total", api + [("cause", "clean")]).totalValue == 0)
  }

  /// A hand-over to the new main process of a binary upgrade keeps the socket listening (no
  /// `.stopListening`): the stop still begins there.
  @Test func theStopDurationOfAHandOverStartsAtTheHandOver() throws {
    let metrics = TestMetrics()
    var server = ServerMetrics(.init(name: "api", factory: metrics))
    server.observe(.start, [.launch(slot: 0, index: 0)], now: .zero)
    server.observe(.launched(slot: 0), [], now: .zero)
    server.observe(
      .upgradeReady, [.lifecycle(.handedOver(newMainProcess: 42)), .stop(slot: 0, .sigterm)], now: .seconds(1))
    server.observe(.exited(slot: 0, .clean), [.finish(.stopped(.sigterm))], now: .seconds(3))
    #expect(try metrics.expectTimer("asynctools_server_stop_duration", [("server", "api")]).values == [2_000_000_000])
  }
}
