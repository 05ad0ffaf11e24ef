import AsyncTools
import Testing

// The snippets of ScopedResources.md, compiled and run, so the guide cannot rot. Keep them in sync.

/// Keeps the snippets verbatim while keeping the test log quiet: shadows `Swift.print` in this file, and records
/// what a snippet printed in `Guide.printed` when a test set it.
private func print(_ items: Any...) {
  Guide.printed?.record(items.map { "\($0)" }.joined(separator: " "))
}
private enum Guide {
  @TaskLocal static var printed: ScopeEventLog?

  struct QueryFailed: Error, CustomStringConvertible {
    var description: String { "QueryFailed" }
  }
  struct ReleaseFailed: Error, CustomStringConvertible {
    var description: String { "ReleaseFailed" }
  }

  final class Connection: Sendable {
    let host: String
    init(host: String) { self.host = host }
    static func open(_ host: String) async throws -> Connection { Connection(host: host) }
    /// `select broken` fails, as in the guide's error snippet; every other query answers 42.
    func query(_ sql: String) async throws -> Int {
      if sql == "select broken" { throw QueryFailed() }
      return 42
    }
    func rollback() async {}
    func close() async {}
  }

  static func connection(to host: String) -> AsyncContext<Connection> {
    AsyncContext { body in
      let connection = try await Connection.open(host)  // acquire
      let outcome = await body(connection)  // the scope's body runs here
      if outcome.isFailure { await connection.rollback() }
      await connection.close()  // release: always reached
    }
  }

  /// A connection whose release fails too: the error snippet's other branch.
  static func connectionWithAFailingRelease(to host: String) -> AsyncContext<Connection> {
    AsyncContext { body in
      let connection = try await Connection.open(host)
      _ = await body(connection)
      throw ReleaseFailed()
    }
  }

  struct Transaction: AsyncContextManager {
    let connection: Connection
    func enter() async throws -> Connection { connection }  // BEGIN
    func exit(_ outcome: ExitOutcome) async throws {
      if outcome.isFailure { await connection.rollback() }  // ROLLBACK, else COMMIT
    }
  }

  enum RequestContext {
    @TaskLocal static var requestID: String?
  }
}

extension Guide.Connection: AsyncClosable {}

@Suite("Scoped resources guide snippets")
struct ScopedResourcesGuideTests {
  @Test func oneClosureResource() async throws {
    let answer = try await withContext(Guide.connection(to: "db")) { connection in
      try await connection.query("select 42")
    }
    #expect(answer == 42)
    let viaTransaction = try await withContext(Guide.Transaction(connection: Guide.Connection(host: "db"))) {
      $0.host
    }
    #expect(viaTransaction == "db")
  }

  @Test func errorsSnippet() async throws {
    #expect(await Self.errorsSnippet(connection: Guide.connection) == ["one failure: QueryFailed"])
  }

  /// The snippet's other branch: the body and the release both fail, so the scope throws an `ErrorGroup`, the
  /// body's error first.
  @Test func errorsSnippetWithAFailingRelease() async throws {
    let printed = await Self.errorsSnippet(connection: Guide.connectionWithAFailingRelease)
    #expect(printed == ["the body failed: QueryFailed and so did the release: ReleaseFailed"])
  }

  /// Runs the guide's error snippet with `connection` and returns what it printed.
  private static func errorsSnippet(connection: (String) -> AsyncContext<Guide.Connection>) async -> [String] {
    let printed = ScopeEventLog()
    await Guide.$printed.withValue(printed) {
      do {
        try await withContext(connection("db")) { connection in
          _ = try await connection.query("select broken")
        }
      } catch let group as ErrorGroup {
        print("the body failed:", group.errors[0], "and so did the release:", group.errors[1])
      } catch {
        print("one failure:", error)
      }
    }
    return printed.events
  }

  @Test func groupSnippet() async throws {
    let result = try await withContextGroup([
      Guide.connection(to: "replica-a"), Guide.connection(to: "replica-b"), Guide.connection(to: "replica-c"),
    ]) { connections in
      let live = connections.compactMap { try? $0.get() }  // a failed enter is a .failure here
      return try await live.first?.query("select 1")
    }
    print(result.value as Any, result.exits)
    #expect(result.value == 42)
    #expect(result.exits.count == 3)
    #expect(result.exits.allSatisfy { if case .exited = $0 { true } else { false } }, "every release ran: \(result.exits)")
  }

  @Test func exitStackSnippet() async throws {
    let printed = ScopeEventLog()
    try await Guide.$printed.withValue(printed) { try await exitStackSnippetBody() }
    // Cleanups run last-registered first, after the body.
    #expect(printed.events == ["scope ended with success", "all connections closed next"])
  }

  private func exitStackSnippetBody() async throws {
    let hosts = ["a", "b", "c"]
    try await withExitStack { stack in
      var connections: [Guide.Connection] = []
      for host in hosts {
        connections.append(try await stack.enter(Guide.connection(to: host)))
      }
      try stack.callback { print("all connections closed next") }
      try stack.push { outcome in print("scope ended with", outcome) }
      for connection in connections { _ = try await connection.query("select 1") }
    }
  }

  @Test func closingAndDeferredSnippets() async throws {
    let count = try await withClosing(try await Guide.Connection.open("db")) { connection in
      try await connection.query("select count(*)")
    }
    #expect(count == 42)
    try await withDeferred { deferred in
      let connection = try await Guide.Connection.open("db")
      try deferred { await connection.close() }
      try deferred { print("runs first") }
      _ = try await connection.query("select 1")
    }
  }

  @Test func resettingSnippet() async throws {
    let seen = ScopeEventLog()
    try await Guide.RequestContext.$requestID.withValue("req-42") {
      try await withContext(Guide.connection(to: "db")) { _ in
        seen.record(Guide.RequestContext.requestID ?? "none")
      }
    }
    #expect(seen.events == ["req-42"])
    #expect(Guide.RequestContext.requestID == nil)
  }
}
