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
    // A `run()` that ignored the shutdown would hang: the watchdog turns that into a failure.
    try await withScopeWatchdog(.seconds(30)) { try await run.value }
    #expect(!group.isAcceptingTasks)
    #expect(group.runningCount == 0)
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

/// The guide's server example, reduced to what a test can drive: request handlers spawn into a
/// group owned by the service group; graceful shutdown (SIGTERM in production) stops the server
/// first, then closes the group after the spawned work finished.
@Suite("PersistentGroupsAndCoordination guide")
struct PersistentGroupsGuideTests {
  struct FakeServer: Service {
    let background: PersistentTaskGroup
    let receiptsSent: PtgCounter
    let requestsServed: PtgEvents

    func handle(order: Int) throws {
      try background.addTask(name: "receipt \(order)") {
        await Task.yield()
        receiptsSent.increment()
      }
    }

    func run() async throws {
      for order in 0..<10 {
        try handle(order: order)
        requestsServed.signal()
      }
      try await gracefulShutdown()
    }
  }

  @Test func theServerExampleSendsEveryReceiptBeforeTheGroupStops() async throws {
    let background = try PersistentTaskGroup(name: "guide-background", maxConcurrency: 4)
    let receiptsSent = PtgCounter()
    let requestsServed = PtgEvents()
    let server = FakeServer(background: background, receiptsSent: receiptsSent, requestsServed: requestsServed)
    var configuration = ServiceGroupConfiguration(
      services: [.init(service: background), .init(service: server)],
      logger: Logger(label: "guide")
    )
    configuration.maximumGracefulShutdownDuration = .seconds(30)
    let serviceGroup = ServiceGroup(configuration: configuration)
    let run = Task { try await serviceGroup.run() }
    await requestsServed.wait(for: 10)
    await serviceGroup.triggerGracefulShutdown()
    try await run.value
    #expect(receiptsSent.count == 10)
    #expect(!background.isAcceptingTasks)
  }
}
