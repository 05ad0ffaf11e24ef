import AsyncTools
import Testing

@Suite("withDeferred")
struct DeferredTests {
  @Test func deferredCleanupsRunLastInFirstOutAfterTheBody() async throws {
    let log = ScopeEventLog()
    let result = try await withDeferred { deferred in
      for index in 1...3 {
        log.record("do \(index)")
        try deferred { log.record("undo \(index)") }
      }
      return "done"
    }
    #expect(result == "done")
    // aiotools' test: [1, 2, 3, 3, 2, 1].
    #expect(log.events == ["do 1", "do 2", "do 3", "undo 3", "undo 2", "undo 1"])
  }

  @Test func deferredCleanupsRunWhenTheBodyThrows() async throws {
    let log = ScopeEventLog()
    let error = await #expect(throws: ScopeTestError.self) {
      try await withDeferred { deferred in
        try deferred { log.record("undo 1") }
        try deferred { log.record("undo 2") }
        throw ScopeTestError("body")
      }
    }
    #expect(error == ScopeTestError("body"))
    #expect(log.events == ["undo 2", "undo 1"])
  }

  @Test func allDeferredCleanupsRunEvenWhenOneThrowsUnlikeAiotools() async throws {
    let log = ScopeEventLog()
    let group = await #expect(throws: ErrorGroup.self) {
      try await withDeferred { deferred in
        try deferred { log.record("undo 1") }
        try deferred {
          log.record("undo 2")
          throw ScopeTestError("undo 2")
        }
        try deferred { log.record("undo 3") }
        throw ScopeTestError("body")
      }
    }
    #expect(log.events == ["undo 3", "undo 2", "undo 1"])
    #expect(group.map { scopeErrorNames($0) } == ["body", "undo 2"])
  }

  @Test func deferredCleanupsAwaitToCompletionAfterCancellation() async throws {
    let log = ScopeEventLog()
    let started = ScopeSignal()
    let task = Task {
      try await withDeferred { deferred in
        try deferred {
          for _ in 0..<5 { await Task.yield() }
          log.record("undo cancelled=\(Task.isCancelled)")
        }
        started.fire()
        try await awaitScopeCancellation()
      }
    }
    await started.wait()
    task.cancel()
    await #expect(throws: CancellationError.self) { try await task.value }
    #expect(log.events == ["undo cancelled=false"])
  }

  @Test func deferringOnAnEscapedRegistrarThrowsClosed() async throws {
    let escaped = try await withDeferred { deferred in deferred }
    let error = #expect(throws: AsyncToolsError.self) { try escaped {} }
    #expect(error?.code == .closed)
  }
}
