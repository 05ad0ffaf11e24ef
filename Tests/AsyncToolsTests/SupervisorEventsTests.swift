import AsyncTools
import AsyncToolsTesting
import Testing

/// Supervisor observability (issue #16, item 6): failures reported with the child's name, restart events with the
/// name, attempt, error and next delay.
@Suite("Supervisor events")
struct SupervisorEventsTests {
  @Test func theErrorHandlerGetsTheChildsName() async throws {
    let reported = ChildLog()
    try await withSupervisor(
      intensity: RestartIntensity(maxRestarts: 10, within: .seconds(3600)), backoff: .none,
      errorHandler: { error, child in reported.append("\(child): \(error)") }
    ) { supervisor in
      supervisor.addChild(name: "once") { throw ChildError(id: 1) }
      let flaky = ChildCounter()
      supervisor.addChild(name: "flaky", restart: .onFailure) {
        if flaky.increment() == 1 { throw ChildError(id: 2) }
      }
      try supervisor.handle.addChild(name: "via-handle") { throw ChildError(id: 3) }
      supervisor.addChild { throw ChildError(id: 4) }
    }
    #expect(
      Set(reported.all) == [
        "once: \(ChildError(id: 1))", "flaky: \(ChildError(id: 2))", "via-handle: \(ChildError(id: 3))",
        "child #1: \(ChildError(id: 4))",
      ])
  }

  @Test func restartEventsCarryNameAttemptErrorAndDelayAtExactInstants() async throws {
    let events = ChildLog()
    try await withVirtualTime { clock in
      let start = clock.now
      try await withSupervisor(
        intensity: RestartIntensity(maxRestarts: 10, within: .seconds(3600)),
        backoff: Backoff(initial: .milliseconds(100), maximum: .seconds(1), multiplier: 2, jitter: 0),
        clock: clock, errorHandler: { _, _ in },
        onRestart: { event in
          let at = start.duration(to: clock.now)
          let failure = event.lastFailure.map { "\($0)" } ?? "-"
          events.append("\(at) \(event.child) #\(event.attempt) \(failure) \(event.delay)")
        }
      ) { supervisor in
        let runs = ChildCounter()
        supervisor.addChild(name: "worker", restart: .onFailure) {
          let run = runs.increment()
          if run <= 3 { throw ChildError(id: run) }
        }
      }
    }
    #expect(
      events.all == [
        "0.0 seconds worker #1 \(ChildError(id: 1)) 0.1 seconds",
        "0.1 seconds worker #2 \(ChildError(id: 2)) 0.2 seconds",
        "0.3 seconds worker #3 \(ChildError(id: 3)) 0.4 seconds",
      ])
  }
}
