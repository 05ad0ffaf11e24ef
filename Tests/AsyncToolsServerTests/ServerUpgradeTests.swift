@testable import AsyncToolsServer
import AsyncToolsTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The binary upgrade of the main process with real processes, signals and sockets (issue #15,
/// items 2 and 3): SIGUSR2 under load drops no request and never refuses a connection, the new
/// build's version is served afterwards; a new main process that fails or hangs leaves the old one
/// serving; systemd hears the upgrade in order, `MAINPID=` included.
///
/// Each test runs a copy of `AsyncToolsTestChild upgrade` (UpgradeScenario.swift) from a temporary
/// directory, so that it can "rebuild" it: a copy whose version string `sed` changed is renamed
/// over the path the server was started from.
@Suite("Server binary upgrade")
struct ServerUpgradeTests {
  static let version1 = "asynctools-test-child-version-0001"
  static let version2 = "asynctools-test-child-version-0002"

  /// A temporary directory holding the server's executable (`server`) and its trap file (`trap`).
  struct Installation: Sendable {
    let directory: String
    var path: String { "\(directory)/server" }
    var trap: String { "\(directory)/trap" }

    /// Copies the built test child; done by `/bin/sh`, never in this process (a descriptor open
    /// for writing here would be inherited, for a moment, by a child another test spawns, and
    /// exec'ing the file then fails with ETXTBSY).
    static func make() async throws -> Installation {
      var template = Array("/tmp/asynctools-upgrade-XXXXXX".utf8CString)
      let directory = try #require(mkdtemp(&template).map { String(cString: $0) })
      let installation = Installation(directory: directory)
      try await installation.shell("cp '\(LaunchedProcess.productsDirectory)/AsyncToolsTestChild' server")
      return installation
    }

    /// "Rebuilds" the server: a copy with version 2 renamed over its path, as a build writes it.
    func installVersion2() async throws {
      try await shell(
        "sed 's/\(ServerUpgradeTests.version1)/\(ServerUpgradeTests.version2)/' server > server.new"
          + " && chmod +x server.new && mv -f server.new server")
    }

    /// Sets the trap the next main process reads at start: `fail` or `hang`.
    func setTrap(_ word: String) async throws { try await shell("echo \(word) > trap") }

    /// Kills every process still running an executable from this directory (a new main process
    /// a failed test did not learn about is not our child: nothing else would end it), then
    /// removes the directory.
    func remove() {
      for pid in Self.processes(runningFrom: directory) { kill(pid, SIGKILL) }
      for file in [path, trap, path + ".new"] { unlink(file) }
      rmdir(directory)
    }

    /// The processes whose executable (`/proc/<pid>/exe`, deleted or not) lies in `directory`.
    static func processes(runningFrom directory: String) -> [pid_t] {
      guard let proc = opendir("/proc") else { return [] }
      defer { closedir(proc) }
      var found: [pid_t] = []
      while let entry = readdir(proc) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard let pid = pid_t(name) else { continue }
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/\(pid)/exe", &buffer, buffer.count - 1)
        guard count > 0 else { continue }
        let target = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if target.hasPrefix(directory + "/") { found.append(pid) }
      }
      return found
    }

    private func shell(_ command: String) async throws {
      let shell = try LaunchedProcess("/bin/sh", ["-c", "cd '\(directory)' && \(command)"])
      let code = await shell.exitCode()
      try #require(code == 0, "\(command): \(shell.stderrText)")
    }
  }

  /// Waits until the server logged that `workers` workers are ready (as often as `times` main
  /// processes started them), or it exited.
  private func waitForReady(_ server: LaunchedProcess, workers: Int = 2, times: Int = 1) async {
    await server.output.wait { events in
      (0..<workers).allSatisfy { index in
        events.filter { $0.hasPrefix("err: ") && $0.hasSuffix("worker \(index) is ready") }.count >= times
      } || events.contains { $0.hasPrefix("exit: ") }
    }
  }

  /// Runs `body` under the watchdog; a timeout records what the server printed so far (a hang is
  /// otherwise silent).
  private func watched(
    _ server: LaunchedProcess, seconds: Int, _ body: @escaping @Sendable () async throws -> Void
  ) async throws {
    do {
      try await withWatchdog(seconds: seconds, body)
    } catch let timeout as WatchdogTimeout {
      Issue.record("\(timeout); the server's output so far: \(server.output.events)")
    }
  }

  /// The pid in `server exit 0 handed over to the new main process <pid>`. Waits for the line itself,
  /// not for the exit (the exit can be recorded before the line is read from the pipe); a server that
  /// dies without printing it fails the test at the watchdog (the new main process holds the pipe).
  private func newMainProcess(_ server: LaunchedProcess) async throws -> pid_t {
    await server.output.wait { events in
      events.contains { $0.hasPrefix("out: server exit ") } || events.contains { $0.hasPrefix("eof: out: ") }
    }
    let line = server.stdoutLines.first { $0.hasPrefix("server exit ") } ?? "<no server exit line>"
    #expect(line.hasPrefix("server exit 0 handed over to the new main process "), "\(server.output.events)")
    return try #require(pid_t(line.split(separator: " ").last ?? ""), "\(line)")
  }

  /// What the old main process hands over travels as re-execution arguments: the socket's
  /// descriptor and whether it was passed in (systemd: never shut down); anything else is refused.
  @Test func theHandOffSurvivesItsEncodingAndRejectsAnythingElse() {
    typealias Handoff = MainProcessUpgrader.Successor.Handoff
    for handoff in [
      Handoff(listenFD: 3, adopted: false), Handoff(listenFD: 3, adopted: true), Handoff(listenFD: nil, adopted: false),
    ] {
      #expect(Handoff(decoding: handoff.encoded) == handoff)
    }
    #expect(Handoff(listenFD: 3, adopted: true).encoded == ["3", "adopted"])
    for fields in [[], ["3"], ["3", "maybe"], ["-1", "bound"], ["x", "bound"], ["3", "bound", "extra"]] {
      #expect(Handoff(decoding: fields) == nil, "\(fields)")
    }
  }

  @Test(arguments: ["processes", "threads"])
  func anUpgradeUnderLoadDropsNothingKeepsThePortAndServesTheNewBuild(mode: String) async throws {
    let installation = try await Installation.make()
    defer { installation.remove() }
    let server = try LaunchedProcess(
      installation.path, ["upgrade", "--workers", "2", "--port", "0"] + (mode == "threads" ? ["--threads"] : []))
    defer { server.killIfRunning() }
    try await watched(server, seconds: 120) {
      let port = try #require(Int(await server.waitForLine { $0.hasPrefix("listening ") }.dropFirst(10)))
      await waitForReady(server)
      let load = UpgradeLoad(port: port)
      load.start()
      defer { load.requestStop() }
      await load.seen.wait {
        $0.contains("\(Self.version1) main \(server.pid)") || $0.contains { $0.hasPrefix("failure") }
      }

      try await installation.installVersion2()
      server.signal(SIGUSR2)
      let newMain = try await newMainProcess(server)
      // The new build answers, and keeps answering after the old main process has exited.
      await load.seen.wait {
        $0.contains("\(Self.version2) main \(newMain)") || $0.contains { $0.hasPrefix("failure") }
      }
      await server.output.wait { $0.contains { $0.hasPrefix("exit: ") } }
      let progress = load.seen.count("progress")
      await load.seen.wait {
        $0.filter { $0.hasPrefix("progress") }.count >= progress + 3 || $0.contains { $0.hasPrefix("failure") }
      }
      let result = await load.finish()

      #expect(result.failures.isEmpty, "\(result.failures.prefix(5)) of \(result.roundTrips) round trips")
      #expect(result.roundTrips >= 300)
      #expect(Set(result.answeredBy) == ["\(Self.version1) main \(server.pid)", "\(Self.version2) main \(newMain)"])
      #expect(server.stderrText.contains("binary upgrade: the new main process \(newMain) is ready and takes over"))

      kill(newMain, SIGTERM)
      // The old main's status, once every process holding its output (the new main process and all
      // the workers) has ended.
      #expect(await server.exitCode() == 0, "\(server.output.events)")
      #expect(server.stdoutLines.contains("server exit 0 stopped by SIGTERM"), "the new main process stopped cleanly")
      #expect(server.stdoutLines.contains("main \(newMain) \(Self.version2)"))
    }
  }

  /// A broken new build (exits at once) and one whose worker fails (its main process stops on its
  /// own, and must not stop the socket it shares with the old one): the old main process logs why,
  /// keeps serving on the same socket, and stops normally.
  @Test func aFailingNewMainProcessLeavesTheOldOneServing() async throws {
    try await withServerThatServesOn([]) { installation, server, port in
      try await installation.setTrap("fail")
      server.signal(SIGUSR2)
      // The log line and the new main process's own line come through different pipes.
      await server.output.wait { events in
        events.contains { $0.contains("binary upgrade failed: ") }
          && events.contains { $0.hasSuffix("refuses to start: the trap says fail") }
          || events.contains { $0.hasPrefix("exit: ") }
      }
      #expect(
        server.stderrText.contains(
          #/binary upgrade failed: the new main process \d+ exited with status 1 before it was ready; this main process serves on/#))
      #expect(await onThread { lineRoundTrip(port: port, line: "a") } == "\(Self.version1) main \(server.pid): a\n")

      try await installation.setTrap("worker-fails")
      server.signal(SIGUSR2)
      await server.output.wait { events in
        events.filter { $0.contains("binary upgrade failed: ") }.count == 2 || events.contains { $0.hasPrefix("exit: ") }
      }
      let failures = server.stderrText.matches(of: #/binary upgrade failed: the new main process \d+ exited with status 1/#)
      #expect(failures.count == 2, "\(server.stderrText)")
      // Printed before it exited, so it is in the pipe by now.
      await server.output.wait { $0.contains { $0.hasPrefix("out: server exit 1 ") } }
      #expect(
        server.stdoutLines.contains(
          "server exit 1 stopped because worker 0 failed during start-up: see the worker's log"))
      #expect(await onThread { lineRoundTrip(port: port, line: "w") } == "\(Self.version1) main \(server.pid): w\n")
    }
  }

  /// A new main process whose worker never gets ready is killed at the upgrade timeout (1 s here),
  /// reaped, and the old main process serves on.
  @Test func aHangingNewMainProcessIsKilledAtTheUpgradeTimeout() async throws {
    try await withServerThatServesOn(["--upgrade-timeout-ms", "1000"]) { installation, server, port in
      try await installation.setTrap("hang")
      server.signal(SIGUSR2)
      await server.output.wait { events in
        events.contains { $0.contains("was killed by signal 9") } || events.contains { $0.hasPrefix("exit: ") }
      }
      let killed = try #require(
        server.stderrText.firstMatch(
          of: #/the new main process (\d+) was not ready within 1.0 seconds: killed it; this main process serves on/#))
      #expect(!processExists(pid_t(killed.1)!), "the killed new main process was reaped")
      #expect(await onThread { lineRoundTrip(port: port, line: "b") } == "\(Self.version1) main \(server.pid): b\n")
    }
  }

  /// Starts `server upgrade` with one worker, a trap file and `arguments` from a fresh
  /// installation, waits until it serves, runs `body` with its port, and then expects the old
  /// main process, which must still be the server, to stop cleanly on SIGTERM.
  private func withServerThatServesOn(
    _ arguments: [String], _ body: @escaping @Sendable (Installation, LaunchedProcess, Int) async throws -> Void
  ) async throws {
    let installation = try await Installation.make()
    defer { installation.remove() }
    let server = try LaunchedProcess(
      installation.path, ["upgrade", "--workers", "1", "--port", "0", "--trap", installation.trap] + arguments)
    defer { server.killIfRunning() }
    try await watched(server, seconds: 90) {
      let port = try #require(Int(await server.waitForLine { $0.hasPrefix("listening ") }.dropFirst(10)))
      await waitForReady(server, workers: 1)
      try await body(installation, server, port)
      server.signal(SIGTERM)
      #expect(await server.exitCode() == 0, "\(server.output.events)")
      #expect(server.stdoutLines.last == "server exit 0 stopped by SIGTERM")
    }
  }

  /// Under socket activation (`systemd-socket-activate` binds the port and execs the server with it
  /// as descriptor 3), the new main process serves on systemd's socket too, and the old one hands
  /// over without stopping it.
  @Test(.enabled(if: SystemdTools.canActivate, "systemd-socket-activate is not installed (apt-get install systemd)"))
  func anUpgradeUnderSocketActivationServesOnSystemdsSocket() async throws {
    let activate = try #require(SystemdTools.socketActivate, "CI must install systemd-socket-activate (.ci/run)")
    let installation = try await Installation.make()
    defer { installation.remove() }
    let port = try #require(freeLoopbackPort())
    let server = try LaunchedProcess(
      activate, ["--listen=127.0.0.1:\(port)", "--fdname=web", "--", installation.path, "upgrade", "--socket", "web"])
    defer { server.killIfRunning() }
    try await watched(server, seconds: 90) {
      await server.output.wait { events in
        events.contains { $0.hasPrefix("err: Listening on 127.0.0.1:\(port)") } || events.contains { $0.hasPrefix("exit: ") }
      }
      // The first connection starts the server (systemd-socket-activate execs it: same pid).
      let first = await onThread { lineRoundTrip(port: port, line: "first") }
      #expect(first == "\(Self.version1) main \(server.pid): first\n", "\(server.output.events)")
      await waitForReady(server)
      try await installation.installVersion2()
      server.signal(SIGUSR2)
      let newMain = try await newMainProcess(server)
      #expect(await onThread { lineRoundTrip(port: port, line: "after") } == "\(Self.version2) main \(newMain): after\n")
      kill(newMain, SIGTERM)
      #expect(await server.exitCode() == 0, "\(server.output.events)")
      #expect(server.stdoutLines.filter { $0 == "listening \(port)" }.count == 2, "both main processes on systemd's port")
    }
  }

  /// SIGTERM to the old main process during an upgrade stops the whole server: the new main process
  /// (not ready: its worker hangs in its set-up) is stopped too, and the old one exits only after it.
  @Test func aStopDuringAnUpgradeStopsTheNewMainProcessToo() async throws {
    let installation = try await Installation.make()
    defer { installation.remove() }
    let server = try LaunchedProcess(
      installation.path, ["upgrade", "--workers", "1", "--port", "0", "--trap", installation.trap])
    defer { server.killIfRunning() }
    try await watched(server, seconds: 90) {
      await waitForReady(server, workers: 1)
      try await installation.setTrap("hang")
      server.signal(SIGUSR2)
      // The new main process runs (it printed its line) and its worker is starting.
      await server.output.wait { events in
        events.filter { $0.hasPrefix("out: main ") }.count == 2 || events.contains { $0.hasPrefix("exit: ") }
      }
      server.signal(SIGTERM)
      #expect(await server.exitCode() == 0, "\(server.output.events)")
      let stderr = server.stderrText
      #expect(stderr.contains(#/binary upgrade abandoned: the server stops, and so does the new main process \d+/#))
      #expect(stderr.contains(#/the new main process \d+ exited with status 0/#))
      #expect(server.stdoutLines.filter { $0 == "server exit 0 stopped by SIGTERM" }.count == 2, "both main processes")
    }
  }

  /// systemd (a Unix datagram socket standing in for `NOTIFY_SOCKET`) hears, in order: the old
  /// main ready, the upgrade's status, the new main's `READY=1` with its `MAINPID=`, the old main
  /// moving `MAINPID=` to it, and at the end only the new main's `STOPPING=1`; the new main pings
  /// the watchdog after the old one has exited.
  @Test func systemdHearsTheUpgradeInOrderWithTheNewMainPID() async throws {
    let installation = try await Installation.make()
    defer { installation.remove() }
    let standIn = try NotifySocketStandIn(abstract: true)
    defer { standIn.close() }
    let server = try LaunchedProcess(
      installation.path, ["upgrade", "--workers", "2", "--port", "0"],
      environment: ["NOTIFY_SOCKET=\(standIn.path)", "WATCHDOG_USEC=100000"])
    defer { server.killIfRunning() }
    try await watched(server, seconds: 90) {
      await standIn.received.wait { $0.contains { $0.hasPrefix("READY=1") } }
      server.signal(SIGUSR2)
      let newMain = try await newMainProcess(server)
      await server.output.wait { $0.contains { $0.hasPrefix("exit: ") } }
      let pings = standIn.received.count("WATCHDOG=1")
      await standIn.received.wait(for: pings + 2, "WATCHDOG=1")
      kill(newMain, SIGTERM)
      #expect(await server.exitCode() == 0, "\(server.output.events)")
      await standIn.received.wait { $0.contains { $0.hasPrefix("STOPPING=1") } }

      let old = server.pid
      #expect(
        standIn.messages.filter { !$0.hasPrefix("STATUS=starting") } == [
          "READY=1\nMAINPID=\(old)\nSTATUS=serving with 2 worker(s)",
          "STATUS=binary upgrade: starting a new main process",
          "READY=1\nMAINPID=\(newMain)\nSTATUS=serving with 2 worker(s)",
          "MAINPID=\(newMain)\nSTATUS=handed over to the new main process \(newMain)",
          "STOPPING=1\nSTATUS=stopping on SIGTERM",
        ])
    }
  }
}

/// A bounded client loop on its own thread: connects to 127.0.0.1:`port` again and again, sends a
/// numbered line and checks the answer (`<version> main <pid>: <line>`). A refused connection, an
/// error or a wrong answer is a failure. ``seen`` records each new `<version> main <pid>`, a
/// `progress` event every 100 round trips, and the failures.
final class UpgradeLoad: Sendable {
  struct Result: Sendable {
    var roundTrips = 0
    var failures: [String] = []
    var answeredBy: [String] = []
  }

  let port: Int
  let seen = Probe()
  private let state = PThreadLocked((stop: false, result: Result()))

  /// At most this many round trips (the loop is bounded even if the test forgets to stop it).
  static let limit = 200_000

  init(port: Int) { self.port = port }

  func start() {
    startThread { [self] in
      for index in 0..<Self.limit {
        if state.withLock({ $0.stop }) { break }
        let line = "request \(index)"
        let reply = lineRoundTrip(port: port, line: line, seconds: 10)
        let by = reply.flatMap { $0.hasSuffix(": \(line)\n") ? String($0.dropLast(line.count + 3)) : nil }
        let event: String? = state.withLock { state in
          state.result.roundTrips += 1
          guard let by else {
            state.result.failures.append("\(line): \(reply.map { "answered \($0)" } ?? "no answer (errno \(errno))")")
            return "failure"
          }
          if !state.result.answeredBy.contains(by) {
            state.result.answeredBy.append(by)
            return by
          }
          return state.result.roundTrips % 100 == 0 ? "progress" : nil
        }
        if let event { seen.record(event) }
      }
      seen.record("done")
    }
  }

  /// Asks the loop to stop after its current round trip.
  func requestStop() { state.withLock { $0.stop = true } }

  /// Stops the loop and returns what it saw, once its thread has finished.
  func finish() async -> Result {
    requestStop()
    await seen.wait { $0.contains("done") }
    return state.withLock { $0.result }
  }
}
