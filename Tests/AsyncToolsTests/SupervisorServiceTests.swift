import AsyncTools
import AsyncToolsServiceLifecycle
import AsyncToolsTesting
import Logging
import ServiceLifecycle
import Testing

/// `SupervisorService` (issue #16, item 6): a supervisor in a `ServiceGroup`, whose give-up ends the service at
/// once rather than when its body returns (3,600 s late in a user's test).
@Suite("SupervisorService")
struct SupervisorServiceTests {
  private static let logger = Logger(label: "SupervisorServiceTests")

  @Test func aGiveUpEndsTheServiceAtOnceWithTheSupervisorError() async throws {
    try await withVirtualTime { clock in
      let start = clock.now
      let sibling = ChildLog()
      let service = try SupervisorService(
        intensity: RestartIntensity(maxRestarts: 2, within: .seconds(3600)),
        backoff: Backoff(initial: .seconds(1), maximum: .seconds(1), multiplier: 1, jitter: 0),
        clock: clock, errorHandler: { _, _ in }
      ) { supervisor in
        supervisor.addChild(name: "crashing", restart: .onFailure) { throw ChildError(id: 1) }
        supervisor.addChild(name: "steady") {
          do { try await clock.sleep(for: .seconds(3600)) } catch { sibling.append("cancelled") }
        }
      }
      let serviceGroup = ServiceGroup(configuration: .init(services: [service], logger: Self.logger))
      let error = await #expect(throws: SupervisorError.self) { try await serviceGroup.run() }
      #expect(error?.child == "crashing")
      #expect(start.duration(to: clock.now) == .seconds(2), "fails at 0 s, restarts at 1 s and 2 s, gives up at 2 s")
      #expect(sibling.all == ["cancelled"])
    }
  }

  @Test func gracefulShutdownCancelsTheChildrenAndReturns() async throws {
    try await withVirtualTime { clock in
      let start = clock.now
      let runs = ChildCounter()
      let service = try SupervisorService(
        intensity: RestartIntensity(maxRestarts: 100, within: .seconds(3600)), backoff: .none, clock: clock
      ) { supervisor in
        supervisor.addChild(name: "ticker", restart: .always) {
          runs.increment()
          try await clock.sleep(for: .seconds(1))
        }
      }
      let serviceGroup = ServiceGroup(configuration: .init(services: [service], logger: Self.logger))
      let run = Task { try await serviceGroup.run() }
      try await clock.sleep(for: .milliseconds(2_500))
      await serviceGroup.triggerGracefulShutdown()
      try await run.value
      #expect(start.duration(to: clock.now) == .milliseconds(2_500))
      #expect(runs.value == 3)
    }
  }

  @Test func cancellationEndsRunWithoutAnError() async throws {
    try await withVirtualTime { clock in
      let started = ChildCounter()
      let service = try SupervisorService(clock: clock) { supervisor in
        supervisor.addChild { started.increment(); try await clock.sleep(for: .seconds(3600)) }
      }
      let run = Task { try await service.run() }
      await started.wait(until: 1)
      run.cancel()
      try await run.value
    }
  }

  @Test func invalidArgumentsAreRejectedUpFront() {
    let error = #expect(throws: AsyncToolsError.self) {
      _ = try SupervisorService(intensity: RestartIntensity(maxRestarts: -1, within: .seconds(1))) { _ in }
    }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains("maxRestarts") == true)
  }
}
