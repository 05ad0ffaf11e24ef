import AsyncTools
import Synchronization
import Testing

@Suite("withContext")
struct ContextManagerTests {
  @Test func cleanupRunsAfterTheBodyReturnsAndItsValueIsReturned() async throws {
    let log = ScopeEventLog()
    let result = try await withContext(ScopeProbe(name: "a", log: log)) { value in
      log.record("body \(value)")
      return 42
    }
    #expect(result == 42)
    #expect(log.events == ["enter a", "body a", "exit a success"])
  }

  @Test func cleanupRunsWhenTheBodyThrowsAndTheBodyErrorReachesTheCallerUnchanged() async throws {
    let log = ScopeEventLog()
    let error = await #expect(throws: ScopeTestError.self) {
      try await withContext(ScopeProbe(name: "a", log: log)) { _ in throw ScopeTestError("body") }
    }
    #expect(error == ScopeTestError("body"))
    #expect(log.events == ["enter a", "exit a body"])
  }

  @Test func cleanupRunsToCompletionWhenTheTaskIsCancelledDuringTheBody() async throws {
    let log = ScopeEventLog()
    let bodyStarted = ScopeSignal()
    let task = Task {
      try await withContext(ScopeProbe(name: "a", log: log, slowExit: true)) { _ in
        bodyStarted.fire()
        try await awaitScopeCancellation()
      }
    }
    await bodyStarted.wait()
    task.cancel()
    await #expect(throws: CancellationError.self) { try await task.value }
    // The exit awaited five times after the cancellation and still saw no cancellation.
    #expect(log.events == ["enter a", "exit a cancelled=false", "exit a cancelled"])
  }

  @Test func exitLearnsThatTheBodyStoppedBecauseOfCancellation() async throws {
    let seen = ScopeOutcomeBox()
    let task = Task {
      try await withContext(OutcomeRecorder(box: seen)) { _ in try await awaitScopeCancellation() }
    }
    task.cancel()
    _ = await task.result
    let outcome = try #require(seen.outcome)
    #expect(outcome.isCancellation)
    #expect(outcome.isFailure)
  }

  @Test func cleanupErrorIsThrownUnchangedWhenTheBodySucceeded() async throws {
    let log = ScopeEventLog()
    let error = await #expect(throws: ScopeTestError.self) {
      try await withContext(ScopeProbe(name: "a", log: log, failExit: true)) { _ in 1 }
    }
    #expect(error == ScopeTestError("exit a"))
    #expect(log.events == ["enter a", "exit a success"])
  }

  @Test func whenBodyAndCleanupBothThrowBothArriveInOneErrorGroupBodyFirst() async throws {
    let log = ScopeEventLog()
    let group = await #expect(throws: ErrorGroup.self) {
      try await withContext(ScopeProbe(name: "a", log: log, failExit: true)) { _ in throw ScopeTestError("body") }
    }
    #expect(group.map { scopeErrorNames($0) } == ["body", "exit a"])
  }

  @Test func enterFailurePropagatesAndNeitherBodyNorExitRuns() async throws {
    let log = ScopeEventLog()
    let error = await #expect(throws: ScopeTestError.self) {
      try await withContext(ScopeProbe(name: "a", log: log, failEnter: true)) { _ in
        log.record("body")
      }
    }
    #expect(error == ScopeTestError("enter a"))
    #expect(log.events == ["enter-failed a"])
  }

  @Test func nestedContextsExitInnermostFirst() async throws {
    let log = ScopeEventLog()
    try await withContext(ScopeProbe(name: "outer", log: log)) { _ in
      try await withContext(ScopeProbe(name: "inner", log: log)) { _ in log.record("body") }
    }
    #expect(log.events == ["enter outer", "enter inner", "body", "exit inner success", "exit outer success"])
  }

  @MainActor @Test func bodyRunsOnTheCallersActorAndMayUseItsState() async throws {
    var counter = 0  // main-actor state mutated by a non-Sendable body
    try await withContext(ScopeProbe(name: "a", log: ScopeEventLog())) { _ in
      MainActor.assertIsolated()
      counter += 1
    }
    #expect(counter == 1)
  }
}

final class ScopeOutcomeBox: Sendable {
  private let stored = Locked<ExitOutcome?>(nil)
  var outcome: ExitOutcome? {
    get { stored.withLock { $0 } }
    set { stored.withLock { $0 = newValue } }
  }
}

struct OutcomeRecorder: AsyncContextManager {
  let box: ScopeOutcomeBox
  func enter() async throws {}
  func exit(_ outcome: ExitOutcome) async throws { box.outcome = outcome }
}

@Suite("ExitOutcome")
struct ExitOutcomeTests {
  @Test func successHasNoErrorAndFailureCarriesIt() {
    #expect(ExitOutcome.success.error == nil)
    #expect(!ExitOutcome.success.isFailure)
    #expect(!ExitOutcome.success.isCancellation)
    let failure = ExitOutcome.failure(ScopeTestError("x"))
    #expect(failure.error as? ScopeTestError == ScopeTestError("x"))
    #expect(failure.isFailure)
    #expect(!failure.isCancellation)
    #expect(ExitOutcome.failure(CancellationError()).isCancellation)
    #expect("\(ExitOutcome.success)" == "success")
    #expect("\(failure)" == "failure(NamedTestError(x))")
  }
}
