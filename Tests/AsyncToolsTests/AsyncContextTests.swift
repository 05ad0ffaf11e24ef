import AsyncTools
import Testing

/// A resource built the `actxmgr` way: acquire, hand to the body, release, logging each step.
private func loggedResource(
  _ name: String, log: ScopeEventLog, failAcquire: Bool = false, failRelease: Bool = false
) -> AsyncContext<String> {
  AsyncContext { body in
    if failAcquire { throw ScopeTestError("acquire \(name)") }
    log.record("acquire \(name)")
    let outcome = await body(name)
    for _ in 0..<3 { await Task.yield() }
    log.record("release \(name) \(outcome.isFailure ? "after failure" : "after success") cancelled=\(Task.isCancelled)")
    if failRelease { throw ScopeTestError("release \(name)") }
  }
}

@Suite("AsyncContext builder")
struct AsyncContextTests {
  @Test func acquireBodyReleaseRunInOrderOnSuccess() async throws {
    let log = ScopeEventLog()
    let value = try await withContext(loggedResource("r", log: log)) { name in
      log.record("body \(name)")
      return name.count
    }
    #expect(value == 1)
    #expect(log.events == ["acquire r", "body r", "release r after success cancelled=false"])
  }

  @Test func releaseRunsAndSeesTheFailureWhenTheBodyThrows() async throws {
    let log = ScopeEventLog()
    let error = await #expect(throws: ScopeTestError.self) {
      try await withContext(loggedResource("r", log: log)) { _ in throw ScopeTestError("body") }
    }
    #expect(error == ScopeTestError("body"))
    #expect(log.events == ["acquire r", "release r after failure cancelled=false"])
  }

  @Test func releaseIsNotCutShortWhenTheTaskIsCancelledDuringTheBody() async throws {
    let log = ScopeEventLog()
    let started = ScopeSignal()
    let task = Task {
      try await withContext(loggedResource("r", log: log)) { _ in
        started.fire()
        try await awaitScopeCancellation()
      }
    }
    await started.wait()
    task.cancel()
    await #expect(throws: CancellationError.self) { try await task.value }
    #expect(log.events == ["acquire r", "release r after failure cancelled=false"])
  }

  @Test func acquireFailureIsAnEnterFailure() async throws {
    let log = ScopeEventLog()
    let error = await #expect(throws: ScopeTestError.self) {
      try await withContext(loggedResource("r", log: log, failAcquire: true)) { _ in log.record("body") }
    }
    #expect(error == ScopeTestError("acquire r"))
    #expect(log.events.isEmpty)
  }

  @Test func releaseFailureIsACleanupErrorAndBothErrorsArriveWhenTheBodyFailedToo() async throws {
    let log = ScopeEventLog()
    let alone = await #expect(throws: ScopeTestError.self) {
      try await withContext(loggedResource("r", log: log, failRelease: true)) { _ in }
    }
    #expect(alone == ScopeTestError("release r"))
    let both = await #expect(throws: ErrorGroup.self) {
      try await withContext(loggedResource("r", log: log, failRelease: true)) { _ in throw ScopeTestError("body") }
    }
    #expect(both.map { scopeErrorNames($0) } == ["body", "release r"])
  }

  @Test func cancellationDuringTheAcquireIsForwardedToTheClosure() async throws {
    let acquiring = ScopeSignal()
    let context = AsyncContext<Int> { body in
      acquiring.fire()
      try await awaitScopeCancellation()  // a hung acquire, ended only by cancellation
      await body(1)
    }
    let task = Task { try await withContext(context) { $0 } }
    await acquiring.wait()
    task.cancel()
    await #expect(throws: CancellationError.self) { try await task.value }
  }

  @Test func closureThatNeverCallsBodyFailsTheEnterWithInvalidState() async throws {
    let context = AsyncContext<Int> { _ in }
    let error = await #expect(throws: AsyncToolsError.self) {
      try await withContext(context) { $0 }
    }
    #expect(error?.code == .invalidState)
  }

  @Test func closureThatCallsBodyTwiceGetsAFailureAndExitThrowsInvalidState() async throws {
    let secondCall = ScopeOutcomeBox()
    let context = AsyncContext<Int> { body in
      await body(1)
      secondCall.outcome = await body(2)
    }
    let error = await #expect(throws: AsyncToolsError.self) {
      try await withContext(context) { $0 }
    }
    #expect(error?.code == .invalidState)
    #expect(secondCall.outcome?.error is AsyncToolsError)
  }

  @Test func enteringAnInstanceThatIsAlreadyEnteredThrowsAlreadyEntered() async throws {
    let context = AsyncContext<Int> { body in await body(1) }
    try await withContext(context) { _ in
      let error = await #expect(throws: AsyncToolsError.self) { try await withContext(context) { $0 } }
      #expect(error?.code == .alreadyEntered)
    }
    // Exited, so it can be entered again.
    #expect(try await withContext(context) { $0 } == 1)
  }

  @Test func exitWithoutEnterThrowsInvalidState() async throws {
    let context = AsyncContext<Int> { body in await body(1) }
    let error = await #expect(throws: AsyncToolsError.self) { try await context.exit(.success) }
    #expect(error?.code == .invalidState)
  }
}
