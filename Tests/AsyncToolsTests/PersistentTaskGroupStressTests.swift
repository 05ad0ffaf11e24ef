import AsyncTools
import AsyncToolsTestSupport
import Testing

/// Random add / fail / cancel / shutdown / close interleavings through one group per iteration.
/// Invariants: every failure reported exactly once, every started operation's cleanup done exactly
/// once before the group's end returns, no task outlives the group, nothing hangs.
@Suite("PersistentTaskGroup stress")
struct PersistentTaskGroupStressTests {
  enum Behaviour: CaseIterable {
    case succeed, fail, yieldThenSucceed, waitForCancellation, failDuringCleanup
  }

  enum Ending: CaseIterable {
    case shutdown, closeAfterReleasingWaiters, cancelledClose, shutdownWhileClosing
  }

  @Test func randomInterleavingsKeepTheInvariants() async throws {
    let iterations = Stress.iterations(default: 150)
    let baseSeed = Stress.seed()
    for iteration in 0..<iterations {
      let seed = baseSeed &+ UInt64(iteration)
      var rng = PtgRandom(seed: seed)
      try await runOnce(seed: seed, rng: &rng)
    }
  }

  private func runOnce(seed: UInt64, rng: inout PtgRandom) async throws {
    let reported = PtgRecorder<Int>()
    let handler: PersistentTaskGroup.ErrorHandler = { error, _ in
      reported.append((error as? PtgFailure)?.id ?? -1)
    }
    let group =
      Bool.random(using: &rng)
      ? PersistentTaskGroup(errorHandler: handler)
      : try PersistentTaskGroup(maxConcurrency: Int.random(in: 1...4, using: &rng), errorHandler: handler)
    let started = PtgCounter()
    let cleanedUp = PtgCounter()
    let release = PtgGate()
    var handles: [TaskHandle<Int>] = []
    for i in 0..<Int.random(in: 1...24, using: &rng) {
      let behaviour = Behaviour.allCases.randomElement(using: &rng)!
      handles.append(
        try group.addTask {
          started.increment()
          defer { cleanedUp.increment() }
          switch behaviour {
          case .succeed:
            return i
          case .fail:
            throw PtgFailure(i)
          case .yieldThenSucceed:
            for _ in 0..<3 { await Task.yield() }
            return i
          case .waitForCancellation:
            try await release.wait()
            return i
          case .failDuringCleanup:
            do {
              try await release.wait()
              return i
            } catch {
              await Task.yield()
              throw PtgFailure(i)
            }
          }
        })
      if Int.random(in: 0..<4, using: &rng) == 0, let victim = handles.randomElement(using: &rng) {
        victim.cancel()
      }
      if Int.random(in: 0..<6, using: &rng) == 0 { await Task.yield() }
    }

    switch Ending.allCases.randomElement(using: &rng)! {
    case .shutdown:
      await group.shutdown()
    case .closeAfterReleasingWaiters:
      release.open()
      await group.close()
    case .cancelledClose:
      let close = Task { await group.close() }
      close.cancel()
      await close.value
    case .shutdownWhileClosing:
      let close = Task { await group.close() }
      await group.shutdown()
      await close.value
    }

    #expect(group.liveTaskCount == 0, "a task outlived the group's end (seed \(seed))")
    #expect(group.runningCount == 0 && group.queuedCount == 0, "seed \(seed)")
    #expect(started.count == cleanedUp.count, "a cleanup had not finished when the group ended (seed \(seed))")
    var failures: [Int] = []
    for handle in handles {
      if case .failure(let error) = await handle.result, !(error is CancellationError) {
        failures.append((error as? PtgFailure)?.id ?? -1)
      }
    }
    #expect(reported.values.sorted() == failures.sorted(), "failures not reported exactly once (seed \(seed))")
    #expect(throws: AsyncToolsError.self, "seed \(seed)") { try group.addTask { 0 } }
  }
}
