import AsyncTools
import AsyncToolsTesting
import Testing

@Suite("TaskScope timeout")
struct TaskScopeTimeoutTests {
  @Test func timeoutCancelsBodyAndChildrenAtTheExactInstantAndThrowsTimeoutError() async throws {
    try await withVirtualTime { clock in
      let log = ChildLog()
      await #expect(throws: TimeoutError.self) {
        try await withTaskScope(timeout: .seconds(10), clock: clock) { scope in
          for id in 0..<3 {
            scope.addTask {
              do {
                try await clock.sleep(for: .seconds(100))
              } catch {
                log.append("child \(id) cancelled at \(clock.now.offset)")
              }
            }
          }
          do {
            try await clock.sleep(for: .seconds(100))
          } catch {
            log.append("body cancelled at \(clock.now.offset)")
            throw error
          }
        }
      }
      #expect(clock.now.offset == .seconds(10))
      #expect(
        Set(log.all) == [
          "body cancelled at 10.0 seconds", "child 0 cancelled at 10.0 seconds", "child 1 cancelled at 10.0 seconds",
          "child 2 cancelled at 10.0 seconds",
        ])
    }
  }

  @Test func timeoutFiresWhileTheScopeWaitsForChildrenAfterTheBodyReturned() async throws {
    try await withVirtualTime { clock in
      let cancelledAt = ChildBox<Duration?>(nil)
      await #expect(throws: TimeoutError.self) {
        try await withTaskScope(timeout: .seconds(5), clock: clock) { scope in
          scope.addTask {
            do { try await clock.sleep(for: .seconds(60)) } catch { cancelledAt.set(clock.now.offset) }
          }
        }
      }
      #expect(cancelledAt.value == .seconds(5))
    }
  }

  @Test func scopeThatFinishesInTimeReturnsItsValue() async throws {
    try await withVirtualTime { clock in
      let value = try await withTaskScope(timeout: .seconds(10), clock: clock) { scope in
        scope.addTask { try await clock.sleep(for: .seconds(3)) }
        return "in time"
      }
      #expect(value == "in time")
      #expect(clock.now.offset == .seconds(3))
    }
  }

  @Test func bodyErrorBeforeTheTimeoutPropagatesUnchanged() async throws {
    try await withVirtualTime { clock in
      let error = await #expect(throws: ChildError.self) {
        try await withTaskScope(timeout: .seconds(10), clock: clock) { scope in
          scope.addTask { try await clock.sleep(for: .seconds(100)) }
          try await clock.sleep(for: .seconds(2))
          throw ChildError(id: 2)
        }
      }
      #expect(error == ChildError(id: 2))
      #expect(clock.now.offset == .seconds(2))
    }
  }

  @Test func childFailuresDoNotTurnIntoTimeoutsOrErrors() async throws {
    try await withVirtualTime { clock in
      let reported = ChildCounter()
      try await withTaskScope(timeout: .seconds(10), clock: clock, errorHandler: { _ in reported.increment() }) {
        scope in
        scope.addTask {
          try await clock.sleep(for: .seconds(1))
          throw ChildError(id: 1)
        }
      }
      #expect(reported.value == 1)
      #expect(clock.now.offset == .seconds(1))
    }
  }

  @Test func nilTimeoutMeansNoLimit() async throws {
    try await withVirtualTime { clock in
      try await withTaskScope(timeout: nil, clock: clock) { scope in
        scope.addTask { try await clock.sleep(for: .seconds(86_400)) }
      }
      #expect(clock.now.offset == .seconds(86_400))
    }
  }
}
