import AsyncTools
import AsyncToolsTestSupport
import AsyncToolsTesting
import ServiceContextModule
import Testing

/// A plain task-local and a `ServiceContext` value (what swift-distributed-tracing propagates): every
/// task the library starts on the caller's behalf must see both, as set where the work was handed over.
private enum Probe {
  @TaskLocal static var value: String?

  enum Key: ServiceContextKey { typealias Value = String }

  /// What the current task sees: "plain/context", "-" for a missing value.
  static var seen: String {
    "\(value ?? "-")/\(ServiceContext.current?[Key.self] ?? "-")"
  }

  /// Runs `body` with both values bound to `tag`.
  @discardableResult
  static func with<T>(
    _ tag: String, isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T
  ) async rethrows -> T {
    var context = ServiceContext.topLevel
    context[Key.self] = tag
    return try await $value.withValue(tag) {
      try await ServiceContext.withValue(context) { try await body() }
    }
  }
}

/// What the tasks under test saw.
/// What the probe saw, in order. A `TestLog` (a `Locked`, which ThreadSanitizer can see: the standard
/// `Mutex` locks in uninstrumented code on Linux, so its critical sections were reported as races).
private final class Seen: Sendable {
  private let values = TestLog<String>()
  func record() { values.append(Probe.seen) }
  var all: [String] { values.all }
}

private struct Failure: Error {}

@Suite("Task-locals and ServiceContext reach the tasks AsyncTools starts")
struct TaskLocalPropagationTests {
  @Test func taskScopeChildren() async throws {
    let seen = Seen()
    try await Probe.with("caller") {
      try await withTaskScope { scope in
        _ = scope.addTask { seen.record() }
        _ = scope.addTask { seen.record() }
      }
    }
    #expect(seen.all == ["caller/caller", "caller/caller"])
  }

  /// Documented limit: children added through a `TaskScope.Handle` are started by the scope's helper
  /// task, which the body started when it first read `handle`; they carry the body's task-locals,
  /// not those of the task calling `addTask`.
  @Test func taskScopeHandleChildrenCarryTheBodysValues() async throws {
    let seen = Seen()
    try await Probe.with("body") {
      try await withTaskScope { scope in
        let handle = scope.handle
        try await Probe.with("adder") {
          _ = try handle.addTask { seen.record() }
        }
      }
    }
    #expect(seen.all == ["body/body"])
  }

  @Test func supervisorChildrenAndTheirRestarts() async throws {
    let seen = Seen()
    let runs = ChildCounter()
    try await withVirtualTime { clock in
      try await Probe.with("caller") {
        try await withSupervisor(clock: clock, errorHandler: { _ in }) { supervisor in
          _ = supervisor.addChild(name: "flaky", restart: .onFailure) {
            seen.record()
            if runs.increment() < 3 { throw Failure() }
          }
        }
      }
    }
    #expect(seen.all == ["caller/caller", "caller/caller", "caller/caller"], "every restart sees the values")
  }

  @Test func persistentGroupTasksSeeTheAddersValues() async throws {
    let seen = Seen()
    let group = try PersistentTaskGroup(name: "propagation", maxConcurrency: 1)
    let gate = AsyncStream<Void>.makeStream()
    try await Probe.with("first") {
      _ = try group.addTask {
        for await _ in gate.stream {}
        seen.record()
      }
    }
    // The second task waits for a slot (maxConcurrency 1): it still carries its adder's values.
    let second = try await Probe.with("second") {
      try group.addTask { seen.record() }
    }
    #expect(group.queuedCount == 1)
    gate.continuation.finish()
    try await second.value
    await group.close()
    #expect(seen.all == ["first/first", "second/second"])
  }

  @Test func periodicTimerTicksSeeTheStartersValues() async throws {
    let seen = Seen()
    try await withVirtualTime { clock in
      let timer = try Probe.$value.withValue("starter") {
        var context = ServiceContext.topLevel
        context[Probe.Key.self] = "starter"
        return try ServiceContext.withValue(context) {
          try PeriodicTimer.start(every: .seconds(1), clock: clock) { _ in seen.record() }
        }
      }
      try await clock.sleep(for: .milliseconds(2500))
      await timer.cancel()
    }
    #expect(seen.all == ["starter/starter", "starter/starter", "starter/starter"])
  }

  @Test func withTimerTicks() async throws {
    let seen = Seen()
    try await withVirtualTime { clock in
      try await Probe.with("caller") {
        try await withTimer(every: .seconds(1), clock: clock) { _ in seen.record() } body: {
          try await clock.sleep(for: .milliseconds(1500))
        }
      }
    }
    #expect(seen.all == ["caller/caller", "caller/caller"])
  }

  /// The shared load runs in a task of its own, started by the caller that missed: it sees that
  /// caller's values. Callers that join it while it runs do not bring theirs (one load serves all).
  @Test func cacheLoadSeesTheMissingCallersValues() async throws {
    let seen = Seen()
    let cache = try AsyncLRUCache<Int, Int>(maxSize: 4)
    let value = try await Probe.with("caller") {
      try await cache.value(forKey: 1) { key in
        seen.record()
        return key * 10
      }
    }
    #expect(value == 10)
    #expect(seen.all == ["caller/caller"])
  }

  @Test func cancellationShield() async throws {
    let seen = Seen()
    try await Probe.with("caller") {
      try await withCancellationShield { seen.record() }
    }
    #expect(seen.all == ["caller/caller"])
  }

  @Test func raceGatherSafeAndTimeout() async throws {
    let seen = Seen()
    try await Probe.with("caller") {
      _ = try await race([{ @Sendable in seen.record() }])
      _ = await gatherSafe([{ @Sendable in seen.record() }, { @Sendable in seen.record() }])
      try await withTimeout(.seconds(60)) { seen.record() }
    }
    #expect(seen.all == Array(repeating: "caller/caller", count: 4))
  }

  @Test func asyncContextClosure() async throws {
    let seen = Seen()
    let context = AsyncContext<Int> { body in
      seen.record()
      _ = await body(1)
    }
    try await Probe.with("caller") {
      _ = try await withContext(context) { _ in seen.record() }
    }
    #expect(seen.all == ["caller/caller", "caller/caller"])
  }

  @Test func asCompletedSafeAndContextGroup() async throws {
    let seen = Seen()
    try await Probe.with("caller") {
      await withAsCompletedSafe([{ @Sendable in seen.record() }]) { results in
        for await _ in results {}
      }
      let manager = AsyncContext<Int> { body in
        seen.record()
        _ = await body(1)
      }
      _ = try await withContextGroup([manager]) { _ in seen.record() }
    }
    #expect(seen.all == ["caller/caller", "caller/caller", "caller/caller"])
  }

  /// Documented limit, as for `TaskScope.Handle`: a supervisor's handle hands its children to the
  /// scope's helper task.
  @Test func supervisorHandleChildrenCarryTheBodysValues() async throws {
    let seen = Seen()
    try await Probe.with("body") {
      try await withSupervisor { supervisor in
        let handle = supervisor.handle
        try await Probe.with("adder") {
          _ = try handle.addChild { seen.record() }
        }
      }
    }
    #expect(seen.all == ["body/body"])
  }
}
