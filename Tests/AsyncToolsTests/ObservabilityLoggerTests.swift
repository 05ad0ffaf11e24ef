import AsyncTools
import AsyncToolsTesting
import InMemoryLogging
import Logging
import Testing

private struct Boom: Error {}

/// A logger that keeps what it logs, carrying the caller's metadata (a request id).
private func requestLogger() -> (Logger, InMemoryLogHandler) {
  let handler = InMemoryLogHandler()
  var logger = Logger(label: "test", factory: { _ in handler })
  logger[metadataKey: "request"] = "r-42"
  return (logger, handler)
}

@Suite("Injected loggers keep the caller's metadata")
struct ObservabilityLoggerTests {
  @Test func taskScopeChildFailureGoesToTheGivenLogger() async throws {
    let (logger, handler) = requestLogger()
    try await withTaskScope(errorHandler: TaskScope.logChildFailure(to: logger)) { scope in
      _ = scope.addTask { throw Boom() }
    }
    let entries = handler.entries
    #expect(entries.count == 1)
    #expect(entries.first?.level == .error)
    #expect(entries.first?.metadata["request"] == "r-42")
    #expect(entries.first?.metadata["error"] == "Boom()")
  }

  @Test func supervisorChildFailureGoesToTheGivenLogger() async throws {
    let (logger, handler) = requestLogger()
    try await withSupervisor(errorHandler: Supervisor.logChildFailure(to: logger)) { supervisor in
      _ = supervisor.addChild(name: "worker") { throw Boom() }
    }
    let entries = handler.entries
    #expect(entries.map { $0.metadata["request"] } == ["r-42"])
    #expect(entries.map { $0.metadata["child"] } == ["worker"])
  }

  @Test func persistentGroupTaskFailureGoesToTheGivenLogger() async throws {
    let (logger, handler) = requestLogger()
    let group = PersistentTaskGroup(name: "jobs", logger: logger)
    let task = try group.addTask(name: "export") { throw Boom() }
    _ = await task.result
    await group.close()
    let entries = handler.entries
    #expect(entries.count == 1)
    #expect(entries.first?.level == .error)
    #expect(entries.first?.metadata["request"] == "r-42")
    let message = entries.first.map { "\($0.message)" } ?? ""
    #expect(message.contains("'export'") && message.contains("'jobs'"))
  }

  @Test func persistentGroupReleasedWithoutShutdownWarnsOnTheGivenLogger() async throws {
    let (logger, handler) = requestLogger()
    let started = AsyncStream<Void>.makeStream()
    var group: PersistentTaskGroup? = PersistentTaskGroup(name: "leaky", logger: logger)
    try group!.addTask {
      started.continuation.yield()
      try await Task.sleep(for: .seconds(3600))
    }
    for await _ in started.stream { break }
    group = nil
    let entries = handler.entries
    #expect(entries.count == 1)
    #expect(entries.first?.level == .warning)
    #expect(entries.first?.metadata["request"] == "r-42")
  }

  @Test func periodicTimerTickFailureGoesToTheGivenLogger() async throws {
    let (logger, handler) = requestLogger()
    try await withVirtualTime { clock in
      let timer = try PeriodicTimer.start(every: .seconds(1), clock: clock, logger: logger) { _ in throw Boom() }
      try await clock.sleep(for: .milliseconds(1500))
      await timer.cancel()
    }
    let entries = handler.entries
    #expect(entries.count == 2)
    #expect(entries.allSatisfy { $0.level == .error && $0.metadata["request"] == "r-42" })
    #expect(entries.map { $0.metadata["tick"] } == ["0", "1"])
  }

  @Test func withTimerTickFailureGoesToTheGivenLogger() async throws {
    let (logger, handler) = requestLogger()
    try await withVirtualTime { clock in
      try await withTimer(every: .seconds(1), clock: clock, logger: logger) { _ in throw Boom() } body: {
        try await clock.sleep(for: .milliseconds(500))
      }
    }
    #expect(handler.entries.map { $0.metadata["request"] } == ["r-42"])
  }

  @Test func onErrorStillWinsOverTheLogger() async throws {
    let (logger, handler) = requestLogger()
    try await withVirtualTime { clock in
      try await withTimer(every: .seconds(1), clock: clock, onError: { _, _ in }, logger: logger) { _ in
        throw Boom()
      } body: {
        try await clock.sleep(for: .milliseconds(500))
      }
    }
    #expect(handler.entries.isEmpty)
  }
}
