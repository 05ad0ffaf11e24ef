import AsyncTools
import AsyncAlgorithms
import CAsyncToolsShims
import Synchronization
import Testing

@testable import AsyncToolsTesting

/// A hook that another library might install: it forwards every job to the runtime.
private let passThroughHook: EnqueueHook = { job, original in original(job) }

@Suite struct VirtualTimeIsolationTests {
  @Test func refusesWhenAnotherLibraryOwnsTheHook() async throws {
    await virtualTimeScopeLock.lock()
    defer { virtualTimeScopeLock.unlock() }
    let foreign = unsafeBitCast(passThroughHook, to: UnsafeMutableRawPointer.self)
    #expect(asynctools_enqueue_global_hook_cas(nil, foreign, nil), "the hook should be free")
    defer { _ = asynctools_enqueue_global_hook_cas(foreign, nil, nil) }
    let error = await #expect(throws: VirtualTimeError.self) {
      try await runVirtualTimeScope(advancing: .automatic, autojumpThreshold: .zero, deadlockTimeout: .seconds(1)) {
        _ in
      }
    }
    #expect(error?.code == .hookUnavailable)
    #expect(asynctools_enqueue_global_hook_load() == foreign, "the foreign hook must be left in place")
  }

  @Test func hookIsRestoredAfterTheScope() async throws {
    try await withVirtualTime { clock in try await clock.sleep(for: .seconds(1)) }
    // Another scope may have started meanwhile; take the lock to look at a quiet moment.
    await virtualTimeScopeLock.lock()
    defer { virtualTimeScopeLock.unlock() }
    #expect(asynctools_enqueue_global_hook_load() == nil)
  }

  @Test func workOutsideTheScopeIsNotCapturedOrStalled() async throws {
    // A task of another test, running while a scope is active, keeps running on the normal
    // executor — never on the driver's thread — and can still wake a task inside the scope.
    let capturedSteps = Locked(0)
    let (signal, signalled) = AsyncStream<Void>.makeStream()
    let scopeActive = Atomic<Bool>(false)
    let outside = Task.detached {
      while !scopeActive.load(ordering: .acquiring) { await Task.yield() }
      for _ in 0..<1_000 {
        if asynctools_thread_marker_get() != nil { capturedSteps.withLock { $0 += 1 } }
        await Task.yield()
      }
      signalled.yield()
    }
    let end = try await withVirtualTime(deadlockTimeout: .seconds(20)) { clock in
      scopeActive.store(true, ordering: .releasing)
      for await _ in signal { break }  // woken from the outside task's thread
      try await clock.sleep(for: .seconds(60))
      return clock.now.offset
    }
    await outside.value
    #expect(end == .seconds(60))
    #expect(capturedSteps.withLock { $0 } == 0, "outside work ran on the virtual-time driver")
  }

  @Test func leftoverSleepersAreCancelledWhenTheScopeEnds() async throws {
    let leftover = try await withVirtualTime { clock in
      Task { try await clock.sleep(for: .seconds(1_000)) }
    }
    await #expect(throws: CancellationError.self) { try await leftover.value }
  }

  @Test func callerCancellationCancelsTheBody() async throws {
    let started = AsyncStream<Void>.makeStream()
    let task = Task {
      try await withVirtualTime(deadlockTimeout: .seconds(20)) { clock in
        started.continuation.yield()
        // Sleeps "forever" in virtual time: with nothing else to do, the clock jumps there, so
        // wait on a stream nobody feeds instead, which only cancellation can end.
        let (never, _) = AsyncStream<Void>.makeStream()
        for await _ in never {}
        try Task.checkCancellation()
      }
    }
    for await _ in started.stream { break }
    task.cancel()
    await #expect(throws: CancellationError.self) { try await task.value }
  }

  @Test func worksWithAsyncAlgorithmsTimerAndDebounce() async throws {
    let (ticks, debounced) = try await withVirtualTime { clock in
      var ticks: [Duration] = []
      for await instant in AsyncTimerSequence(interval: .seconds(2), clock: clock).prefix(3) {
        ticks.append(instant.offset)
      }
      let (input, feed) = AsyncStream<Int>.makeStream()
      let feeder = Task {
        for value in 1...5 {
          feed.yield(value)
          try await clock.sleep(for: .milliseconds(value == 3 ? 500 : 100))
        }
        feed.finish()
      }
      var out: [Int] = []
      for await value in input.debounce(for: .milliseconds(300), clock: clock) { out.append(value) }
      try await feeder.value
      return (ticks, out)
    }
    #expect(ticks == [.seconds(2), .seconds(4), .seconds(6)])
    #expect(debounced == [3, 5])
  }

  @Test func hundredTasksHundredSleepsEach() async throws {
    let end = try await withVirtualTime { clock in
      await withDiscardingTaskGroup { group in
        for task in 0..<100 {
          group.addTask {
            for _ in 0..<100 { try? await clock.sleep(for: .milliseconds(task + 1)) }
          }
        }
      }
      return clock.now.offset
    }
    #expect(end == .milliseconds(100 * 100))
  }
}
