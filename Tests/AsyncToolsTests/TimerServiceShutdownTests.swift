import AsyncTools
import AsyncToolsServiceLifecycle
import AsyncToolsTesting
import Logging
import ServiceLifecycle
import Testing

/// `TimerService(onGracefulShutdown: .finishRunningTick)` (issue #16, item 8): graceful shutdown lets the running
/// tick finish instead of cancelling it; cancellation still cancels it.
@Suite("TimerService shutdown behaviour")
struct TimerServiceShutdownTests {
  private static let logger = Logger(label: "TimerServiceShutdownTests")

  @Test func finishRunningTickLetsTheTickEndNormallyAndStartsNoOther() async throws {
    let events = ChildLog()
    try await withVirtualTime { clock in
      let service = try TimerService(
        every: .milliseconds(100), clock: clock, onGracefulShutdown: .finishRunningTick
      ) { tick in
        events.append("tick \(tick.number)@\(clock.now.offset)")
        do {
          try await clock.sleep(for: .milliseconds(250))
          events.append("tick \(tick.number) done@\(clock.now.offset)")
        } catch {
          events.append("tick \(tick.number) cancelled@\(clock.now.offset)")
        }
      }
      let serviceGroup = ServiceGroup(configuration: .init(services: [service], logger: Self.logger))
      let run = Task { try await serviceGroup.run() }
      try await clock.sleep(for: .milliseconds(130))
      await serviceGroup.triggerGracefulShutdown()
      try await run.value
      events.append("stopped@\(clock.now.offset)")
    }
    #expect(
      events.all == [
        "tick 0@0.0 seconds", "tick 1@0.1 seconds", "tick 0 done@0.25 seconds", "tick 1 done@0.35 seconds",
        "stopped@0.35 seconds",
      ])
  }

  @Test func theDefaultStillCancelsTheRunningTick() async throws {
    let events = ChildLog()
    try await withVirtualTime { clock in
      let service = try TimerService(every: .milliseconds(100), clock: clock) { tick in
        do {
          try await clock.sleep(for: .milliseconds(250))
          events.append("tick \(tick.number) done")
        } catch {
          events.append("tick \(tick.number) cancelled@\(clock.now.offset)")
        }
      }
      let serviceGroup = ServiceGroup(configuration: .init(services: [service], logger: Self.logger))
      let run = Task { try await serviceGroup.run() }
      try await clock.sleep(for: .milliseconds(130))
      await serviceGroup.triggerGracefulShutdown()
      try await run.value
    }
    #expect(Set(events.all) == ["tick 0 cancelled@0.13 seconds", "tick 1 cancelled@0.13 seconds"])
  }

  @Test func cancellationDuringTheGracefulWaitCancelsTheTick() async throws {
    let events = ChildLog()
    try await withVirtualTime { clock in
      let service = try TimerService(
        every: .seconds(10), clock: clock, onGracefulShutdown: .finishRunningTick
      ) { tick in
        do {
          try await clock.sleep(for: .seconds(5))
          events.append("done")
        } catch {
          events.append("cancelled@\(clock.now.offset)")
        }
      }
      let serviceGroup = ServiceGroup(
        configuration: .init(
          services: [service], gracefulShutdownSignals: [], cancellationSignals: [],
          logger: Self.logger))
      let run = Task { try await serviceGroup.run() }
      try await clock.sleep(for: .seconds(1))
      await serviceGroup.triggerGracefulShutdown()
      try await clock.sleep(for: .seconds(1))
      run.cancel()
      try? await run.value
    }
    #expect(events.all == ["cancelled@2.0 seconds"])
  }
}
