import AsyncTools
import Testing

private struct ClosableProbe: AsyncClosable {
  let name: String
  let log: ScopeEventLog
  var failClose = false

  func close() async throws {
    for _ in 0..<3 { await Task.yield() }
    log.record("close \(name) cancelled=\(Task.isCancelled)")
    if failClose { throw ScopeTestError("close \(name)") }
  }
}

@Suite("withClosing")
struct ClosingTests {
  @Test func closesAfterTheBodyReturns() async throws {
    let log = ScopeEventLog()
    let name = try await withClosing(ClosableProbe(name: "a", log: log)) { probe in
      log.record("body")
      return probe.name
    }
    #expect(name == "a")
    #expect(log.events == ["body", "close a cancelled=false"])
  }

  @Test func closesWhenTheBodyThrowsAndRethrowsTheBodyError() async throws {
    let log = ScopeEventLog()
    let error = await #expect(throws: ScopeTestError.self) {
      try await withClosing(ClosableProbe(name: "a", log: log)) { _ in throw ScopeTestError("body") }
    }
    #expect(error == ScopeTestError("body"))
    #expect(log.events == ["close a cancelled=false"])
  }

  @Test func closeIsNotCutShortByCancellation() async throws {
    let log = ScopeEventLog()
    let started = ScopeSignal()
    let task = Task {
      try await withClosing(ClosableProbe(name: "a", log: log)) { _ in
        started.fire()
        try await awaitScopeCancellation()
      }
    }
    await started.wait()
    task.cancel()
    await #expect(throws: CancellationError.self) { try await task.value }
    #expect(log.events == ["close a cancelled=false"])
  }

  @Test func closeErrorAloneIsThrownAndWithABodyErrorBothArrive() async throws {
    let log = ScopeEventLog()
    let alone = await #expect(throws: ScopeTestError.self) {
      try await withClosing(ClosableProbe(name: "a", log: log, failClose: true)) { _ in }
    }
    #expect(alone == ScopeTestError("close a"))
    let both = await #expect(throws: ErrorGroup.self) {
      try await withClosing(ClosableProbe(name: "a", log: log, failClose: true)) { _ in
        throw ScopeTestError("body")
      }
    }
    #expect(both.map { scopeErrorNames($0) } == ["body", "close a"])
  }

  @Test func closingPutsAClosableOnAnExitStack() async throws {
    let log = ScopeEventLog()
    try await withExitStack { stack in
      let probe = try await stack.enter(Closing(ClosableProbe(name: "a", log: log)))
      log.record("using \(probe.name)")
    }
    #expect(log.events == ["using a", "close a cancelled=false"])
  }
}
