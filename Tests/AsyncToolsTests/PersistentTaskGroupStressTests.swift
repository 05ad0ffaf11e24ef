import AsyncTools
import AsyncToolsTestSupport
import Testing

/// Random add / fail / cancel / shutdown / close interleavings through one group per iteration.
/// Invariants, against the planned behaviours (not against what the library says elsewhere): the error handler got
/// exactly the failures the tasks threw; every handle's result is one its task's plan allows (its own value, its own
/// error, or `CancellationError` only if it was cancelled, the group was shut down, or it never started; a task
/// planned to fail that ran must fail with its own error); every started operation's cleanup done exactly once
/// before the group's end returns; no task outlives the group; nothing hangs.
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

  /// Whether a handle's result is one the task's plan allows.
  private static func allows(
    _ result: Result<Int, any Error>, id: Int, behaviour: Behaviour, ran: Bool, threw: Bool, cancelled: Bool,
    released: Bool
  ) -> Bool {
    switch result {
    case .success(let value):
      guard value == id, ran else { return false }
      switch behaviour {
      case .succeed, .yieldThenSucceed: return true
      case .waitForCancellation, .failDuringCleanup: return released
      case .fail: return false
      }
    case .failure(let error as PtgFailure):
      return error.id == id && threw && (behaviour == .fail || behaviour == .failDuringCleanup)
    case .failure(is CancellationError):
      // A task planned to fail that ran must fail with its own error. A close that released the waiters runs every
      // task to its end (queued ones too), so only a victim's cancel may end one with `CancellationError`.
      if behaviour == .fail && ran { return false }
      return cancelled || !released
    case .failure:
      return false
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
    let ran = PtgRecorder<Int>()
    let threw = PtgRecorder<Int>()
    var handles: [TaskHandle<Int>] = []
    var behaviours: [Behaviour] = []
    var victims: Set<Int> = []
    for i in 0..<Int.random(in: 1...24, using: &rng) {
      let behaviour = Behaviour.allCases.randomElement(using: &rng)!
      behaviours.append(behaviour)
      handles.append(
        try group.addTask {
          started.increment()
          ran.append(i)
          defer { cleanedUp.increment() }
          switch behaviour {
          case .succeed:
            return i
          case .fail:
            threw.append(i)
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
              threw.append(i)
              throw PtgFailure(i)
            }
          }
        })
      if Int.random(in: 0..<4, using: &rng) == 0, let victim = handles.indices.randomElement(using: &rng) {
        victims.insert(victim)
        handles[victim].cancel()
      }
      if Int.random(in: 0..<6, using: &rng) == 0 { await Task.yield() }
    }

    let ending = Ending.allCases.randomElement(using: &rng)!
    switch ending {
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

    #expect(group.liveTaskCount == 0, "a task outlived the group's end (\(Stress.replay(seed: seed, iterations: 1)))")
    #expect(group.runningCount == 0 && group.queuedCount == 0, "seed \(seed)")
    #expect(started.count == cleanedUp.count, "a cleanup had not finished when the group ended (\(Stress.replay(seed: seed, iterations: 1)))")
    let context = Stress.replay(seed: seed, iterations: 1)
    let ranIDs = Set(ran.values)
    let threwIDs = threw.values
    #expect(reported.values.sorted() == threwIDs.sorted(), "the handler's reports ≠ the failures thrown (\(context))")
    var failures: [Int] = []
    for (id, handle) in handles.enumerated() {
      let result = await handle.result
      if case .failure(let error) = result, !(error is CancellationError) {
        failures.append((error as? PtgFailure)?.id ?? -1)
      }
      let allowed = Self.allows(
        result, id: id, behaviour: behaviours[id], ran: ranIDs.contains(id), threw: threwIDs.contains(id),
        cancelled: victims.contains(id), released: ending == .closeAfterReleasingWaiters)
      #expect(allowed, "task \(id) (\(behaviours[id]), \(ending)) ended with \(result) (\(context))")
    }
    #expect(failures.sorted() == threwIDs.sorted(), "the handles' failures ≠ the failures thrown (\(context))")
    #expect(throws: AsyncToolsError.self, "\(Stress.replay(seed: seed, iterations: 1))") { try group.addTask { 0 } }
  }
}
