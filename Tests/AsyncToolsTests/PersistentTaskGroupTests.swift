import AsyncTools
import AsyncToolsTesting
import Synchronization
import Testing

@Suite("PersistentTaskGroup")
struct PersistentTaskGroupTests {
  // MARK: Handles

  @Test func handleReturnsTheTaskValue() async throws {
    let group = PersistentTaskGroup()
    let handle = try group.addTask { 42 }
    #expect(try await handle.value == 42)
    await group.shutdown()
  }

  @Test func handleAwaitedAfterTheTaskFailedThrowsItsError() async throws {
    let failed = PtgEvents()
    let group = PersistentTaskGroup { _, _ in failed.signal() }
    let handle = try group.addTask { () throws -> Int in throw PtgFailure(7) }
    await failed.wait(for: 1)
    await ptgWaitUntil("the failed task has finished") { group.runningCount == 0 }
    await #expect(throws: PtgFailure(7)) { try await handle.value }
    // A second await sees the same outcome: the handle, not the group, keeps it.
    guard case .failure(let error) = await handle.result else {
      Issue.record("expected a failure")
      return
    }
    #expect(error as? PtgFailure == PtgFailure(7))
    await group.shutdown()
  }

  @Test func handleCancelCancelsOnlyThatTask() async throws {
    let group = PersistentTaskGroup()
    let gate = PtgGate()
    let cancelled = try group.addTask { try await gate.wait() }
    let other = try group.addTask { try await gate.wait() }
    cancelled.cancel()
    await #expect(throws: CancellationError.self) { try await cancelled.value }
    #expect(!other.isCancelled)
    gate.open()
    try await other.value
    await group.shutdown()
  }

  // MARK: Error handler

  @Test func errorHandlerIsCalledExactlyOncePerFailureAndNeverForCancellation() async throws {
    let reports = PtgRecorder<String>()
    let group = PersistentTaskGroup { error, name in
      reports.append("\(name ?? "?"):\((error as? PtgFailure)?.id ?? -1)")
    }
    let gate = PtgGate()
    var cancellable: [TaskHandle<Void>] = []
    for i in 0..<20 {
      if i.isMultiple(of: 2) {
        try group.addTask(name: "t\(i)") { throw PtgFailure(i) }
      } else {
        cancellable.append(try group.addTask(name: "t\(i)") { try await gate.wait() })
      }
    }
    try group.addTask(name: "selfCancel") { throw CancellationError() }
    for handle in cancellable { handle.cancel() }
    await group.close()
    let expected = (0..<20).filter { $0.isMultiple(of: 2) }.map { "t\($0):\($0)" }
    #expect(reports.values.sorted() == expected.sorted())
  }

  // MARK: Shutdown and close

  @Test func shutdownWaitsForCleanupsThatAreInProgress() async throws {
    let group = PersistentTaskGroup()
    let never = PtgGate()
    let cleanupGate = PtgGate()
    let inCleanup = PtgEvents()
    let cleanedUp = PtgCounter()
    let count = 10
    for _ in 0..<count {
      try group.addTask {
        do {
          try await never.wait()
        } catch {
          inCleanup.signal()
          await cleanupGate.waitIgnoringCancellation()  // an async cleanup, mid-way when shutdown starts
          cleanedUp.increment()
        }
      }
    }
    let shutdownReturned = PtgGate()
    let shutdown = Task {
      await group.shutdown()
      shutdownReturned.open()
    }
    await inCleanup.wait(for: count)
    #expect(!shutdownReturned.isOpen, "shutdown() returned while cleanups were still running")
    cleanupGate.open()
    await shutdown.value
    #expect(cleanedUp.count == count)
    #expect(group.runningCount == 0)
  }

  @Test func shutdownCancelsQueuedTasksWhichNeverRun() async throws {
    let group = try PersistentTaskGroup(maxConcurrency: 1)
    let ran = PtgCounter()
    let running = try group.addTask { try await PtgGate().wait() }
    let queued = try (0..<5).map { _ in try group.addTask { ran.increment() } }
    #expect(group.queuedCount == 5)
    await group.shutdown()
    await #expect(throws: CancellationError.self) { try await running.value }
    for handle in queued {
      await #expect(throws: CancellationError.self) { try await handle.value }
    }
    #expect(ran.count == 0)
    #expect(group.queuedCount == 0)
  }

  @Test func closeWaitsForRunningAndQueuedTasksAndRefusesNewOnes() async throws {
    let group = try PersistentTaskGroup(maxConcurrency: 1)
    let gate = PtgGate()
    let order = PtgRecorder<Int>()
    try group.addTask {
      try await gate.wait()
      order.append(0)
    }
    try group.addTask { order.append(1) }
    let closeReturned = PtgGate()
    let close = Task {
      await group.close()
      closeReturned.open()
    }
    await ptgWaitUntil("the group stops accepting tasks") { !group.isAcceptingTasks }
    #expect(throws: AsyncToolsError.self) { try group.addTask {} }
    #expect(!closeReturned.isOpen)
    gate.open()
    await close.value
    #expect(order.values == [0, 1], "close() cancelled or dropped work instead of waiting for it")
  }

  @Test func closeEscalatesToShutdownWhenTheCallerIsCancelled() async throws {
    let group = PersistentTaskGroup()
    let started = PtgEvents()
    let handle = try group.addTask {
      started.signal()
      try await PtgGate().wait()
    }
    await started.wait(for: 1)
    let close = Task { await group.close() }
    close.cancel()
    await close.value
    await #expect(throws: CancellationError.self) { try await handle.value }
    #expect(group.runningCount == 0)
  }

  @Test func closeWithATimeoutCancelsWhatIsLeftAfterTheGracePeriodAndWaitsForIt() async throws {
    try await withVirtualTime { clock in
      let group = PersistentTaskGroup()
      let quick = try group.addTask {
        try await clock.sleep(for: .seconds(2))
        return clock.now.offset
      }
      let slow = try group.addTask { () async throws -> Duration in
        do {
          try await clock.sleep(for: .seconds(100))
        } catch {
          // A one-second async cleanup that the cancellation cannot cut short.
          await Task.detached { try? await clock.sleep(for: .seconds(1)) }.value
          throw error
        }
        return clock.now.offset
      }
      let finishedInTime = try await group.close(timeout: .seconds(5), clock: clock)
      #expect(!finishedInTime)
      #expect(clock.now.offset == .seconds(6), "close() must return right after the cleanup, at 5 s + 1 s")
      #expect(try await quick.value == .seconds(2))
      await #expect(throws: CancellationError.self) { try await slow.value }
    }
  }

  @Test func closeWithATimeoutReturnsAsSoonAsTheTasksFinish() async throws {
    try await withVirtualTime { clock in
      let group = PersistentTaskGroup()
      try group.addTask { try await clock.sleep(for: .seconds(2)) }
      let finishedInTime = try await group.close(timeout: .seconds(10), clock: clock)
      #expect(finishedInTime)
      #expect(clock.now.offset == .seconds(2))
    }
  }

  @Test(arguments: [Duration.zero, .seconds(-1)])
  func nonPositiveCloseTimeoutIsInvalidAndClosesNothing(timeout: Duration) async throws {
    let group = PersistentTaskGroup()
    let error = await #expect(throws: AsyncToolsError.self) { try await group.close(timeout: timeout) }
    #expect(error?.code == .invalidArgument)
    #expect(group.isAcceptingTasks)
    await group.shutdown()
  }

  @Test(arguments: [PtgPhase.closing, .shutDown])
  func addingToAnEndingGroupThrowsShuttingDown(phase: PtgPhase) async throws {
    let group = PersistentTaskGroup()
    switch phase {
    case .closing: await group.close()
    case .shutDown: await group.shutdown()
    }
    let error = #expect(throws: AsyncToolsError.self) { try group.addTask { 1 } }
    #expect(error?.code == .shuttingDown)
  }

  @Test func addingFromInsideATaskWhileClosingThrowsShuttingDown() async throws {
    let group = PersistentTaskGroup()
    let gate = PtgGate()
    let inner = try group.addTask { () async throws -> Bool in
      try await gate.wait()
      do {
        try PersistentTaskGroup.current?.addTask {}
        return false
      } catch let error as AsyncToolsError {
        return error.code == .shuttingDown
      }
    }
    let close = Task { await group.close() }
    await ptgWaitUntil("the group stops accepting tasks") { !group.isAcceptingTasks }
    gate.open()
    #expect(try await inner.value)
    await close.value
  }

  // MARK: maxConcurrency

  @Test func queuedTasksAreAdmittedInFIFOOrder() async throws {
    let group = try PersistentTaskGroup(maxConcurrency: 2)
    let first = PtgGate()
    let second = PtgGate()
    let order = PtgRecorder<Int>()
    try group.addTask { try await first.wait() }
    try group.addTask { try await second.wait() }
    for i in 1...10 {
      try group.addTask { order.append(i) }
    }
    #expect(group.runningCount == 2)
    #expect(group.queuedCount == 10)
    // One slot frees up; the other stays taken, so queued tasks run strictly one after another.
    first.open()
    await ptgWaitUntil("all queued tasks ran") { order.values.count == 10 }
    #expect(order.values == Array(1...10))
    second.open()
    await group.close()
  }

  @Test func neverMoreThanMaxConcurrencyTasksRunAtOnce() async throws {
    let group = try PersistentTaskGroup(maxConcurrency: 3)
    let current = Atomic<Int>(0)
    let peak = Atomic<Int>(0)
    let gate = PtgGate()
    for _ in 0..<200 {
      try group.addTask {
        let now = current.add(1, ordering: .relaxed).newValue
        peak.max(now, ordering: .relaxed)
        await gate.waitIgnoringCancellation()
        await Task.yield()
        current.subtract(1, ordering: .relaxed)
      }
    }
    // The first tasks hold their slots until the gate opens: exactly three may be running, the rest queued.
    await ptgWaitUntil("three tasks run") { peak.load(ordering: .relaxed) >= 3 }
    #expect(group.runningCount == 3)
    #expect(group.queuedCount == 197)
    gate.open()
    await group.close()
    #expect(peak.load(ordering: .relaxed) == 3)
  }

  @Test func aQueuedTaskCancelledBeforeAdmissionNeverRuns() async throws {
    let group = try PersistentTaskGroup(maxConcurrency: 1)
    let gate = PtgGate()
    let ran = PtgCounter()
    try group.addTask { try await gate.wait() }
    let queued = try group.addTask { ran.increment() }
    let next = try group.addTask { 5 }
    #expect(group.queuedCount == 2)
    queued.cancel()
    await #expect(throws: CancellationError.self) { try await queued.value }
    #expect(group.queuedCount == 1)
    gate.open()
    #expect(try await next.value == 5)
    await group.close()
    #expect(ran.count == 0)
  }

  @Test func aQueuedTaskCancelledWhileASlotFreesUpIsNeverAdmitted() async throws {
    // The cancelled task's body may not even have started when the slot frees up; it must still
    // be skipped. Repeated, because the interleaving differs from run to run.
    for _ in 0..<200 {
      let group = try PersistentTaskGroup(maxConcurrency: 1)
      let gate = PtgGate()
      let ran = PtgCounter()
      try group.addTask { try await gate.wait() }
      let queued = try group.addTask { ran.increment() }
      queued.cancel()
      gate.open()
      await #expect(throws: CancellationError.self) { try await queued.value }
      await group.close()
      #expect(ran.count == 0)
    }
  }

  @Test(arguments: [0, -1])
  func nonPositiveMaxConcurrencyIsInvalid(limit: Int) {
    let error = #expect(throws: AsyncToolsError.self) { try PersistentTaskGroup(maxConcurrency: limit) }
    #expect(error?.code == .invalidArgument)
  }

  // MARK: current and live groups

  @Test func currentIsTheGroupInsideItsTasksAndNilOutside() async throws {
    let group = PersistentTaskGroup()
    #expect(PersistentTaskGroup.current == nil)
    let inside = try group.addTask { PersistentTaskGroup.current === group }
    #expect(try await inside.value)
    await group.shutdown()
  }

  @Test func liveGroupsListsGroupsWithCountsAndForgetsThem() async throws {
    let name = "live-\(UInt64.random(in: 0 ... .max))"
    let group = PersistentTaskGroup(name: name)
    let gate = PtgGate()
    try group.addTask { try await gate.wait() }
    #expect(
      PersistentTaskGroup.liveGroups().contains(
        .init(name: name, runningCount: 1, queuedCount: 0, isAcceptingTasks: true)))
    gate.open()
    await group.close()
    #expect(!PersistentTaskGroup.liveGroups().contains { $0.name == name }, "a closed group is still listed")

    let droppedName = name + "-dropped"
    weak var weakGroup: PersistentTaskGroup?
    do {
      let dropped = PersistentTaskGroup(name: droppedName)
      weakGroup = dropped
      #expect(PersistentTaskGroup.all.contains { $0 === dropped })
    }
    #expect(weakGroup == nil, "listing kept the group alive")
    #expect(!PersistentTaskGroup.liveGroups().contains { $0.name == droppedName })
  }

  @Test func releasingTheGroupWithoutShutdownCancelsItsTasks() async throws {
    let started = PtgEvents()
    let handle: TaskHandle<Void> = try {
      let group = PersistentTaskGroup()
      return try group.addTask {
        started.signal()
        try await PtgGate().wait()
      }
    }()
    await started.wait(for: 1)
    await #expect(throws: CancellationError.self) { try await handle.value }
  }

  // MARK: Leaks

  @Test func manyTasksLeaveNoStateAndReleaseEverythingTheyCaptured() async throws {
    // 100,000 tasks; 1,000,000 when ASYNCTOOLS_STRESS_ITERATIONS is set (the long CI pass).
    let count = ptgStressIterations(default: 0) > 0 ? 1_000_000 : 100_000
    let group = PersistentTaskGroup { _, _ in }
    let released = PtgCounter()
    let ran = PtgCounter()
    for i in 0..<count {
      let captured = PtgDeinitCounted(released)
      try group.addTask {
        withExtendedLifetime(captured) { _ = ran.increment() }
        if i % 1000 == 999 { throw PtgFailure(i) }  // failures must not be retained either
      }
    }
    await group.close()
    #expect(ran.count == count)
    #expect(group.liveTaskCount == 0)
    #expect(group.runningCount == 0)
    #expect(group.storedStateIsEmpty, "the group kept per-task state after its tasks ended")
    await ptgWaitUntil("every captured object is released") { released.count == count }
  }
}

enum PtgPhase: Sendable, CaseIterable {
  case closing, shutDown
}
