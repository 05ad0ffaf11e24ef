#if os(Linux)
@testable import AsyncToolsServer
import Glibc
import Testing

/// The accept board's rules: a worker leaves a connection only to an *accepting* peer with *fewer*
/// open connections, an ended worker's entry is freed, and a worker process sees the same memory.
@Suite("Accept board")
struct AcceptBoardTests {
  @Test func aWorkerDefersOnlyToAnAcceptingPeerWithFewerConnections() throws {
    let board = try AcceptBoard.create(capacity: 4)
    let (a, b) = (try #require(board.claim()), try #require(board.claim()))
    #expect(!board.shouldDefer(a), "no connections: never defers")
    board.count(a, 2)
    #expect(!board.shouldDefer(a), "the peer is claimed but not accepting (starting, or draining)")
    board.setAccepting(b, true)
    #expect(board.shouldDefer(a), "an accepting peer with 0 < 2 connections")
    #expect(!board.shouldDefer(b), "the less loaded worker never defers")
    board.count(b, 2)
    #expect(!board.shouldDefer(a) && !board.shouldDefer(b), "equal counts: both accept")
    board.count(a, -1)
    #expect(!board.shouldDefer(b), "a has fewer connections but is not accepting")
    board.setAccepting(a, true)
    #expect(board.shouldDefer(b) && !board.shouldDefer(a))
    board.setAccepting(a, false)
    #expect(!board.shouldDefer(b), "a worker that stopped accepting is no peer")
  }

  @Test func anEndedWorkersEntryIsFreedAndClaimedAgainFresh() throws {
    let board = try AcceptBoard.create(capacity: 2)
    let (a, b) = (try #require(board.claim()), try #require(board.claim()))
    #expect(board.claim() == nil, "full: a further worker accepts without balancing")
    board.setAccepting(a, true)
    board.count(b, 5)
    board.setAccepting(b, true)
    #expect(board.shouldDefer(b))
    board.release(a)  // the worker ended (crashed): its entry must not attract connections
    #expect(!board.shouldDefer(b))
    board.setAccepting(a, true)
    #expect(!board.shouldDefer(b), "a released entry cannot become accepting again by itself")
    let again = try #require(board.claim())
    #expect(again == a && board.openConnections(again) == 0)
  }

  @Test func aWorkerProcessMapsTheSameBoard() throws {
    let board = try AcceptBoard.create(capacity: 3)
    let entry = try #require(board.claim())
    let adopted = try #require(AcceptBoard.adopt(dup(board.fd)))
    #expect(adopted.capacity == 3)
    adopted.count(entry, 7)
    #expect(board.openConnections(entry) == 7)
    #expect(AcceptBalance(board: adopted, entry: 3) == nil, "an entry beyond the board is refused")
    let pipeFDs = try #require(makePipe())
    #expect(AcceptBoard.adopt(pipeFDs.read) == nil, "not a board: accept without balancing")
    close(pipeFDs.write)
  }

  @Test func aStuckPeerHoldsNoConnectionAndClosesAreCounted() async throws {
    // A peer that claims to accept with fewer connections but never does (stopped, starved): the
    // worker leaves each connection to it for at most 10 ms, then takes it.
    let board = try AcceptBoard.create(capacity: 2)
    let (mine, stuck) = (try #require(board.claim()), try #require(board.claim()))
    board.setAccepting(stuck, true)
    let (listener, port) = try #require(listenOnLoopback())
    let balance = try #require(AcceptBalance(board: board, entry: mine))
    let connections = try AcceptedConnections(listeningSocket: listener, logger: .init(label: "test"), balance: balance)
    try await withWatchdog {
      let clients = ClientSockets(await onThread { (0..<5).map { _ in connectLoopback(port: port) } })
      defer { clients.closeAll() }
      var accepted: [CInt] = []
      for await socket in connections {
        accepted.append(socket)
        if accepted.count == 5 { break }
      }
      #expect(board.openConnections(mine) == 5)
      for socket in accepted {
        close(socket)
        connections.connectionClosed()
      }
      #expect(board.openConnections(mine) == 0)
    }
  }
}

/// Balanced workers with real processes and real sockets: connections spread evenly, and the shared
/// queue still loses nothing when a worker restarts or dies.
@Suite("Balanced workers with real clients")
struct BalancedWorkersTests {
  /// Waits for `listening <port>` and every worker's readiness; returns the port.
  private func start(_ server: LaunchedProcess, workers: Int) async throws -> Int {
    let line = await server.waitForLine { $0.hasPrefix("listening ") }
    let port = try #require(Int(line.split(separator: " ")[1]), "no port in \(line)")
    await server.output.wait { events in
      (0..<workers).allSatisfy { index in events.contains { $0.hasSuffix("worker \(index) is ready") } }
        || events.contains { $0.hasPrefix("exit: ") }
    }
    return port
  }

  @Test(arguments: ["processes", "threads"])
  func connectionsSpreadEvenlyOverTwoWorkers(mode: String) async throws {
    // The kernel alone handed 31 of 32 connections of such a burst to one worker.
    let server = try LaunchedProcess(
      "AsyncToolsTestChild", ["serve", "--workers", "2", "--tag"] + (mode == "threads" ? ["--threads"] : []))
    defer { server.killIfRunning() }
    try await withWatchdog(seconds: 60) {
      let port = try await start(server, workers: 2)
      // A burst, as a load generator opens its connections: all connected and sent before any reply
      // is read.
      let fds = await onThread { (0..<40).map { _ in connectLoopback(port: port) } }
      let clients = ClientSockets(fds)
      defer { clients.closeAll() }
      let served = await onThread { fds.map { send("x", on: $0) ? servingWorker($0) : nil } }
      #expect(served.allSatisfy { $0 != nil }, "\(served)")
      let counts = (0..<2).map { index in served.filter { $0 == index }.count }
      let (least, most) = (counts.min() ?? 0, counts.max() ?? 0)
      #expect(least > 0 && Double(most) / Double(least) <= 1.5, "connections per worker: \(counts)")
      server.signal(SIGTERM)
      #expect(await server.exitCode() == 0, "\(server.stderrText.suffix(2000))")
    }
  }

  @Test func aRollingRestartUnderAStreamOfConnectionsDropsNone() async throws {
    let server = try LaunchedProcess("AsyncToolsTestChild", ["serve", "--workers", "2", "--tag"])
    defer { server.killIfRunning() }
    try await withWatchdog(seconds: 60) {
      let port = try await start(server, workers: 2)
      let done = StopFlag()
      let started = Probe()
      let stream = Task {
        await onThread { connectionStream(port: port, until: done) { started.record("first answer") } }
      }
      // The restart must overlap the stream: on a busy machine the stream's thread can start after
      // a quick restart has already ended.
      await started.wait(for: 1, "first answer")
      server.signal(SIGHUP)
      await server.output.wait {
        $0.contains { $0.hasSuffix("rolling restart done") } || $0.contains { $0.hasPrefix("exit: ") }
      }
      done.set()
      let (answered, failures) = await stream.value
      #expect(failures.isEmpty, "\(failures.count) of \(answered + failures.count) failed: \(failures.prefix(5))")
      #expect(answered > 0)
      server.signal(SIGTERM)
      #expect(await server.exitCode() == 0, "\(server.stderrText.suffix(2000))")
    }
  }

  @Test func aKilledWorkerHoldsUpNoConnection() async throws {
    // Worker 0 is killed (and not replaced): every connection that arrives afterwards is served by
    // worker 1, although worker 1 soon carries more connections than the dead worker's frozen count
    // — the main process frees a dead worker's entry when it reaps it (and a peer that does not
    // accept is waited for at most 10 ms per connection anyway).
    let server = try LaunchedProcess("AsyncToolsTestChild", ["serve", "--workers", "2", "--tag", "--ignore-failed"])
    defer { server.killIfRunning() }
    try await withWatchdog(seconds: 60) {
      let port = try await start(server, workers: 2)
      let line = await server.waitForLine { $0.hasPrefix("worker 0 pid ") }
      let victim = try #require(pid_t(line.split(separator: " ").last!))
      let held = await onThread { (0..<6).map { _ in connectLoopback(port: port) } }
      let heldClients = ClientSockets(held)
      defer { heldClients.closeAll() }
      let before = await onThread { held.map { send("x", on: $0) ? servingWorker($0) : nil } }
      #expect(before.contains(0) && before.contains(1), "\(before)")
      kill(victim, SIGKILL)
      await server.output.wait {
        $0.contains { $0.contains("ignoring the failure of worker 0") } || $0.contains { $0.hasPrefix("exit: ") }
      }
      // Kept open, so worker 1's count climbs past the dead worker's.
      let fds = await onThread { (0..<20).map { _ in connectLoopback(port: port) } }
      let clients = ClientSockets(fds)
      defer { clients.closeAll() }
      let clock = ContinuousClock()
      let begun = clock.now
      let served = await onThread { fds.map { send("x", on: $0) ? servingWorker($0) : nil } }
      let elapsed = begun.duration(to: clock.now)
      #expect(served.allSatisfy { $0 == 1 }, "\(served)")
      #expect(elapsed < .seconds(2), "20 connections took \(elapsed)")
      server.signal(SIGTERM)
      #expect(await server.exitCode() == 0, "\(server.stderrText.suffix(2000))")
    }
  }
}

/// After "x" was sent on `fd`: returns the index of the worker that answered `<index>:x`.
private func servingWorker(_ fd: CInt) -> Int? {
  var received: [UInt8] = []
  var buffer = [UInt8](repeating: 0, count: 64)
  while received.last != UInt8(ascii: "x") && received.count < 16 {
    let count = read(fd, &buffer, buffer.count)
    if count < 0 && errno == EINTR { continue }
    if count <= 0 { return nil }
    received += buffer[0..<count]
  }
  let text = String(decoding: received, as: UTF8.self)
  guard text.hasSuffix(":x") else { return nil }
  return Int(text.dropLast(2))
}

/// Connects, sends, reads the tagged reply and closes, one connection after the other, until `done`
/// (at most 2,000 connections); returns how many were answered and what went wrong with the others.
private func connectionStream(
  port: Int, until done: StopFlag, onFirstAnswer: @Sendable () -> Void = {}
) -> (Int, [String]) {
  var (answered, failures) = (0, [String]())
  for index in 0..<2000 where !done.isSet {
    let fd = connectLoopback(port: port)
    guard fd >= 0 else {
      failures.append("connection \(index): connect errno \(-fd)")
      continue
    }
    if send("x", on: fd), servingWorker(fd) != nil {
      answered += 1
      if answered == 1 { onFirstAnswer() }
    } else {
      failures.append("connection \(index): no reply (\(nextRead(fd)))")
    }
    close(fd)
  }
  return (answered, failures)
}

private func makePipe() -> (read: CInt, write: CInt)? {
  var fds: [CInt] = [-1, -1]
  return pipe(&fds) == 0 ? (fds[0], fds[1]) : nil
}
#endif
