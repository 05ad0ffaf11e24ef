import AsyncTools
import Testing

/// A member whose enter waits at a rendezvous: the group's enters can only finish if they overlap.
private struct RendezvousMember: AsyncContextManager {
  let index: Int
  let rendezvous: ScopeRendezvous
  func enter() async throws -> Int {
    try await rendezvous.arrive()
    return index
  }
  func exit(_ outcome: ExitOutcome) async throws {}
}

/// A member whose exit waits at a rendezvous: the group's exits can only finish if they overlap.
private struct RendezvousExitMember: AsyncContextManager {
  let rendezvous: ScopeRendezvous
  let log: ScopeEventLog
  func enter() async throws {}
  func exit(_ outcome: ExitOutcome) async throws {
    try await rendezvous.arrive()
    log.record("exited cancelled=\(Task.isCancelled)")
  }
}

/// A member whose enter waits until its task is cancelled.
private struct EnterUntilCancelled: AsyncContextManager {
  let waiting: ScopeSignal
  let log: ScopeEventLog
  func enter() async throws -> String {
    waiting.fire()
    try await awaitScopeCancellation()
    return "unreachable"
  }
  func exit(_ outcome: ExitOutcome) async throws { log.record("exit of a member that never entered") }
}

@Suite("withContextGroup")
struct ContextGroupTests {
  @Test func entersAllMembersConcurrently() async throws {
    let rendezvous = ScopeRendezvous(parties: 4)
    let values = try await withScopeWatchdog {
      try await withContextGroup((0..<4).map { RendezvousMember(index: $0, rendezvous: rendezvous) }) { values in
        values.map { try? $0.get() }
      }.value
    }
    #expect(values == [0, 1, 2, 3])
  }

  @Test func exitsAllMembersConcurrentlyAndShielded() async throws {
    let rendezvous = ScopeRendezvous(parties: 3)
    let log = ScopeEventLog()
    let members = (0..<3).map { _ in RendezvousExitMember(rendezvous: rendezvous, log: log) }
    let result = try await withScopeWatchdog {
      try await withContextGroup(members) { _ in }
    }
    #expect(result.exits.allSatisfy { $0.error == nil })
    #expect(log.events == Array(repeating: "exited cancelled=false", count: 3))

    // Shielded: the group's task is cancelled while the body runs; the exits still overlap, run to the end and do
    // not see the cancellation (an unshielded exit would fail at the cancellable rendezvous or log `true`).
    let cancelledRendezvous = ScopeRendezvous(parties: 3)
    let cancelledLog = ScopeEventLog()
    let inBody = ScopeSignal()
    let cancelledMembers = (0..<3).map { _ in RendezvousExitMember(rendezvous: cancelledRendezvous, log: cancelledLog) }
    let task = Task {
      try await withContextGroup(cancelledMembers) { _ in
        inBody.fire()
        try await awaitScopeCancellation()
      }
    }
    await inBody.wait()
    task.cancel()
    let outcome = try await withScopeWatchdog { await task.result }
    #expect(throws: CancellationError.self) { try outcome.get() }
    #expect(cancelledLog.events == Array(repeating: "exited cancelled=false", count: 3))
  }

  @Test func aFailedEnterIsAFailureInValuesAndTheOthersStillEnterAndExit() async throws {
    let log = ScopeEventLog()
    let members = [
      ScopeProbe(name: "a", log: log),
      ScopeProbe(name: "b", log: log, failEnter: true),
      ScopeProbe(name: "c", log: log),
    ]
    let result = try await withContextGroup(members) { values in
      values.map { value in
        switch value {
        case .success(let name): "ok \(name)"
        case .failure(let error): "failed \(scopeErrorNames(error).joined())"
        }
      }
    }
    #expect(result.value == ["ok a", "failed enter b", "ok c"])
    // Every entered member exited; the failed one was not (it had nothing to release).
    #expect(log.count(of: "exit a success") == 1)
    #expect(log.count(of: "exit c success") == 1)
    #expect(!log.events.contains { $0.hasPrefix("exit b") })
    #expect(result.exits.map(describe) == ["exited", "notEntered", "exited"])
  }

  @Test func everyMemberExitsEvenWhenSomeExitsThrowAndTheResultsArePerMember() async throws {
    let log = ScopeEventLog()
    let members = [
      ScopeProbe(name: "a", log: log, failExit: true),
      ScopeProbe(name: "b", log: log),
      ScopeProbe(name: "c", log: log, failExit: true),
    ]
    let result = try await withContextGroup(members) { _ in 7 }
    #expect(result.value == 7)
    #expect(result.exits.map(describe) == ["failed exit a", "exited", "failed exit c"])
    #expect(Set(log.events) == ["enter a", "enter b", "enter c", "exit a success", "exit b success", "exit c success"])
    let thrown = #expect(throws: ErrorGroup.self) { try result.get() }
    #expect(thrown.map { scopeErrorNames($0) } == ["exit a", "exit c"])
  }

  @Test func bodyErrorIsDeliveredToEveryExitAndRethrownUnchanged() async throws {
    let log = ScopeEventLog()
    let members = [ScopeProbe(name: "a", log: log), ScopeProbe(name: "b", log: log)]
    let error = await #expect(throws: ScopeTestError.self) {
      try await withContextGroup(members) { _ in throw ScopeTestError("body") }
    }
    #expect(error == ScopeTestError("body"))
    #expect(Set(log.events) == ["enter a", "enter b", "exit a body", "exit b body"])
  }

  @Test func bodyErrorAndExitErrorsArriveTogetherBodyFirstThenMemberOrder() async throws {
    let log = ScopeEventLog()
    let members = [
      ScopeProbe(name: "a", log: log, failExit: true),
      ScopeProbe(name: "b", log: log),
      ScopeProbe(name: "c", log: log, failExit: true),
    ]
    let group = await #expect(throws: ErrorGroup.self) {
      try await withContextGroup(members) { _ in throw ScopeTestError("body") }
    }
    #expect(group.map { scopeErrorNames($0) } == ["body", "exit a", "exit c"])
  }

  @Test func exitsAreNotCutShortWhenTheTaskIsCancelledDuringTheBody() async throws {
    let log = ScopeEventLog()
    let started = ScopeSignal()
    let task = Task {
      try await withContextGroup([ScopeProbe(name: "a", log: log, slowExit: true)]) { _ in
        started.fire()
        try await awaitScopeCancellation()
      }
    }
    await started.wait()
    task.cancel()
    await #expect(throws: CancellationError.self) { try await task.value }
    #expect(log.events == ["enter a", "exit a cancelled=false", "exit a cancelled"])
  }

  @Test func aMemberWhoseEnterIsCancelledIsACancellationFailureAndTheBodyStillRuns() async throws {
    let log = ScopeEventLog()
    let waiting = ScopeSignal()
    let members: [any AsyncContextManager<String>] = [
      EnterUntilCancelled(waiting: waiting, log: log), ScopeProbe(name: "b", log: log),
    ]
    let task = Task {
      try await withContextGroup(members) { values in
        values.map { value in
          switch value {
          case .success(let name): name
          case .failure(let error): scopeErrorNames(error).joined()
          }
        }
      }
    }
    await waiting.wait()
    task.cancel()
    let result = try await task.value
    #expect(result.value == ["cancelled", "b"])
    #expect(result.exits.map(describe) == ["notEntered", "exited"])
    #expect(log.events == ["enter b", "exit b success"])
  }

  @Test func valuesArrayStaysIntactAfterTheBlock() async throws {
    // aiotools clears the caller's values list on exit (it aliases the group's own list).
    var kept: [Result<String, any Error>] = []
    try await withContextGroup([ScopeProbe(name: "a", log: ScopeEventLog())]) { values in kept = values }
    #expect(kept.count == 1)
    #expect((try? kept[0].get()) == "a")
  }

  @Test func emptyGroupRunsTheBodyWithNoValues() async throws {
    let result = try await withContextGroup([any AsyncContextManager<Int>]()) { values in values.count }
    #expect(result.value == 0)
    #expect(result.exits.isEmpty)
  }

  @Test func membersOfDifferentTypesWithOneValueTypeCanBeMixed() async throws {
    let log = ScopeEventLog()
    let members: [any AsyncContextManager<String>] = [
      ScopeProbe(name: "probe", log: log), AsyncContext { body in await body("built") },
    ]
    let result = try await withContextGroup(members) { values in values.compactMap { try? $0.get() } }
    #expect(result.value == ["probe", "built"])
  }
}

private func describe(_ exit: ContextGroupExit) -> String {
  switch exit {
  case .exited: "exited"
  case .notEntered: "notEntered"
  case .failed(let error): "failed \(scopeErrorNames(error).joined())"
  }
}
