import AsyncTools
import AsyncToolsServiceLifecycle
import AsyncToolsTesting
import Logging
import ServiceLifecycle
import Testing

/// The recipe of the testing guide for a `ServiceGroup` with signal handling under virtual time
/// (issue #13 item 5): arm virtual timers only once a service has started. The group registers its
/// signal sources on a Dispatch queue *before* it starts any service, so waiting for the first
/// service to start is waiting for the registration; while it is in flight no virtual timer is
/// pending, so time cannot jump past it.
@Suite struct ServiceGroupInVirtualTimeTests {
  private static let logger = Logger(label: "ServiceGroupInVirtualTimeTests")

  /// A service that reports when it starts and ticks on the default clock until shut down.
  struct Probe: Service {
    let started: AsyncStream<Void>.Continuation
    let log: TimerFixtures.Log<String>

    func run() async throws {
      log.append("started at \(DefaultClock().now)")
      started.yield()
      let timer = try PeriodicTimer.start(every: .seconds(60)) { tick in
        log.append("tick \(tick.number) at \(tick.scheduledAt)")
      }
      try? await gracefulShutdown()
      await timer.cancel()
      log.append("stopped at \(DefaultClock().now)")
    }
  }

  @Test func servicesStartAtZeroInEveryRun() async throws {
    var traces: [[String]: Int] = [:]
    for _ in 0..<200 {
      let log = TimerFixtures.Log<String>()
      try await withVirtualTime { clock in
        let (started, startedContinuation) = AsyncStream<Void>.makeStream()
        let group = ServiceGroup(
          configuration: .init(
            services: [Probe(started: startedContinuation, log: log)],
            gracefulShutdownSignals: [.sigterm], logger: Self.logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
          tasks.addTask { try await group.run() }
          // The recipe: wait for the service to start before arming a virtual timer.
          for await _ in started { break }
          try await clock.sleep(for: .seconds(600))
          await group.triggerGracefulShutdown()
          try await tasks.waitForAll()
        }
      }
      traces[log.all, default: 0] += 1
    }
    let expected =
      ["started at +0.0 seconds"] + (0...10).map { "tick \($0) at +\(60 * $0).0 seconds" }
      + ["stopped at +600.0 seconds"]
    #expect(traces == [expected: 200])
  }
}
