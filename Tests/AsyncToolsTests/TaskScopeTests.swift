import AsyncTools
import Synchronization
import Testing

@Suite("TaskScope")
struct TaskScopeTests {
  @Test func childFailureGoesToTheHandlerOnceAndCancelsNobody() async throws {
    let reported = ChildLog()
    let handled = ChildGate()
    let release = ChildGate()
    let siblingSawCancellation = ChildBox(false)
    let value = try await withTaskScope(errorHandler: { error in
      reported.append("\(error)")
      handled.open()
    }) { scope in
      scope.addTask { throw ChildError(id: 1) }
      scope.addTask {
        await release.wait()
        siblingSawCancellation.set(Task.isCancelled)
      }
      // The handler runs while the body and the sibling are still running.
      await handled.wait()
      #expect(!Task.isCancelled, "the body must not be cancelled by a child failure")
      let scopeCancelled = scope.isCancelled  // TaskScope is ~Copyable: read it outside the macro
      #expect(!scopeCancelled, "the scope must not be cancelled by a child failure")
      release.open()
      return 42
    }
    #expect(value == 42)
    #expect(reported.all == ["\(ChildError(id: 1))"])
    #expect(siblingSawCancellation.value == false)
  }

  @Test func childCancellationErrorIsNotReported() async throws {
    let reported = ChildCounter()
    try await withTaskScope(errorHandler: { _ in reported.increment() }) { scope in
      scope.addTask { throw CancellationError() }
      scope.addTask {
        withUnsafeCurrentTask { $0?.cancel() }
        try Task.checkCancellation()
      }
    }
    #expect(reported.value == 0)
  }

  @Test func scopeWaitsForEveryChildBeforeReturning() async throws {
    let started = ChildGate()
    let release = ChildGate()
    let finished = ChildBox(false)
    // Released from outside the scope, after the body has already returned.
    let releaser = Task {
      await started.wait()
      release.open()
    }
    try await withTaskScope { scope in
      scope.addTask {
        started.open()
        await release.wait()
        finished.set(true)
      }
    }
    #expect(finished.value, "withTaskScope returned before its child finished")
    await releaser.value
  }

  @Test func bodyErrorCancelsChildrenAwaitsThemAndPropagatesUnchanged() async throws {
    let running = ChildCounter()
    let cleanedUp = ChildCounter()
    let error = await #expect(throws: ChildError.self) {
      try await withTaskScope { scope in
        let handle = scope.handle
        for _ in 0..<3 {
          scope.addTask {
            running.increment()
            await childSleepUntilCancelled()
            await Task.yield()
            cleanedUp.increment()
          }
        }
        try handle.addTask {
          running.increment()
          await childSleepUntilCancelled()
          cleanedUp.increment()
        }
        await running.wait(until: 4)
        throw ChildError(id: 7)
      }
    }
    #expect(error == ChildError(id: 7))
    #expect(cleanedUp.value == 4, "every child must be cancelled and awaited before the error propagates")
  }

  @Test func bodyErrorWinsOverTheHandlesCancellation() async throws {
    // Found by the stress test: the handle's canceller throws into the group too, and the group used to rethrow
    // that marker instead of the body's error.
    let running = ChildCounter()
    let error = await #expect(throws: ChildError.self) {
      try await withTaskScope { scope in
        let handle = scope.handle
        scope.addTask {
          running.increment()
          await childSleepUntilCancelled()
        }
        await running.wait(until: 1)
        handle.cancelAll()
        throw ChildError(id: 11)
      }
    }
    #expect(error == ChildError(id: 11))
  }

  @Test func outerCancellationWaitsForChildCleanupThenThrowsCancellationError() async throws {
    let log = ChildLog()
    let running = ChildCounter()
    let inCleanup = ChildCounter()
    let finishCleanup = ChildGate()
    let task = Task {
      try await withTaskScope { scope in
        for id in 0..<2 {
          scope.addTask {
            running.increment()
            await childSleepUntilCancelled()
            inCleanup.increment()
            await finishCleanup.wait()  // async cleanup that takes a while
            log.append("cleanup \(id)")
          }
        }
        await childSleepUntilCancelled()
        log.append("body saw cancellation")
      }
      log.append("scope returned")
    }
    await running.wait(until: 2)
    task.cancel()
    await inCleanup.wait(until: 2)
    #expect(!log.all.contains("scope returned"))
    finishCleanup.open()
    let result = await task.result
    #expect(throws: CancellationError.self) { try result.get() }
    #expect(Set(log.all) == ["body saw cancellation", "cleanup 0", "cleanup 1"])
  }

  @Test func bodyThatIgnoresCancellationStillEndsInCancellationError() async throws {
    let task = Task {
      withUnsafeCurrentTask { $0?.cancel() }
      return try await withTaskScope { _ in 1 }
    }
    await #expect(throws: CancellationError.self) { try await task.value }
  }

  @Test func childrenStartCancelledInACancelledTask() async throws {
    let sawCancellation = ChildCounter()
    let task = Task {
      withUnsafeCurrentTask { $0?.cancel() }
      try await withTaskScope { scope in
        let handle = scope.handle
        scope.addTask { if Task.isCancelled { sawCancellation.increment() } }
        try handle.addTask { if Task.isCancelled { sawCancellation.increment() } }
      }
    }
    await #expect(throws: CancellationError.self) { try await task.value }
    #expect(sawCancellation.value == 2)
  }

  @Test func childrenAddChildrenThroughTheHandle() async throws {
    let ran = ChildLog()
    try await withTaskScope { scope in
      let handle = scope.handle
      scope.addTask {
        ran.append("child")
        try handle.addTask {
          ran.append("grandchild")
          try handle.addTask { ran.append("great-grandchild") }
        }
      }
    }
    #expect(Set(ran.all) == ["child", "grandchild", "great-grandchild"])
  }

  @Test func childrenMayAddChildrenAfterTheBodyReturned() async throws {
    let bodyEnded = ChildGate()
    let lateChildRan = ChildBox(false)
    try await withTaskScope { scope in
      // Runs when the body returns, before the scope starts waiting for its children (aiotools' `__aexit__`).
      defer { bodyEnded.open() }
      let handle = scope.handle
      scope.addTask {
        await bodyEnded.wait()
        try handle.addTask { lateChildRan.set(true) }
      }
    }
    #expect(lateChildRan.value, "a child added during the scope's exit must run before the scope returns")
  }

  @Test func addingToAnEndedScopeThrowsClosed() async throws {
    let escaped = try await withTaskScope { scope in scope.handle }
    let error = #expect(throws: AsyncToolsError.self) {
      try escaped.addTask {}
    }
    #expect(error?.code == .closed)
    #expect(error?.message.contains("ended") == true)
  }

  @Test func cancelAllFromTheBodyCancelsChildrenButNotTheBody() async throws {
    let cancelled = ChildCounter()
    let running = ChildCounter()
    let value = try await withTaskScope { scope in
      let handle = scope.handle
      scope.addTask {
        running.increment()
        await childSleepUntilCancelled()
        cancelled.increment()
      }
      try handle.addTask {
        running.increment()
        await childSleepUntilCancelled()
        cancelled.increment()
      }
      await running.wait(until: 2)
      scope.cancelAll()
      let scopeCancelled = scope.isCancelled
      #expect(scopeCancelled)
      await cancelled.wait(until: 2)
      #expect(!Task.isCancelled, "cancelAll must not cancel the body")
      // A child added after cancelAll starts cancelled.
      scope.addTask { if Task.isCancelled { cancelled.increment() } }
      return "done"
    }
    #expect(value == "done")
    #expect(cancelled.value == 3)
  }

  @Test func cancelAllFromAChildCancelsEverySiblingButNotTheBody() async throws {
    let cancelled = ChildCounter()
    let running = ChildCounter()
    let bodyWasCancelled = ChildBox(true)
    try await withTaskScope { scope in
      let handle = scope.handle
      for _ in 0..<3 {
        scope.addTask {
          running.increment()
          await childSleepUntilCancelled()
          cancelled.increment()
        }
      }
      try handle.addTask {
        running.increment()
        await childSleepUntilCancelled()
        cancelled.increment()
      }
      scope.addTask {
        await running.wait(until: 4)
        handle.cancelAll()
      }
      await cancelled.wait(until: 4)
      #expect(handle.isCancelled)
      bodyWasCancelled.set(Task.isCancelled)
    }
    #expect(bodyWasCancelled.value == false)
  }

  @Test func bodyValueIsReturnedAndChildFailuresAreNotRethrown() async throws {
    let value = try await withTaskScope(errorHandler: { _ in }) { scope in
      for id in 0..<10 { scope.addTask { throw ChildError(id: id) } }
      return "value"
    }
    #expect(value == "value")
  }

  @Test func everyChildFailureIsReportedExactlyOnce() async throws {
    let reported = ChildBox<[Int]>([])
    try await withTaskScope(errorHandler: { error in
      reported.update { $0.append((error as! ChildError).id) }
    }) { scope in
      let handle = scope.handle
      for id in 0..<50 { scope.addTask { throw ChildError(id: id) } }
      for id in 50..<100 { try handle.addTask { throw ChildError(id: id) } }
    }
    #expect(reported.value.sorted() == Array(0..<100))
  }

  @Test func childrenCarryTheirTaskNames() async throws {
    let names = ChildBox<Set<String>>([])
    try await withTaskScope { scope in
      let handle = scope.handle
      scope.addTask(name: "fast-path") { names.update { _ = $0.insert(Task.name ?? "nil") } }
      try handle.addTask(name: "handle-path") { names.update { _ = $0.insert(Task.name ?? "nil") } }
    }
    #expect(names.value == ["fast-path", "handle-path"])
  }

  @Test func addTaskUnlessCancelledRefusesInACancelledScope() async throws {
    let ran = ChildCounter()
    try await withTaskScope { scope in
      let addedBefore = scope.addTaskUnlessCancelled { ran.increment() }
      scope.cancelAll()
      let addedAfter = scope.addTaskUnlessCancelled { ran.increment() }
      #expect(addedBefore)
      #expect(!addedAfter)
    }
    #expect(ran.value == 1)
  }

  @Test(.timeLimit(.minutes(1)))
  func finishedChildrenAreNotRetained() async throws {
    final class Payload: Sendable {
      let released: ChildCounter
      init(_ released: ChildCounter) { self.released = released }
      deinit { released.increment() }
    }
    let count = 100_000
    let released = ChildCounter()
    try await withTaskScope { scope in
      for _ in 0..<count {
        let payload = Payload(released)
        scope.addTask { _ = payload }
      }
      // Every child's captured payload is freed while the scope is still open: it keeps nothing.
      await released.wait(until: count)
    }
    #expect(released.value == count)
  }
}
