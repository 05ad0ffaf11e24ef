import AsyncTools
import AsyncToolsServiceLifecycle
import Logging
import ServiceLifecycle
import Testing

@Suite("PersistentTaskGroup as a Service")
struct PersistentTaskGroupServiceTests {
  private static let logger = Logger(label: "PersistentTaskGroupServiceTests")

  @Test func gracefulShutdownOfTheServiceGroupClosesTheGroupAndLetsItsTasksFinish() async throws {
    let group = PersistentTaskGroup(name: "service-graceful")
    let gate = PtgGate()
    let cancelled = PtgCounter()
    let handle = try group.addTask { () async throws -> Int in
      do {
        try await gate.wait()
      } catch {
        cancelled.increment()
        throw error
      }
      return 1
    }
    let serviceGroup = ServiceGroup(configuration: .init(services: [group], logger: Self.logger))
    let run = Task { try await serviceGroup.run() }
    await serviceGroup.triggerGracefulShutdown()
    await ptgWaitUntil("the group stops accepting tasks") { !group.isAcceptingTasks }
    let error = #expect(throws: AsyncToolsError.self) { try group.addTask {} }
    #expect(error?.code == .shuttingDown)
    gate.open()
    try await run.value
    #expect(try await handle.value == 1)
    #expect(cancelled.count == 0, "graceful shutdown cancelled a task instead of waiting for it")
    #expect(group.runningCount == 0)
  }

  @Test func cancellingTheServiceGroupShutsTheGroupDownAndAwaitsItsTasks() async throws {
    let group = PersistentTaskGroup(name: "service-cancel")
    let started = PtgEvents()
    let cleanedUp = PtgCounter()
    let handle = try group.addTask {
      started.signal()
      defer { cleanedUp.increment() }
      try await PtgGate().wait()
    }
    let serviceGroup = ServiceGroup(configuration: .init(services: [group], logger: Self.logger))
    let run = Task { try await serviceGroup.run() }
    await started.wait(for: 1)
    run.cancel()
    _ = await run.result
    #expect(cleanedUp.count == 1)
    await #expect(throws: CancellationError.self) { try await handle.value }
    #expect(!group.isAcceptingTasks)
  }

  @Test func runReturnsWhenTheOwnerShutsTheGroupDownDirectly() async throws {
    let group = PersistentTaskGroup(name: "service-direct")
    let run = Task { try await group.run() }
    await group.shutdown()
    try await run.value
  }

  @Test func runOutsideAServiceGroupEndsTheGroupWhenCancelled() async throws {
    let group = PersistentTaskGroup(name: "service-outside")
    let started = PtgEvents()
    let handle = try group.addTask {
      started.signal()
      try await PtgGate().wait()
    }
    await started.wait(for: 1)
    let run = Task { try await group.run() }
    run.cancel()
    try await run.value
    await #expect(throws: CancellationError.self) { try await handle.value }
  }
}
