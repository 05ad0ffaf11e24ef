import AsyncTools
import AsyncToolsTesting
import Testing

/// aiotools' `TaskGroup`, `asyncio.TaskGroup` and Swift's own groups cancel their children when the body raises a
/// cancellation: so must `withErrorGroup` (issue #16, item 1). Exact virtual instants.
@Suite("ErrorGroupScope: the body throwing CancellationError")
struct ErrorGroupCancellationTests {
  @Test func bodyThrowingCancellationErrorCancelsTheTasksAtOnce() async throws {
    try await withVirtualTime { clock in
      let completed = ChildCounter()
      let start = clock.now
      await #expect(throws: CancellationError.self) {
        try await withErrorGroup { group in
          try group.addTask {
            try await clock.sleep(for: .seconds(1))
            completed.increment()
          }
          try await clock.sleep(for: .milliseconds(500))
          throw CancellationError()
        }
      }
      #expect(start.duration(to: clock.now) == .milliseconds(500), "the group must end when the body throws")
      #expect(completed.value == 0, "the task must have been cancelled, not run to completion")
    }
  }

  @Test func tasksDueJustAfterTheBodyThrowsAreCancelledToo() async throws {
    try await withVirtualTime { clock in
      let completed = ChildCounter()
      let start = clock.now
      await #expect(throws: CancellationError.self) {
        try await withErrorGroup { group in
          for _ in 0..<3 {
            try group.addTask {
              try await clock.sleep(for: .milliseconds(600))
              completed.increment()
            }
          }
          try await clock.sleep(for: .milliseconds(500))
          throw CancellationError()
        }
      }
      #expect(start.duration(to: clock.now) == .milliseconds(500))
      #expect(completed.value == 0)
    }
  }

  @Test func aTaskCancellingItselfStillCancelsNobody() async throws {
    try await withVirtualTime { clock in
      let completed = ChildCounter()
      let start = clock.now
      let value = try await withErrorGroup { group in
        try group.addTask { throw CancellationError() }
        try group.addTask {
          try await clock.sleep(for: .seconds(1))
          completed.increment()
        }
        return 7
      }
      #expect(value == 7)
      #expect(completed.value == 1, "a task's own CancellationError is not a failure and cancels no sibling")
      #expect(start.duration(to: clock.now) == .seconds(1))
    }
  }
}
