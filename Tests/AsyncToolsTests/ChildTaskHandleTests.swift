import AsyncTools
import AsyncToolsTesting
import Testing

/// Task handles from scopes (issue #16, item 5): aiotools' `TaskScope.create_task` returns a task you can cancel
/// alone and await; so do `addTask` / `addChild` of every scope, and scopes count their live tasks.
@Suite("ChildTaskHandle")
struct ChildTaskHandleTests {
  @Test func taskScopeHandleCancelsOneChildAloneAndAwaitsValues() async throws {
    try await withVirtualTime { clock in
      let start = clock.now
      let reported = ChildCounter()
      let (slowResult, fastValue, siblingValue) = try await withTaskScope(errorHandler: { _ in reported.increment() }) {
        scope in
        let slow = scope.addTask(name: "slow") { () async throws -> Int in
          try await clock.sleep(for: .seconds(10))
          return 1
        }
        let fast = scope.addTask { () async throws -> Int in
          try await clock.sleep(for: .seconds(1))
          return 2
        }
        let sibling = scope.addTask { () async throws -> String in
          try await clock.sleep(for: .seconds(3))
          return "sibling"
        }
        #expect(scope.liveTaskCount == 3)
        #expect(!slow.isFinished)
        let fastValue = try await fast.value
        #expect(fast.isFinished)
        #expect(start.duration(to: clock.now) == .seconds(1))
        slow.cancel()
        #expect(slow.isCancelled)
        let slowResult = await slow.result
        #expect(start.duration(to: clock.now) == .seconds(1), "the cancelled child ends at once")
        return (slowResult, fastValue, try await sibling.value)
      }
      #expect(fastValue == 2)
      #expect(siblingValue == "sibling", "cancelling one child leaves its siblings running")
      #expect(throws: CancellationError.self) { try slowResult.get() }
      #expect(reported.value == 0, "a child cancelled through its handle is not a failure")
      #expect(start.duration(to: clock.now) == .seconds(3))
    }
  }

  @Test func valuesOfEveryShapeComeBackAsTheirOwnType() async throws {
    // The record keeps a child's value as `any Sendable` and the handle casts it back: optionals (nil included),
    // existentials, large structs and classes must all come back as they were returned.
    struct Large: Sendable, Equatable { var a = 1, b = 2, c = 3, d = 4, e = "five" }
    final class Box: Sendable { let n = 7 }
    try await withTaskScope { scope in
      let none = scope.addTask { () async throws -> Int? in nil }
      let some = scope.addTask { () async throws -> Int? in 5 }
      let doubleNone = scope.addTask { () async throws -> Int?? in .some(nil) }
      let existential = scope.addTask { () async throws -> any Sendable in "text" }
      let large = scope.addTask { () async throws -> Large in Large() }
      let box = Box()
      let object = scope.addTask { () async throws -> Box in box }
      let values = (
        try await none.value, try await some.value, try await doubleNone.value, try await existential.value,
        try await large.value, try await object.value, try await object.result.get()
      )
      #expect(values.0 == nil)
      #expect(values.1 == 5)
      #expect(values.2 == .some(nil))
      #expect(values.3 as? String == "text")
      #expect(values.4 == Large())
      #expect(values.5 === box)
      #expect(values.6 === box)
    }
  }

  @Test func aFailingChildsErrorIsReportedAndIsWhatItsValueThrows() async throws {
    let reported = ChildLog()
    let caught = try await withTaskScope(errorHandler: { reported.append("\($0)") }) { scope in
      let failing = scope.addTask { () async throws -> Int in throw ChildError(id: 4) }
      return await failing.result
    }
    #expect(throws: ChildError.self) { try caught.get() }
    #expect(reported.all == ["\(ChildError(id: 4))"])
  }

  @Test func cancellingBeforeTheChildRunsMakesItStartCancelled() async throws {
    let sawCancelled = ChildBox<Bool?>(nil)
    try await withTaskScope { scope in
      let gate = ChildGate()
      let handle = scope.handle
      let child = try handle.addTask {
        await gate.wait()
        sawCancelled.set(Task.isCancelled)
      }
      child.cancel()
      gate.open()
      _ = await child.result
    }
    #expect(sawCancelled.value == true)
  }

  @Test func handlePathChildrenReturnHandlesAndAreCounted() async throws {
    try await withVirtualTime { clock in
      try await withTaskScope { scope in
        let handle = scope.handle
        let child = try handle.addTask { () async throws -> Int in
          try await clock.sleep(for: .seconds(1))
          return 7
        }
        scope.addTask { try await clock.sleep(for: .seconds(2)) }
        #expect(handle.liveTaskCount == 2)
        #expect(try await child.value == 7)
        #expect(scope.liveTaskCount == 1)
      }
    }
  }

  @Test func errorGroupHandleCancelsOneTaskWithoutFailingTheGroup() async throws {
    try await withVirtualTime { clock in
      let start = clock.now
      let value = try await withErrorGroup { group in
        let long = try group.addTask { try await clock.sleep(for: .seconds(10)) }
        let short = try group.addTask { () async throws -> Int in
          try await clock.sleep(for: .seconds(1))
          return 5
        }
        #expect(group.liveTaskCount == 2)
        let value = try await short.value
        long.cancel()
        await #expect(throws: CancellationError.self) { try await long.value }
        #expect(group.liveTaskCount == 0)
        return value
      }
      #expect(value == 5)
      #expect(start.duration(to: clock.now) == .seconds(1))
    }
  }

  @Test func errorGroupHandleThrowsTheTasksOwnErrorNotTheGroupsMarker() async throws {
    let seen = ChildBox<String?>(nil)
    await #expect(throws: ErrorGroup.self) {
      try await withErrorGroup { group in
        let failing = try group.addTask { throw ChildError(id: 3) }
        let result = await failing.result
        if case .failure(let error) = result { seen.set("\(error)") }
      }
    }
    #expect(seen.value == "\(ChildError(id: 3))")
  }

  @Test func supervisorHandleStopsOneRestartingChildForGood() async throws {
    let runs = ChildCounter()
    let other = ChildCounter()
    try await withVirtualTime { clock in
      try await withSupervisor(
        intensity: RestartIntensity(maxRestarts: 100, within: .seconds(3600)), backoff: .none, clock: clock
      ) { supervisor in
        let looping = supervisor.addChild(name: "loop", restart: .always) {
          runs.increment()
          try await clock.sleep(for: .seconds(1))
        }
        supervisor.addChild(name: "other", restart: .never) {
          try await clock.sleep(for: .milliseconds(3_500))
          other.increment()
        }
        #expect(supervisor.liveTaskCount == 2)
        try await clock.sleep(for: .milliseconds(2_500))
        looping.cancel()
        _ = await looping.result
        #expect(looping.isFinished)
        #expect(supervisor.liveTaskCount == 1)
      }
    }
    #expect(runs.value == 3, "runs at 0, 1 and 2 s; cancelled at 2.5 s and not restarted")
    #expect(other.value == 1, "the sibling was not cancelled")
  }

  /// `cancel()` racing with the child's own end: the child withdraws its task reference while a cancel may be using
  /// it, so this must never touch a finished task (run under ThreadSanitizer and AddressSanitizer in CI).
  @Test(.timeLimit(.minutes(1)))
  func cancelRacingWithTheChildsEndIsSafe() async throws {
    let outcomes = ChildCounter()
    try await withTaskScope { scope in
      for round in 0..<2_000 {
        let child = scope.addTask { () async throws -> Int in
          if round % 3 == 0 { await Task.yield() }
          try Task.checkCancellation()
          return round
        }
        scope.addTask {
          if round % 2 == 0 { await Task.yield() }
          child.cancel()
          switch await child.result {
          case .success(let value): if value == round { outcomes.increment() }
          case .failure(let error): if error is CancellationError { outcomes.increment() }
          }
        }
      }
    }
    #expect(outcomes.value == 2_000, "every child ended with its value or a cancellation")
  }

  @Test func handlesOfTheSameChildAreEqual() async throws {
    try await withTaskScope { scope in
      let first = scope.addTask {}
      let second = scope.addTask {}
      #expect(first == first)
      #expect(first != second)
      #expect(Set([first, first, second]).count == 2)
    }
  }
}
