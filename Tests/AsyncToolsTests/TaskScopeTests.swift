import AsyncTools
import Synchronization
import Testing

@Suite("TaskScope")
struct TaskScopeTests {
  @Test func childFailureGoesToTheHandlerOnceAndCancelsNobody() async throws {
    let reported = ScopeLog()
    let handled = ScopeGate()
    let release = ScopeGate()
    let siblingSawCancellation = ScopeBox(false)
    let value = try await withTaskScope(errorHandler: { error in
      reported.append("\(error)")
      handled.open()
    }) { scope in
      scope.addTask { throw ScopeTestError(id: 1) }
      scope.addTask {
        await release.wait()
        siblingSawCancellation.set(Task.isCancelled)
      }
      // The handler runs while the body and the sibling are still running.
      await handled.wait()
      #expect(!Task.isCancelled, "the body must not be cancelled by a child failure")
      #expect(!scope.isCancelled, "the scope must not be cancelled by a child failure")
      release.open()
      return 42
    }
    #expect(value == 42)
    #expect(reported.all == ["\(ScopeTestError(id: 1))"])
    #expect(siblingSawCancellation.value == false)
  }

  @Test func childCancellationErrorIsNotReported() async throws {
    let reported = ScopeCounter()
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
    let started = ScopeGate()
    let release = ScopeGate()
    let finished = ScopeBox(false)
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
    let running = ScopeCounter()
    let cleanedUp = ScopeCounter()
    let error = await #expect(throws: ScopeTestError.self) {
      try await withTaskScope { scope in
        let handle = scope.handle
        for _ in 0..<3 {
          scope.addTask {
            running.increment()
            await sleepUntilCancelled()
            await Task.yield()
            cleanedUp.increment()
          }
        }
        try handle.addTask {
          running.increment()
          await sleepUntilCancelled()
          cleanedUp.increment()
        }
        await running.wait(until: 4)
        throw ScopeTestError(id: 7)
      }
    }
    #expect(error == ScopeTestError(id: 7))
    #expect(cleanedUp.value == 4, "every child must be cancelled and awaited before the error propagates")
  }

  @Test func outerCancellationWaitsForChildCleanupThenThrowsCancellationError() async throws {
    let log = ScopeLog()
    let running = ScopeCounter()
    let inCleanup = ScopeCounter()
    let finishCleanup = ScopeGate()
    let task = Task {
      try await withTaskScope { scope in
        for id in 0..<2 {
          scope.addTask {
            running.increment()
            await sleepUntilCancelled()
            inCleanup.increment()
            await finishCleanup.wait()  // async cleanup that takes a while
            log.append("cleanup \(id)")
          }
        }
        await sleepUntilCancelled()
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
    let sawCancellation = ScopeCounter()
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
    let ran = ScopeLog()
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
    let bodyEnded = ScopeGate()
    let lateChildRan = ScopeBox(false)
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
    let cancelled = ScopeCounter()
    let running = ScopeCounter()
    let value = try await withTaskScope { scope in
      let handle = scope.handle
      scope.addTask {
        running.increment()
        await sleepUntilCancelled()
        cancelled.increment()
      }
      try handle.addTask {
        running.increment()
        await sleepUntilCancelled()
        cancelled.increment()
      }
      await running.wait(until: 2)
      scope.cancelAll()
      #expect(scope.isCancelled)
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
    let cancelled = ScopeCounter()
    let running = ScopeCounter()
    let bodyWasCancelled = ScopeBox(true)
    try await withTaskScope { scope in
      let handle = scope.handle
      for _ in 0..<3 {
        scope.addTask {
          running.increment()
          await sleepUntilCancelled()
          cancelled.increment()
        }
      }
      try handle.addTask {
        running.increment()
        await sleepUntilCancelled()
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
      for id in 0..<10 { scope.addTask { throw ScopeTestError(id: id) } }
      return "value"
    }
    #expect(value == "value")
  }

  @Test func everyChildFailureIsReportedExactlyOnce() async throws {
    let reported = ScopeBox<[Int]>([])
    try await withTaskScope(errorHandler: { error in
      reported.update { $0.append((error as! ScopeTestError).id) }
    }) { scope in
      let handle = scope.handle
      for id in 0..<50 { scope.addTask { throw ScopeTestError(id: id) } }
      for id in 50..<100 { try handle.addTask { throw ScopeTestError(id: id) } }
    }
    #expect(reported.value.sorted() == Array(0..<100))
  }

  @Test func childrenCarryTheirTaskNames() async throws {
    let names = ScopeBox<Set<String>>([])
    try await withTaskScope { scope in
      let handle = scope.handle
      scope.addTask(name: "fast-path") { names.update { _ = $0.insert(Task.name ?? "nil") } }
      try handle.addTask(name: "handle-path") { names.update { _ = $0.insert(Task.name ?? "nil") } }
    }
    #expect(names.value == ["fast-path", "handle-path"])
  }

  @Test func addTaskUnlessCancelledRefusesInACancelledScope() async throws {
    let ran = ScopeCounter()
    try await withTaskScope { scope in
      #expect(scope.addTaskUnlessCancelled { ran.increment() })
      scope.cancelAll()
      #expect(!scope.addTaskUnlessCancelled { ran.increment() })
    }
    #expect(ran.value == 1)
  }

  @Test(.timeLimit(.minutes(1)))
  func finishedChildrenAreNotRetained() async throws {
    final class Payload: Sendable {
      let released: ScopeCounter
      init(_ released: ScopeCounter) { self.released = released }
      deinit { released.increment() }
    }
    let count = 100_000
    let released = ScopeCounter()
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
