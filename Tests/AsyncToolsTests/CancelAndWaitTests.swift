import AsyncTools
import AsyncToolsTesting
import Testing

private typealias Gate = CancellationFixtures.Gate
private typealias Boom = CancellationFixtures.Boom
private func suspendUntilCancelled() async throws { try await CancellationFixtures.suspendUntilCancelled() }

@Suite("cancelAndWait")
struct CancelAndWaitTests {
  // MARK: Single task

  @Test func absorbsTheCancellationItCaused() async throws {
    let started = Gate()
    let task = Task<Int, any Error> {
      started.open()
      try await suspendUntilCancelled()
      return 1
    }
    await started.wait()
    let value = try await task.cancelAndWait()
    #expect(value == nil, "a task that ended with CancellationError yields nil")
    #expect(task.isCancelled)
  }

  @Test func returnsOnlyAfterTheTasksCleanupFinished() async throws {
    let events = CancellationFixtures.Recorder<String>()
    let cleanupStarted = Gate()
    let release = Gate()
    let task = Task {
      do {
        try await suspendUntilCancelled()
      } catch {
        cleanupStarted.open()
        await release.wait()
        events.record("cleanup finished")
        throw error
      }
    }
    let opener = Task {
      await cleanupStarted.wait()
      events.record("releasing cleanup")
      release.open()
    }
    try await task.cancelAndWait()
    events.record("cancelAndWait returned")
    await opener.value
    #expect(events.all == ["releasing cleanup", "cleanup finished", "cancelAndWait returned"])
  }

  @Test func rethrowsCancellationWhenTheCallerIsCancelledDuringTheWait() async throws {
    let events = CancellationFixtures.Recorder<String>()
    let targetCancelled = Gate()
    let release = Gate()
    let target = Task {
      do {
        try await suspendUntilCancelled()
      } catch {
        targetCancelled.open()
        await release.wait()
        // The caller's cancellation does not reach this task: its cleanup runs to the end.
        events.record("target cleanup finished")
        throw error
      }
    }
    let caller = Task {
      do {
        try await target.cancelAndWait()
        events.record("caller returned")
      } catch {
        events.record("caller threw \(type(of: error))")
        throw error
      }
    }
    await targetCancelled.wait()
    caller.cancel()
    release.open()
    let result = await caller.result
    #expect(CancellationFixtures.isCancellation(result))
    #expect(events.all == ["target cleanup finished", "caller threw CancellationError"])
  }

  @Test func rethrowsCancellationWhenTheCallerWasCancelledBeforeTheCall() async throws {
    let target = Task { try await suspendUntilCancelled() }
    let caller = Task {
      withUnsafeCurrentTask { $0?.cancel() }
      try await target.cancelAndWait()
    }
    let result = await caller.result
    #expect(CancellationFixtures.isCancellation(result))
    #expect(target.isCancelled)
  }

  @Test func propagatesARealErrorThrownDuringCancellation() async throws {
    let task = Task {
      do { try await suspendUntilCancelled() } catch { throw Boom(1) }
    }
    await #expect(throws: Boom(1)) { try await task.cancelAndWait() }
  }

  @Test func aRealErrorWinsOverTheCallersOwnCancellation() async throws {
    let target = Task {
      do { try await suspendUntilCancelled() } catch { throw Boom(2) }
    }
    let caller = Task {
      withUnsafeCurrentTask { $0?.cancel() }
      try await target.cancelAndWait()
    }
    await #expect(throws: Boom(2)) { try await caller.value }
  }

  @Test func aTaskThatSwallowsCancellationHasItsValueReturned() async throws {
    let started = Gate()
    let task = Task<Int, any Error> {
      started.open()
      do { try await suspendUntilCancelled() } catch {}
      return 42
    }
    await started.wait()
    let value = try await task.cancelAndWait()
    #expect(value == 42)
  }

  @Test func theCallersCancellationWinsOverAValueReturnedByTheTarget() async throws {
    let target = Task<Int, any Error> {
      do { try await suspendUntilCancelled() } catch {}
      return 42
    }
    let caller = Task<Int?, any Error> {
      withUnsafeCurrentTask { $0?.cancel() }
      return try await target.cancelAndWait()
    }
    #expect(CancellationFixtures.isCancellation(await caller.result))
    #expect(try await target.value == 42, "the target itself completed normally")
  }

  @Test func anAlreadyCompletedTaskHasItsValueReturned() async throws {
    let task = Task<Int, any Error> { 7 }
    _ = try await task.value
    #expect(try await task.cancelAndWait() == 7)
  }

  @Test func anAlreadyFailedTaskHasItsErrorReported() async throws {
    let task = Task<Int, any Error> { throw Boom(3) }
    _ = await task.result
    await #expect(throws: Boom(3)) { try await task.cancelAndWait() }
  }

  @Test func aTaskThatFailedWithAnErrorGroupHasTheGroupPropagated() async throws {
    let task = Task {
      do { try await suspendUntilCancelled() } catch {
        throw ErrorGroup("cleanup", [Boom(4), Boom(5)])
      }
    }
    let error = await #expect(throws: ErrorGroup.self) { try await task.cancelAndWait() }
    let booms = error.map { $0.errors(ofType: Boom.self) }
    #expect(booms == [Boom(4), Boom(5)])
  }

  @Test func aNonThrowingTaskHasItsValueReturned() async throws {
    let started = Gate()
    let task = Task<Int, Never> {
      started.open()
      await CancellationFixtures.suspendUntilCancelledQuietly()
      return Task.isCancelled ? 9 : 0
    }
    await started.wait()
    let value: Int = try await task.cancelAndWait()
    #expect(value == 9)
  }

  @Test func aNonThrowingTaskRethrowsTheCallersCancellation() async throws {
    let target = Task<Int, Never> {
      await CancellationFixtures.suspendUntilCancelledQuietly()
      return 1
    }
    let caller = Task<Int, any Error> {
      withUnsafeCurrentTask { $0?.cancel() }
      return try await target.cancelAndWait()
    }
    let result = await caller.result
    #expect(CancellationFixtures.isCancellation(result))
    #expect(await target.value == 1)
  }

  // MARK: Many tasks

  @Test func groupedFormCancelsEveryTaskAndCollectsRealErrorsInCollectionOrder() async throws {
    let started = CancellationFixtures.Counter()
    let allStarted = Gate()
    func worker(_ body: @escaping @Sendable () async throws -> Void) -> Task<Void, any Error> {
      Task {
        if started.increment() == 4 { allStarted.open() }
        try await body()
      }
    }
    let tasks = [
      worker { try await suspendUntilCancelled() },
      worker { do { try await suspendUntilCancelled() } catch { throw Boom(1) } },
      worker { do { try await suspendUntilCancelled() } catch {} },
      worker { do { try await suspendUntilCancelled() } catch { throw Boom(2) } },
    ]
    await allStarted.wait()
    let error = await #expect(throws: ErrorGroup.self) { try await cancelAndWait(tasks) }
    #expect(error?.errors.count == 2)
    let booms = error.map { $0.errors(ofType: Boom.self) }
    #expect(booms == [Boom(1), Boom(2)])
    #expect(tasks.allSatisfy { $0.isCancelled })
  }

  @Test func groupedFormReturnsNormallyWhenEveryTaskEndsByCancellationOrValue() async throws {
    let tasks: [Task<Int, any Error>] = [
      Task {
        try await suspendUntilCancelled(); return 0
      },
      Task {
        do { try await suspendUntilCancelled() } catch {}; return 1
      },
      Task { 2 },
    ]
    try await cancelAndWait(tasks)
    #expect(tasks.allSatisfy { $0.isCancelled })
  }

  @Test func groupedFormReportsErrorsOfTasksThatFailedBeforeTheCall() async throws {
    let failed = Task<Void, any Error> { throw Boom(6) }
    _ = await failed.result
    let running = Task<Void, any Error> { try await suspendUntilCancelled() }
    let error = await #expect(throws: ErrorGroup.self) { try await cancelAndWait([failed, running]) }
    let booms = error.map { $0.errors(ofType: Boom.self) }
    #expect(booms == [Boom(6)])
  }

  @Test func groupedFormRethrowsTheCallersCancellation() async throws {
    let tasks = [Task<Void, any Error> { try await suspendUntilCancelled() }]
    let caller = Task {
      withUnsafeCurrentTask { $0?.cancel() }
      try await cancelAndWait(tasks)
    }
    #expect(CancellationFixtures.isCancellation(await caller.result))
  }

  @Test func groupedFormRealErrorsWinOverTheCallersCancellation() async throws {
    let tasks = [Task<Void, any Error> { do { try await suspendUntilCancelled() } catch { throw Boom(7) } }]
    let caller = Task {
      withUnsafeCurrentTask { $0?.cancel() }
      try await cancelAndWait(tasks)
    }
    let error = await #expect(throws: ErrorGroup.self) { try await caller.value }
    let booms = error.map { $0.errors(ofType: Boom.self) }
    #expect(booms == [Boom(7)])
  }

  @Test func groupedFormAcceptsNonThrowingTasks() async throws {
    let ran = CancellationFixtures.Counter()
    let tasks = (0..<3).map { _ in
      Task<Void, Never> {
        await CancellationFixtures.suspendUntilCancelledQuietly()
        ran.increment()
      }
    }
    try await cancelAndWait(tasks)
    #expect(ran.current == 3)
  }

  @Test func groupedFormWithAnEmptyCollectionIsANoOpEvenForACancelledCaller() async throws {
    let caller = Task {
      withUnsafeCurrentTask { $0?.cancel() }
      try await cancelAndWait([Task<Void, any Error>]())
    }
    try await caller.value
  }
}

// MARK: - Virtual time

@Suite("cancelAndWait in virtual time")
struct CancelAndWaitVirtualTimeTests {
  @Test func waitsForACleanupThatTakesTime() async throws {
    try await withVirtualTime { clock in
      let task = Task {
        do { try await clock.sleep(for: .seconds(100)) } catch {
          try await withCancellationShield { try await clock.sleep(for: .seconds(2)) }
          throw error
        }
      }
      try await clock.sleep(for: .seconds(1))
      #expect(try await task.cancelAndWait() == nil)
      #expect(clock.now.offset == .seconds(3))
    }
  }

  @Test func groupedFormRunsAllCleanupsConcurrently() async throws {
    try await withVirtualTime { clock in
      let tasks = (1...3).map { index in
        Task {
          do { try await clock.sleep(for: .seconds(100)) } catch {
            try await withCancellationShield { try await clock.sleep(for: .seconds(index)) }
            throw error
          }
        }
      }
      try await clock.sleep(for: .seconds(1))
      try await cancelAndWait(tasks)
      #expect(clock.now.offset == .seconds(4), "1 s + the slowest cleanup (3 s), not 1 + 1 + 2 + 3")
    }
  }

  @Test func groupedFormCancelsEveryTaskBeforeWaitingForAny() async throws {
    try await withVirtualTime { clock in
      let cancelled = CancellationFixtures.Counter()
      let allCancelled = Gate()
      let tasks = (0..<3).map { _ in
        Task {
          do { try await clock.sleep(for: .seconds(100)) } catch {
            if cancelled.increment() == 3 { allCancelled.open() }
            // Sequential cancel-then-wait would deadlock here; the virtual driver reports that.
            await allCancelled.wait()
            throw error
          }
        }
      }
      try await clock.sleep(for: .seconds(1))
      try await cancelAndWait(tasks)
      #expect(cancelled.current == 3)
    }
  }
}
