import AsyncToolsServer
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The drain on its own: which connections close when, without sockets.
@Suite("ConnectionDrain")
struct ConnectionDrainTests {
  /// A connection whose close handler records `closed <name>` and reports the close.
  private func open(_ drain: ConnectionDrain, _ name: String, _ probe: Probe) -> ConnectionDrain.Connection {
    let connection = drain.open()
    connection.setCloseHandler {
      probe.record("closed \(name)")
      connection.closed()
    }
    return connection
  }

  @Test func anIdleConnectionClosesAtOnceAndABusyOneAfterItsReply() async throws {
    let drain = ConnectionDrain(firstRequestGrace: .seconds(3600))
    let probe = Probe()
    let idle = open(drain, "idle", probe)
    idle.requestStarted()
    idle.requestFinished()
    let busy = open(drain, "busy", probe)
    busy.requestStarted()
    let drained = Task { await drain.drain() }
    await probe.wait(for: 1, "closed idle")
    #expect(probe.events == ["closed idle"])
    #expect(drain.openCount == 1)
    busy.requestFinished()
    await drained.value
    #expect(probe.events == ["closed idle", "closed busy"])
    #expect(drain.openCount == 0)
  }

  @Test func overlappingRequestsKeepTheConnectionBusyUntilTheLastReply() async throws {
    let drain = ConnectionDrain(firstRequestGrace: .zero)
    let probe = Probe()
    let connection = open(drain, "c", probe)
    connection.requestStarted()
    connection.requestStarted()
    let drained = Task { await drain.drain() }
    connection.requestFinished()
    #expect(probe.events.isEmpty)
    connection.requestFinished()
    await drained.value
    #expect(probe.events == ["closed c"])
  }

  @Test func aConnectionWithoutARequestClosesAfterTheGrace() async throws {
    let drain = ConnectionDrain(firstRequestGrace: .milliseconds(1))
    let probe = Probe()
    _ = open(drain, "fresh", probe)
    await drain.drain()
    #expect(probe.events == ["closed fresh"])
  }

  @Test func aFirstRequestDuringTheGraceIsAnswered() async throws {
    let drain = ConnectionDrain(firstRequestGrace: .seconds(3600))
    let probe = Probe()
    let connection = open(drain, "fresh", probe)
    let drained = Task { await drain.drain() }
    connection.requestStarted()
    #expect(probe.events.isEmpty)
    connection.requestFinished()
    await probe.wait(for: 1, "closed fresh")
    drained.cancel()
    await drained.value
  }

  @Test func cancellingTheDrainClosesBusyConnectionsAndReturns() async throws {
    let drain = ConnectionDrain(firstRequestGrace: .zero)
    let probe = Probe()
    let busy = drain.open()
    busy.setCloseHandler { probe.record("closed busy") }  // never reports closed(): the drain must not wait
    busy.requestStarted()
    let drained = Task { await drain.drain() }
    #expect(probe.events.isEmpty)
    drained.cancel()
    await drained.value
    #expect(probe.events == ["closed busy"])
  }

  @Test func aConnectionGettingItsCloseHandlerDuringTheDrainClosesThen() async throws {
    let drain = ConnectionDrain(firstRequestGrace: .zero)
    let probe = Probe()
    let connection = drain.open()
    let drained = Task { await drain.drain() }
    while !drain.isDraining { await Task.yield() }
    connection.setCloseHandler {
      probe.record("closed late")
      connection.closed()
    }
    await drained.value
    #expect(probe.events == ["closed late"])
  }

  @Test func anEmptyDrainReturnsAtOnceAndCallsAfterClosedAreIgnored() async {
    let drain = ConnectionDrain()
    let connection = drain.open()
    connection.closed()
    connection.requestStarted()
    connection.requestFinished()
    connection.closed()
    await drain.drain()
    #expect(drain.openCount == 0)
  }

  @Test func aRequestEndingWhileTheDrainBeginsStillClosesItsConnection() async throws {
    // A request's start and end skip the drain's lock until it drains: the end racing the drain's
    // start must be seen by one of the two, or the drain would wait forever for a connection that
    // nobody closes.
    try await withWatchdog {
      for _ in 0..<300 {
        let drain = ConnectionDrain(firstRequestGrace: .seconds(3600))
        let connection = drain.open()
        connection.setCloseHandler { connection.closed() }
        connection.requestStarted()
        async let ended: Void = onThread { connection.requestFinished() }
        await drain.drain()
        await ended
        #expect(drain.openCount == 0)
      }
    }
  }
}

/// The accept loop's input checks and its end when the socket stops listening.
@Suite("AcceptedConnections")
struct AcceptedConnectionsTests {
  private func expectNotListening(_ fd: CInt) {
    #expect {
      _ = try AcceptedConnections(listeningSocket: fd)
    } throws: { error in
      guard let error = error as? ServerError else { return false }
      return error.code == .notListening && error.message.contains("descriptor \(fd) is not a listening socket")
    }
  }

  @Test func aPipeIsRejectedWithAClearError() {
    var fds: [CInt] = [-1, -1]
    #expect(pipe(&fds) == 0)
    defer { close(fds[0]); close(fds[1]) }
    expectNotListening(fds[0])
  }

  @Test func aSocketThatDoesNotListenIsRejected() {
    let fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    expectNotListening(fd)
  }

  @Test func aClosedDescriptorIsRejected() {
    let fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
    close(fd)
    expectNotListening(fd)
  }

  @Test func theIterationEndsWhenTheSocketStopsListening() async throws {
    let fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    try #require(bound == 0 && listen(fd, 8) == 0)
    // A second descriptor of the same socket, as the main process keeps one: shutting it down
    // ends the worker's iteration (which owns and closes `fd`).
    let mainCopy = dup(fd)
    defer { close(mainCopy) }
    let connections = try AcceptedConnections(listeningSocket: fd)
    let iteration = Task {
      var count = 0
      for await connection in connections {
        close(connection)
        count += 1
      }
      return count
    }
    shutdown(mainCopy, CInt(SHUT_RDWR))
    let count = try await withWatchdog(seconds: 10) { await iteration.value }
    #expect(count == 0)
  }
}
