import AsyncTools
import Testing

@Suite("ErrorGroupScope")
struct ErrorGroupScopeTests {
  private func ids(_ group: ErrorGroup) -> [Int] {
    group.errors.map { ($0 as? ScopeTestError)?.id ?? -1 }
  }

  @Test func firstFailureCancelsSiblingsAndTheBody() async throws {
    let running = ScopeCounter()
    let cancelled = ScopeLog()
    let error = await #expect(throws: ErrorGroup.self) {
      try await withErrorGroup { group in
        try group.addTask {
          running.increment()
          await sleepUntilCancelled()
          cancelled.append("sibling")
        }
        try group.addTask {
          await running.wait(until: 1)
          throw ScopeTestError(id: 1)
        }
        await sleepUntilCancelled()
        cancelled.append("body")
      }
    }
    #expect(error.map(ids) == [1], "only the real failure, not the induced cancellations")
    #expect(Set(cancelled.all) == ["sibling", "body"])
  }

  @Test func allFailuresComeOutTogetherInOrderWithoutInducedCancellations() async throws {
    let running = ScopeCounter()
    let error = await #expect(throws: ErrorGroup.self) {
      try await withErrorGroup { group in
        try group.addTask {
          running.increment()
          await sleepUntilCancelled()
          throw ScopeTestError(id: 2)  // a real error during cleanup still counts
        }
        try group.addTask {
          running.increment()
          await sleepUntilCancelled()
          throw CancellationError()  // an induced cancellation does not
        }
        try group.addTask {
          await running.wait(until: 2)
          throw ScopeTestError(id: 1)
        }
      }
    }
    #expect(error.map(ids) == [1, 2])
    #expect(error?.message.contains("failed") == true)
  }

  @Test func aSingleFailureIsStillAnErrorGroup() async throws {
    await #expect(throws: ErrorGroup.self) {
      try await withErrorGroup { group in try group.addTask { throw ScopeTestError(id: 5) } }
    }
  }

  @Test func bodyFailureCancelsTasksAndIsIncluded() async throws {
    let running = ScopeCounter()
    let cleanedUp = ScopeCounter()
    let error = await #expect(throws: ErrorGroup.self) {
      try await withErrorGroup { group in
        for _ in 0..<3 {
          try group.addTask {
            running.increment()
            await sleepUntilCancelled()
            cleanedUp.increment()
          }
        }
        await running.wait(until: 3)
        throw ScopeTestError(id: 9)
      }
    }
    #expect(error.map(ids) == [9])
    #expect(cleanedUp.value == 3, "every task must be cancelled and awaited before the group throws")
  }

  @Test func nestedErrorGroupsAreFlattened() async throws {
    let error = await #expect(throws: ErrorGroup.self) {
      try await withErrorGroup { group in
        try group.addTask {
          throw ErrorGroup("inner", [ScopeTestError(id: 1), ScopeTestError(id: 2)])
        }
      }
    }
    #expect(error.map(ids) == [1, 2])
  }

  @Test func noFailureReturnsTheBodyValueAfterEveryTask() async throws {
    let finished = ScopeCounter()
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
    let names = ScopeBox<Set<String>>([])
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
    let seen = ScopeLog()
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
    let ran = ScopeCounter()
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
    let running = ScopeCounter()
    let cancelled = ScopeCounter()
    await #expect(throws: CancellationError.self) {
      try await withErrorGroup { group in
        try group.addTask {
          running.increment()
          await sleepUntilCancelled()
          cancelled.increment()
        }
        try group.addTask {
          await running.wait(until: 1)
          group.cancelAll()
        }
        await sleepUntilCancelled()
        cancelled.increment()
        #expect(group.isCancelled)
        try Task.checkCancellation()
      }
    }
    #expect(cancelled.value == 2)
  }

  @Test func outerCancellationAwaitsTasksThenThrowsCancellationError() async throws {
    let running = ScopeCounter()
    let cleanup = ScopeGate()
    let log = ScopeLog()
    let task = Task {
      try await withErrorGroup { group in
        try group.addTask {
          running.increment()
          await sleepUntilCancelled()
          await cleanup.wait()
          log.append("task cleaned up")
        }
        await sleepUntilCancelled()
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
    let startedCancelled = ScopeBox<Bool?>(nil)
    await #expect(throws: ErrorGroup.self) {
      try await withErrorGroup { group in
        try group.addTask { throw ScopeTestError(id: 1) }
        await sleepUntilCancelled()
        try group.addTask { startedCancelled.set(Task.isCancelled) }
      }
    }
    #expect(startedCancelled.value == true)
  }
}
