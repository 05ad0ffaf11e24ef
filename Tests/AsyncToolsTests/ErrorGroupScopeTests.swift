import AsyncTools
import Testing

@Suite("ErrorGroupScope")
struct ErrorGroupScopeTests {
  private func ids(_ group: ErrorGroup) -> [Int] {
    group.errors.map { ($0 as? ChildError)?.id ?? -1 }
  }

  @Test func firstFailureCancelsSiblingsAndTheBody() async throws {
    let running = ChildCounter()
    let cancelled = ChildLog()
    let error = await #expect(throws: ErrorGroup.self) {
      try await withErrorGroup { group in
        try group.addTask {
          running.increment()
          await childSleepUntilCancelled()
          cancelled.append("sibling")
        }
        try group.addTask {
          await running.wait(until: 1)
          throw ChildError(id: 1)
        }
        await childSleepUntilCancelled()
        cancelled.append("body")
      }
    }
    #expect(error.map(ids) == [1], "only the real failure, not the induced cancellations")
    #expect(Set(cancelled.all) == ["sibling", "body"])
  }

  @Test func allFailuresComeOutTogetherInOrderWithoutInducedCancellations() async throws {
    let running = ChildCounter()
    let error = await #expect(throws: ErrorGroup.self) {
      try await withErrorGroup { group in
        try group.addTask {
          running.increment()
          await childSleepUntilCancelled()
          throw ChildError(id: 2)  // a real error during cleanup still counts
        }
        try group.addTask {
          running.increment()
          await childSleepUntilCancelled()
          throw CancellationError()  // an induced cancellation does not
        }
        try group.addTask {
          await running.wait(until: 2)
          throw ChildError(id: 1)
        }
      }
    }
    #expect(error.map(ids) == [1, 2])
    #expect(error?.message.contains("failed") == true)
  }

  @Test func aSingleFailureIsStillAnErrorGroup() async throws {
    await #expect(throws: ErrorGroup.self) {
      try await withErrorGroup { group in try group.addTask { throw ChildError(id: 5) } }
    }
  }

  @Test func bodyFailureCancelsTasksAndIsIncluded() async throws {
    let running = ChildCounter()
    let cleanedUp = ChildCounter()
    let error = await #expect(throws: ErrorGroup.self) {
      try await withErrorGroup { group in
        for _ in 0..<3 {
          try group.addTask {
            running.increment()
            await childSleepUntilCancelled()
            cleanedUp.increment()
          }
        }
        await running.wait(until: 3)
        throw ChildError(id: 9)
      }
    }
    #expect(error.map(ids) == [9])
    #expect(cleanedUp.value == 3, "every task must be cancelled and awaited before the group throws")
  }

  @Test func nestedErrorGroupsAreFlattened() async throws {
    let error = await #expect(throws: ErrorGroup.self) {
      try await withErrorGroup { group in
        try group.addTask {
          throw ErrorGroup("inner", [ChildError(id: 1), ChildError(id: 2)])
        }
      }
    }
    #expect(error.map(ids) == [1, 2])
  }

  @Test func noFailureReturnsTheBodyValueAfterEveryTask() async throws {
    let finished = ChildCounter()
    let value = try await withErrorGroup { group in
      for _ in 0..<10 {
        try group.addTask {
          await Task.yield()
          finished.increment()
        }
      }
      return "ok"
    }
    #expect(value == "ok")
    #expect(finished.value == 10)
  }

  @Test func tasksCarryTheirNamesAndTheBodyTheGroupName() async throws {
    let names = ChildBox<Set<String>>([])
    let groupName = try await withErrorGroup(name: "downloads") { group in
      names.update { _ = $0.insert("body:\(Task.name ?? "nil")") }
      try group.addTask(name: "a") { names.update { _ = $0.insert(Task.name ?? "nil") } }
      try group.addTask(name: "b") { names.update { _ = $0.insert(Task.name ?? "nil") } }
      return group.name
    }
    #expect(groupName == "downloads")
    #expect(names.value == ["body:downloads", "a", "b"])
  }

  @Test func unnamedGroupsGetDistinctDefaultNames() async throws {
    let first = try await withErrorGroup { $0.name }
    let second = try await withErrorGroup { $0.name }
    #expect(first.hasPrefix("error-group-"))
    #expect(first != second)
  }

  @Test func currentIsTheInnermostGroupForTheBodyAndItsTasks() async throws {
    #expect(ErrorGroupScope.current == nil)
    let seen = ChildLog()
    try await withErrorGroup(name: "outer") { outer in
      seen.append("body:\(ErrorGroupScope.current?.name ?? "nil")")
      try outer.addTask {
        seen.append("task:\(ErrorGroupScope.current?.name ?? "nil")")
        try await withErrorGroup(name: "inner") { inner in
          try inner.addTask { seen.append("inner task:\(ErrorGroupScope.current?.name ?? "nil")") }
        }
        seen.append("after inner:\(ErrorGroupScope.current?.name ?? "nil")")
      }
      #expect(ErrorGroupScope.current === outer)
    }
    #expect(ErrorGroupScope.current == nil)
    #expect(Set(seen.all) == ["body:outer", "task:outer", "inner task:inner", "after inner:outer"])
  }

  @Test func tasksAddTasksThroughCurrent() async throws {
    let ran = ChildCounter()
    try await withErrorGroup { group in
      try group.addTask {
        ran.increment()
        try ErrorGroupScope.current?.addTask {
          ran.increment()
          try ErrorGroupScope.current?.addTask { ran.increment() }
        }
      }
    }
    #expect(ran.value == 3)
  }

  @Test func addingToAnEndedGroupThrowsClosed() async throws {
    let escaped = try await withErrorGroup { $0 }
    let error = #expect(throws: AsyncToolsError.self) { try escaped.addTask {} }
    #expect(error?.code == .closed)
  }

  @Test func cancelAllCancelsEverythingAndEndsInCancellationError() async throws {
    let running = ChildCounter()
    let cancelled = ChildCounter()
    await #expect(throws: CancellationError.self) {
      try await withErrorGroup { group in
        try group.addTask {
          running.increment()
          await childSleepUntilCancelled()
          cancelled.increment()
        }
        try group.addTask {
          await running.wait(until: 1)
          group.cancelAll()
        }
        await childSleepUntilCancelled()
        cancelled.increment()
        #expect(group.isCancelled)
        try Task.checkCancellation()
      }
    }
    #expect(cancelled.value == 2)
  }

  @Test func outerCancellationAwaitsTasksThenThrowsCancellationError() async throws {
    let running = ChildCounter()
    let cleanup = ChildGate()
    let log = ChildLog()
    let task = Task {
      try await withErrorGroup { group in
        try group.addTask {
          running.increment()
          await childSleepUntilCancelled()
          await cleanup.wait()
          log.append("task cleaned up")
        }
        await childSleepUntilCancelled()
      }
      log.append("group returned")
    }
    await running.wait(until: 1)
    task.cancel()
    cleanup.open()
    await #expect(throws: CancellationError.self) { try await task.value }
    #expect(log.all == ["task cleaned up"])
  }

  @Test func tasksAddedAfterAFailureStartCancelled() async throws {
    let startedCancelled = ChildBox<Bool?>(nil)
    await #expect(throws: ErrorGroup.self) {
      try await withErrorGroup { group in
        try group.addTask { throw ChildError(id: 1) }
        await childSleepUntilCancelled()
        try group.addTask { startedCancelled.set(Task.isCancelled) }
      }
    }
    #expect(startedCancelled.value == true)
  }
}
