import AsyncTools
import AsyncToolsTesting
import Testing

private typealias Gate = CancellationFixtures.Gate
private typealias Boom = CancellationFixtures.Boom
private typealias Recorder = CancellationFixtures.Recorder

private enum ShieldTestLocals {
  @TaskLocal static var requestID = 0
}

@Suite("withCancellationShield")
struct CancellationShieldTests {
  @Test func returnsTheBodysValueWhenNobodyCancels() async throws {
    let value = try await withCancellationShield { 42 }
    #expect(value == 42)
  }

  @Test func cancellationDuringTheShieldLetsTheBodyFinishThenThrowsCancellation() async throws {
    let events = Recorder<String>()
    let entered = Gate()
    let release = Gate()
    let caller = Task {
      let value = try await withCancellationShield {
        entered.open()
        await release.wait()
        // The body must not observe the caller's cancellation: this checkpoint does not throw.
        events.record("body sees cancelled=\(Task.isCancelled)")
        try Task.checkCancellation()
        try await Task.sleep(for: .zero)
        events.record("body finished")
        return 1
      }
      events.record("shield returned \(value)")
    }
    await entered.wait()
    caller.cancel()
    release.open()
    let result = await caller.result
    #expect(CancellationFixtures.isCancellation(result))
    #expect(events.all == ["body sees cancelled=false", "body finished"])
  }

  @Test func theCallerStaysCancelledAfterTheShieldThrows() async throws {
    let entered = Gate()
    let release = Gate()
    let caller = Task<Bool, Never> {
      do {
        try await withCancellationShield {
          entered.open()
          await release.wait()
        }
      } catch {}
      return Task.isCancelled
    }
    await entered.wait()
    caller.cancel()
    release.open()
    #expect(await caller.value)
  }

  @Test func aCallerAlreadyCancelledOnEntryRunsTheBodyAndIsNotReportedByTheShield() async throws {
    let caller = Task<(Bool, Bool), any Error> {
      withUnsafeCurrentTask { $0?.cancel() }
      let seenInside = try await withCancellationShield { Task.isCancelled }
      return (seenInside, Task.isCancelled)
    }
    let (seenInside, stillCancelled) = try await caller.value
    #expect(!seenInside, "the body runs without cancellation")
    #expect(stillCancelled, "the caller's own cancellation is still pending for its next checkpoint")
  }

  @Test func aBodyErrorWinsOverTheDeferredCancellation() async throws {
    let entered = Gate()
    let release = Gate()
    let caller = Task {
      try await withCancellationShield {
        entered.open()
        await release.wait()
        throw Boom(1)
      }
    }
    await entered.wait()
    caller.cancel()
    release.open()
    await #expect(throws: Boom(1)) { try await caller.value }
  }

  @Test func aCancellationErrorThrownByTheBodyPropagates() async throws {
    await #expect(throws: CancellationError.self) {
      try await withCancellationShield { throw CancellationError() }
    }
  }

  @Test func nestedShieldsReportTheCancellationOnceAtTheOutermostExit() async throws {
    let events = Recorder<String>()
    let entered = Gate()
    let release = Gate()
    let caller = Task {
      try await withCancellationShield {
        let inner = try await withCancellationShield {
          entered.open()
          await release.wait()
          return "inner value"
        }
        events.record("inner returned \(inner)")
        events.record("outer body sees cancelled=\(Task.isCancelled)")
      }
    }
    await entered.wait()
    caller.cancel()
    release.open()
    #expect(CancellationFixtures.isCancellation(await caller.result))
    #expect(events.all == ["inner returned inner value", "outer body sees cancelled=false"])
  }

  @Test func childrenOfTheBodyAreNotCancelledByTheCaller() async throws {
    let events = Recorder<String>()
    let entered = Gate()
    let release = Gate()
    let caller = Task {
      try await withCancellationShield {
        await withTaskGroup(of: Void.self) { group in
          group.addTask {
            entered.open()
            await release.wait()
            events.record("child sees cancelled=\(Task.isCancelled)")
          }
        }
      }
    }
    await entered.wait()
    caller.cancel()
    release.open()
    #expect(CancellationFixtures.isCancellation(await caller.result), "the shield reports the deferred cancellation")
    #expect(events.all == ["child sees cancelled=false"])
  }

  @Test func taskLocalValuesFlowIntoTheBody() async throws {
    let seen = try await ShieldTestLocals.$requestID.withValue(7) {
      try await withCancellationShield { ShieldTestLocals.requestID }
    }
    #expect(seen == 7)
  }

  @Test func theBodyInheritsTheCallersPriority() async throws {
    let seen = await Task(priority: .high) {
      try? await withCancellationShield { Task.currentPriority }
    }.value
    #expect(seen == .high)
  }

  @Test @MainActor func aBodyWrittenOnTheMainActorRunsOnTheMainActor() async throws {
    let model = MainActorModel()
    try await withCancellationShield {
      MainActor.assertIsolated("the shield keeps the caller's actor")
      model.count += 1
    }
    #expect(model.count == 1)
  }
}

@MainActor private final class MainActorModel {
  var count = 0
}

// MARK: - Virtual time

@Suite("withCancellationShield in virtual time")
struct CancellationShieldVirtualTimeTests {
  @Test func aCancellationDuringTheShieldIsReportedWhenTheBodyEnds() async throws {
    try await withVirtualTime { clock in
      let finished = CancellationFixtures.Counter()
      let caller = Task {
        try await withCancellationShield {
          try await clock.sleep(for: .seconds(5))
          finished.increment()
        }
      }
      try await clock.sleep(for: .seconds(1))
      caller.cancel()
      #expect(CancellationFixtures.isCancellation(await caller.result))
      #expect(clock.now.offset == .seconds(5), "the body slept its full 5 s despite the cancel at 1 s")
      #expect(finished.current == 1)
    }
  }
}
