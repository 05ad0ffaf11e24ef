import AsyncTools
import AsyncToolsServiceLifecycle
import AsyncToolsTesting
import Logging
import ServiceLifecycle
import Testing

@Suite("TimerService")
struct TimerServiceTests {
  private static let logger = Logger(label: "TimerServiceTests")

  @Test func ticksWhileTheServiceGroupRunsAndStopsOnGracefulShutdown() async throws {
    let events = TimerFixtures.Log<String>()
    try await withVirtualTime { clock in
      let service = try TimerService(every: .ms(100), clock: clock) { tick in
        events.append("tick \(tick.number)@\(clock.now.offset.milliseconds)")
        do { try await clock.sleep(for: .ms(60)) } catch {
          await TimerFixtures.cleanup(for: .ms(20), on: clock)
          events.append("tick \(tick.number) cancelled@\(clock.now.offset.milliseconds)")
        }
      }
      let serviceGroup = ServiceGroup(configuration: .init(services: [service], logger: Self.logger))
      let run = Task { try await serviceGroup.run() }
      try await clock.sleep(for: .ms(330))
      await serviceGroup.triggerGracefulShutdown()
      try await run.value
      events.append("stopped@\(clock.now.offset.milliseconds)")
      try await clock.sleep(for: .seconds(1))
    }
    #expect(
      events.all == [
        "tick 0@0", "tick 1@100", "tick 2@200", "tick 3@300", "tick 3 cancelled@350", "stopped@350",
      ])
  }

  @Test func runOutsideAServiceGroupTicksUntilCancelled() async throws {
    let ticks = TimerFixtures.Log<Int>()
    try await withVirtualTime { clock in
      let service = try TimerService(every: .ms(100), clock: clock) { tick in ticks.append(tick.number) }
      let run = Task { try await service.run() }
      try await clock.sleep(for: .ms(250))
      run.cancel()
      try await run.value
    }
    #expect(ticks.all == [0, 1, 2])
  }

  @Test func aNonPositiveIntervalIsRejected() {
    let error = #expect(throws: AsyncToolsError.self) { _ = try TimerService(every: .zero) { _ in } }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains("interval") == true)
    let delay = #expect(throws: AsyncToolsError.self) {
      _ = try TimerService(every: .seconds(1), initialDelay: .seconds(-1)) { _ in }
    }
    #expect(delay?.code == .invalidArgument)
  }
}
