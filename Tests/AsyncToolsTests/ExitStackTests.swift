import AsyncTools
import Testing

@Suite("withExitStack")
struct ExitStackTests {
  @Test func unwindsLastInFirstOut() async throws {
    let log = ScopeEventLog()
    try await withExitStack { stack in
      _ = try await stack.enter(ScopeProbe(name: "a", log: log))
      try stack.callback { log.record("callback b") }
      _ = try await stack.enter(ScopeProbe(name: "c", log: log))
      try stack.push { outcome in log.record("push d \(outcome)") }
      log.record("body")
    }
    #expect(
      log.events == [
        "enter a", "enter c", "body", "push d success", "exit c success", "callback b", "exit a success",
      ])
  }

  @Test func enterReturnsTheManagersValue() async throws {
    let value = try await withExitStack { stack in
      try await stack.enter(ScopeProbe(name: "value", log: ScopeEventLog()))
    }
    #expect(value == "value")
  }

  @Test func everyCleanupRunsWhenOneThrowsAndASingleErrorIsThrownUnchanged() async throws {
    let log = ScopeEventLog()
    let error = await #expect(throws: ScopeTestError.self) {
      try await withExitStack { stack in
        try stack.callback { log.record("first") }
        try stack.callback {
          log.record("second")
          throw ScopeTestError("second")
        }
        try stack.callback { log.record("third") }
      }
    }
    #expect(error == ScopeTestError("second"))
    #expect(log.events == ["third", "second", "first"])
  }

  @Test func severalCleanupErrorsAreAggregatedInTheOrderTheyRan() async throws {
    let group = await #expect(throws: ErrorGroup.self) {
      try await withExitStack { stack in
        try stack.callback { throw ScopeTestError("first") }
        try stack.callback { throw ScopeTestError("second") }
      }
    }
    #expect(group.map { scopeErrorNames($0) } == ["second", "first"])
  }

  @Test func bodyErrorComesFirstThenCleanupErrors() async throws {
    let group = await #expect(throws: ErrorGroup.self) {
      try await withExitStack { stack in
        try stack.callback { throw ScopeTestError("cleanup") }
        throw ScopeTestError("body")
      }
    }
    #expect(group.map { scopeErrorNames($0) } == ["body", "cleanup"])
  }

  @Test func bodyErrorAloneIsRethrownUnchangedAndToldToEveryExit() async throws {
    let log = ScopeEventLog()
    let error = await #expect(throws: ScopeTestError.self) {
      try await withExitStack { stack in
        _ = try await stack.enter(ScopeProbe(name: "a", log: log))
        try stack.push { outcome in log.record("push \(scopeErrorNames(outcome.error!).joined())") }
        throw ScopeTestError("body")
      }
    }
    #expect(error == ScopeTestError("body"))
    #expect(log.events == ["enter a", "push body", "exit a body"])
  }

  @Test func laterCleanupsLearnTheErrorsOfEarlierOnes() async throws {
    let log = ScopeEventLog()
    _ = try? await withExitStack { stack in
      try stack.push { outcome in log.record("saw \(outcome.error.map { scopeErrorNames($0) } ?? [])") }
      try stack.callback { throw ScopeTestError("cleanup") }
    }
    #expect(log.events == ["saw [\"cleanup\"]"])
  }

  @Test func cleanupsRunToCompletionWhenTheTaskIsCancelled() async throws {
    let log = ScopeEventLog()
    let started = ScopeSignal()
    let task = Task {
      try await withExitStack { stack in
        _ = try await stack.enter(ScopeProbe(name: "a", log: log, slowExit: true))
        try stack.callback {
          for _ in 0..<5 { await Task.yield() }
          log.record("callback cancelled=\(Task.isCancelled)")
        }
        started.fire()
        try await awaitScopeCancellation()
      }
    }
    await started.wait()
    task.cancel()
    await #expect(throws: CancellationError.self) { try await task.value }
    #expect(log.events == ["enter a", "callback cancelled=false", "exit a cancelled=false", "exit a cancelled"])
  }

  @Test func enterFailureRegistersNothingAndTheEarlierEntriesStillUnwind() async throws {
    let log = ScopeEventLog()
    let error = await #expect(throws: ScopeTestError.self) {
      try await withExitStack { stack in
        _ = try await stack.enter(ScopeProbe(name: "a", log: log))
        _ = try await stack.enter(ScopeProbe(name: "b", log: log, failEnter: true))
      }
    }
    #expect(error == ScopeTestError("enter b"))
    #expect(log.events == ["enter a", "enter-failed b", "exit a enter b"])
  }

  @Test func usingAnEscapedStackAfterItsScopeThrowsClosed() async throws {
    let log = ScopeEventLog()
    let escaped = try await withExitStack { stack in stack }
    let pushError = #expect(throws: AsyncToolsError.self) { try escaped.push { _ in } }
    #expect(pushError?.code == .closed)
    let callbackError = #expect(throws: AsyncToolsError.self) { try escaped.callback {} }
    #expect(callbackError?.code == .closed)
    let enterError = await #expect(throws: AsyncToolsError.self) {
      try await escaped.enter(ScopeProbe(name: "late", log: log))
    }
    #expect(enterError?.code == .closed)
    #expect(log.events.isEmpty, "a closed stack must not enter the manager")
  }

  @Test func registeringFromACleanupWhileUnwindingThrowsClosed() async throws {
    let error = await #expect(throws: AsyncToolsError.self) {
      try await withExitStack { stack in
        try stack.callback { try stack.callback {} }
      }
    }
    #expect(error?.code == .closed)
  }

  @Test func managerEnteredWhileTheStackClosesIsExitedAtOnceAndClosedIsThrown() async throws {
    let log = ScopeEventLog()
    let entering = ScopeSignal()
    let release = ScopeSignal()
    let gated = AsyncContext<String> { body in
      entering.fire()
      await release.wait()
      let outcome = await body("gated")
      log.record("released after \((outcome.error as? AsyncToolsError)?.code.description ?? "?")")
    }
    // An enter from a task the scope does not await: the scope ends while the enter is in flight.
    let late = try await withExitStack { stack in
      let late = Task { try await stack.enter(gated) }
      await entering.wait()
      return late
    }
    release.fire()
    let error = await #expect(throws: AsyncToolsError.self) { try await late.value }
    #expect(error?.code == .closed)
    #expect(log.events == ["released after closed"])
  }
}
