@testable import AsyncToolsServer
import Testing
import UnixSignals

/// The worker-side stop state machine, on its own.
@Suite("WorkerCore")
struct WorkerCoreTests {
  private func core(runToCompletion: Bool = false, onReady: @escaping @Sendable () -> Void = {}) -> WorkerCore {
    WorkerCore(defaultSignal: .sigterm, runToCompletion: runToCompletion, onReady: onReady)
  }

  @Test func waitingMarksTheWorkerReadyOnce() async {
    let probe = Probe()
    let core = core { probe.record("ready") }
    let waiter = Task { await core.waitForStop() }
    await probe.wait(for: 1, "ready")
    core.requestStop(.sigint)
    #expect(await waiter.value == .sigint)
    #expect(await core.waitForStop() == .sigint)  // again: the same signal, at once
    #expect(probe.events == ["ready"])
  }

  @Test func aStopDuringStartupCancelsTheAttachedTask() async throws {
    // Its task sleeps for an hour unless the stop cancels it: the watchdog fails the test instead of hanging.
    try await withWatchdog {
      let core = core()
      let task = Task {
        do {
          try await Task.sleep(for: .seconds(3600))
        } catch {}
      }
      core.attach(task)
      core.requestStop(.sigterm)
      await task.value
      #expect(task.isCancelled)
      #expect(core.wasCancelledByServer)
      #expect(await core.waitForStop() == .sigterm)
    }
  }

  @Test func aStopBeforeTheTaskIsAttachedCancelsItOnAttach() async throws {
    // Its task sleeps for an hour unless the stop cancels it: the watchdog fails the test instead of hanging.
    try await withWatchdog {
      let core = core()
      core.requestStop(.sigterm)
      let task = Task { _ = try? await Task.sleep(for: .seconds(3600)) }
      core.attach(task)
      await task.value
      #expect(task.isCancelled)
    }
  }

  @Test func aStopAfterMarkReadyIsDeliveredNotACancel() async {
    // runServiceGroup marks the worker ready before its stop-waiting child task exists: a stop in
    // between must reach that child later, and must not cancel the body as a stop during start-up.
    let probe = Probe()
    let core = core { probe.record("ready") }
    let task = Task {}
    core.attach(task)
    core.markReady()
    core.markReady()  // once
    core.requestStop(.sigint)
    #expect(!core.wasCancelledByServer)
    #expect(await core.waitForStop() == .sigint)
    #expect(probe.events == ["ready"])
  }

  @Test func markReadyDoesNothingUnderRunToCompletion() async {
    let probe = Probe()
    let core = core(runToCompletion: true) { probe.record("ready") }
    core.markReady()
    #expect(probe.events.isEmpty)
    #expect(await core.waitForStop() == .sigterm)
  }

  @Test func aSecondStopCancelsAReadyWorker() async throws {
    // Its task sleeps for an hour unless the stop cancels it: the watchdog fails the test instead of hanging.
    try await withWatchdog {
      let probe = Probe()
      let core = core { probe.record("ready") }
      let task = Task {
        _ = await core.waitForStop()
        probe.record("tearing down")
        do { try await Task.sleep(for: .seconds(3600)) } catch { probe.record("cancelled") }
      }
      core.attach(task)
      await probe.wait(for: 1, "ready")
      core.requestStop(.sigint)
      await probe.wait(for: 1, "tearing down")
      #expect(!task.isCancelled)
      core.requestStop(.sigint)
      await task.value
      #expect(probe.events == ["ready", "tearing down", "cancelled"])
    }
  }

  @Test func aCancelledWaitReturnsTheDefaultSignal() async {
    let probe = Probe()
    let core = core { probe.record("ready") }
    let waiter = Task { await core.waitForStop() }
    await probe.wait(for: 1, "ready")
    waiter.cancel()
    #expect(await waiter.value == .sigterm)
  }

  @Test func runToCompletionReturnsAtOnceWithoutBecomingReady() async {
    let probe = Probe()
    let core = core(runToCompletion: true) { probe.record("ready") }
    #expect(await core.waitForStop() == .sigterm)
    #expect(probe.events.isEmpty)
  }
}

