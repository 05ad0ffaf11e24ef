import AsyncTools
import Testing

// The snippets of ScopedResources.md, compiled and run, so the guide cannot rot. Keep them in sync.

/// Keeps the snippets verbatim while keeping the test log quiet: shadows `Swift.print` in this file.
private func print(_ items: Any...) {}
private enum Guide {
  final class Connection: Sendable {
    let host: String
    init(host: String) { self.host = host }
    static func open(_ host: String) async throws -> Connection { Connection(host: host) }
    func query(_ sql: String) async throws -> Int { 42 }
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
    do {
      try await withContext(Guide.connection(to: "db")) { connection in
        _ = try await connection.query("select broken")
      }
    } catch let group as ErrorGroup {
      print("the body failed:", group.errors[0], "and so did the release:", group.errors[1])
    } catch {
      print("one failure:", error)
    }
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
  }

  @Test func exitStackSnippet() async throws {
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
