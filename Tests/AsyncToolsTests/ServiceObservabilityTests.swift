import AsyncTools
import AsyncToolsServiceLifecycle
import AsyncToolsTesting
import InMemoryLogging
import Logging
import MetricsTestKit
import ServiceLifecycle
import Testing

private struct Boom: Error {}

/// `SupervisorService` and `TimerService` take a `Logger` and a `MetricsConfiguration` and pass them
/// to the supervisor and the timer they run: the caller's metadata on every line, the same metrics as
/// `withSupervisor` and `withTimer`.
@Suite("Services pass their logger and metrics through")
struct ServiceObservabilityTests {
  private static let groupLogger = Logger(label: "ServiceObservabilityTests") { _ in SwiftLogNoOpLogHandler() }

  private func requestLogger() -> (Logger, InMemoryLogHandler) {
    let handler = InMemoryLogHandler()
    var logger = Logger(label: "test", factory: { _ in handler })
    logger[metadataKey: "request"] = "r-42"
    return (logger, handler)
  }

  /// A child failing three times with two restarts allowed: each failure logged to the given logger
  /// with its metadata, two restarts and the give-up counted.
  @Test func supervisorServiceLogsToTheGivenLoggerAndCountsRestarts() async throws {
    let (logger, handler) = requestLogger()
    let metrics = TestMetrics()
    try await withVirtualTime { clock in
      let service = try SupervisorService(
        intensity: RestartIntensity(maxRestarts: 2, within: .seconds(3600)), backoff: .none, clock: clock,
        logger: logger, metrics: .init(name: "workers", factory: metrics)
      ) { supervisor in
        supervisor.addChild(name: "flaky", restart: .onFailure) { throw Boom() }
      }
      await #expect(throws: SupervisorError.self) { try await service.run() }
    }
    let entries = handler.entries
    #expect(entries.count == 3)
    #expect(entries.allSatisfy { $0.level == .error && $0.metadata["request"] == "r-42" })
    #expect(entries.map { $0.metadata["child"] } == ["flaky", "flaky", "flaky"])
    let flaky = [("supervisor", "workers"), ("child", "flaky")]
    #expect(try metrics.expectCounter("asynctools_supervisor_restarts_total", flaky).totalValue == 2)
    #expect(try metrics.expectCounter("asynctools_supervisor_give_ups_total", flaky).totalValue == 1)
  }

  @Test func anExplicitErrorHandlerWinsOverTheLogger() async throws {
    let (logger, handler) = requestLogger()
    let seen = TimerFixtures.Log<String>()
    try await withVirtualTime { clock in
      let service = try SupervisorService(
        intensity: RestartIntensity(maxRestarts: 1, within: .seconds(3600)), backoff: .none, clock: clock,
        errorHandler: { _, child in seen.append(child) }, logger: logger
      ) { supervisor in
        supervisor.addChild(name: "flaky", restart: .onFailure) { throw Boom() }
      }
      await #expect(throws: SupervisorError.self) { try await service.run() }
    }
    #expect(seen.all == ["flaky", "flaky"])
    #expect(handler.entries.isEmpty)
  }

  /// Ticks at 0, 1 and 2 s fail: logged to the given logger (no `onError`), counted as ticks.
  @Test(arguments: [TimerService<VirtualClock>.ShutdownBehavior.cancelRunningTick, .finishRunningTick])
  func timerServiceLogsToTheGivenLoggerAndCountsTicks(behavior: TimerService<VirtualClock>.ShutdownBehavior)
    async throws
  {
    let (logger, handler) = requestLogger()
    let metrics = TestMetrics()
    try await withVirtualTime { clock in
      let service = try TimerService(
        every: .seconds(1), clock: clock, onGracefulShutdown: behavior, logger: logger,
        metrics: .init(name: "heartbeat", factory: metrics)
      ) { _ in throw Boom() }
      let serviceGroup = ServiceGroup(configuration: .init(services: [service], logger: Self.groupLogger))
      let run = Task { try await serviceGroup.run() }
      try await clock.sleep(for: .milliseconds(2_500))
      await serviceGroup.triggerGracefulShutdown()
      try await run.value
    }
    let entries = handler.entries
    #expect(entries.map { $0.metadata["tick"] } == ["0", "1", "2"])
    #expect(entries.allSatisfy { $0.level == .error && $0.metadata["request"] == "r-42" })
    #expect(try metrics.expectCounter("asynctools_timer_ticks_total", [("timer", "heartbeat")]).totalValue == 3)
    #expect(try metrics.expectTimer("asynctools_timer_tick_lateness", [("timer", "heartbeat")]).values == [0, 0, 0])
  }
}
