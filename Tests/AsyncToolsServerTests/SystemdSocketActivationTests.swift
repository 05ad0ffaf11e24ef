@testable import AsyncToolsServer
import AsyncTools
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Socket activation: the `sd_listen_fds` protocol read without libsystemd, the checks on the
/// passed descriptor, and a real server started by `systemd-socket-activate` serving a real client
/// on the socket it inherited.
@Suite("systemd socket activation")
struct SystemdSocketActivationTests {
  typealias Passed = SystemdListenDescriptors

  @Test func parsesCountPIDAndNames() throws {
    let passed = try Passed.parse(["LISTEN_FDS": "2", "LISTEN_PID": "42", "LISTEN_FDNAMES": "web:admin"], pid: 42)
    #expect(passed.descriptors == [.init(fd: 3, name: "web"), .init(fd: 4, name: "admin")])
    #expect(try passed.select("admin").fd == 4)
  }

  @Test func namesDefaultToUnknown() throws {
    let passed = try Passed.parse(["LISTEN_FDS": "1", "LISTEN_PID": "7"], pid: 7)
    #expect(passed.descriptors == [.init(fd: 3, name: "unknown")])
    #expect(try passed.select(nil).fd == 3)
  }

  @Test(arguments: [
    (["LISTEN_PID": "7"], "LISTEN_FDS is not set"),
    (["LISTEN_FDS": "0", "LISTEN_PID": "7"], "LISTEN_FDS must be a positive number of descriptors, got '0'"),
    (["LISTEN_FDS": "two", "LISTEN_PID": "7"], "LISTEN_FDS must be a positive number of descriptors, got 'two'"),
    (["LISTEN_FDS": "1"], "LISTEN_PID must name the process the sockets are for, got ''"),
    (["LISTEN_FDS": "1", "LISTEN_PID": "8"], "LISTEN_PID is 8 but this process is 7"),
    (["LISTEN_FDS": "2", "LISTEN_PID": "7", "LISTEN_FDNAMES": "web"], "LISTEN_FDNAMES names 1 descriptor(s) but LISTEN_FDS is 2"),
  ])
  func rejectsWhatTheProtocolDoesNotAllow(environment: [String: String], message: String) {
    #expect {
      _ = try Passed.parse(environment, pid: 7)
    } throws: { error in
      let error = error as? ServerError
      return error?.code == .socketActivationFailed && error?.message.contains(message) == true
    }
  }

  @Test func selectionNamesWhatWasPassed() throws {
    let passed = try Passed.parse(["LISTEN_FDS": "3", "LISTEN_PID": "1", "LISTEN_FDNAMES": "web:web:admin"], pid: 1)
    #expect(throws: ServerError(
      code: .socketActivationFailed,
      message: "socket activation: systemd passed no socket named 'api' (it passed 3 'web', 4 'web', 5 'admin')")
    ) { try passed.select("api") }
    #expect(throws: ServerError(
      code: .socketActivationFailed,
      message: "socket activation: systemd passed 2 sockets named 'web' (3 'web', 4 'web', 5 'admin'); the server shares one")
    ) { try passed.select("web") }
    #expect(throws: ServerError(
      code: .socketActivationFailed,
      message: "socket activation: systemd passed 3 sockets (3 'web', 4 'web', 5 'admin'): choose one with .systemdSocket(named:)")
    ) { try passed.select(nil) }
  }

  @Test func acceptsOnlyAListeningStreamSocket() throws {
    let tcp = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
    let udp = socket(AF_INET, CInt(SOCK_DGRAM.rawValue), 0)
    var pipeEnds: [CInt] = [-1, -1]
    #expect(pipe(&pipeEnds) == 0)
    defer { for fd in [tcp, udp] + pipeEnds { close(fd) } }

    func failure(_ fd: CInt) -> String? {
      do {
        try Passed.requireListeningStream(fd, described: "descriptor \(fd)")
        return nil
      } catch {
        return error.message
      }
    }
    #expect(failure(tcp)?.hasSuffix("is a stream socket that is not listening (listen(2) was not called on it)") == true)
    #expect(failure(udp)?.contains("is not a stream socket") == true)
    #expect(failure(pipeEnds[0])?.contains("is not a socket") == true)
    #expect(failure(-1)?.contains("is not a socket") == true)
    #expect(listen(tcp, 8) == 0)
    #expect(failure(tcp) == nil)
  }

  @Test func configurationRejectsBadSources() {
    var configuration = ServerConfiguration()
    configuration.listen = .systemdSocket(named: "")
    #expect(throws: AsyncToolsError.invalidArgument("the systemd socket name must be non-empty and contain no ':', got ''")) {
      try configuration.validate()
    }
    configuration.listen = .inheritedDescriptor(-1)
    #expect(throws: AsyncToolsError.invalidArgument("the inherited listen descriptor must not be negative, got -1")) {
      try configuration.validate()
    }
    configuration.listen = .systemdSocket(named: "web")
    #expect(throws: Never.self) { try configuration.validate() }
    #expect(configuration.listen?.description == "the systemd socket 'web'")
  }

  /// An inherited descriptor is adopted, not bound: the server reports its port, and closes only
  /// its own descriptor — the socket goes on listening for whoever passed it (systemd keeps it for
  /// the next start of the service, so a stop must never `shutdown` it). A descriptor that is not
  /// listening is refused before any worker starts.
  @Test func inheritedDescriptorIsAdoptedAndChecked() async throws {
    let (listening, boundPort) = try #require(listenOnLoopback())
    let passer = dup(listening)  // what systemd keeps
    defer { close(passer) }
    var configuration = threadsConfiguration(workers: 1)
    configuration.runToCompletion = true
    configuration.listen = .inheritedDescriptor(listening)  // the server owns and closes it from here
    let port = Locked<Int?>(nil)
    let exit = try await startServer(configuration: configuration, worker: { _ in }) { server in
      port.withLock { $0 = server.listeningPort }
      return try await server.runWorkers()
    }
    #expect(exit == .completed)
    #expect(port.withLock { $0 } == boundPort)
    #expect(throws: Never.self, "the passed socket must still listen after the server ended") {
      try SystemdListenDescriptors.requireListeningStream(passer, described: "the passed socket")
    }

    let udp = socket(AF_INET, CInt(SOCK_DGRAM.rawValue), 0)
    defer { close(udp) }
    configuration.listen = .inheritedDescriptor(udp)
    await #expect {
      _ = try await startServer(configuration: configuration, worker: { _ in })
    } throws: { error in
      (error as? ServerError)?.code == .socketActivationFailed
    }
  }

  /// Not started by systemd: a clear error naming the missing variable, exit 1, no worker started.
  @Test func withoutSystemdTheServerSaysSo() async throws {
    let server = try LaunchedProcess("AsyncToolsTestChild", ["systemd", "--workers", "1"])
    defer { server.killIfRunning() }
    try await withWatchdog {
      #expect(await server.exitCode() == 1)
      let error = server.stdoutLines.first { $0.hasPrefix("server error ") }
      #expect(error?.contains("socket activation: LISTEN_FDS is not set") == true, "\(server.output.events)")
    }
  }

  /// `systemd-socket-activate` binds the port and starts the server with it as descriptor 3 on the
  /// first connection; the server's workers serve that connection and later ones on the inherited
  /// socket, neither the main process nor a worker still sees `LISTEN_FDS`, and SIGTERM stops it
  /// cleanly.
  @Test(
    .enabled(if: SystemdTools.canActivate, "systemd-socket-activate is not installed (apt-get install systemd)"),
    arguments: ["processes", "threads"])
  func servesOnTheSocketSystemdPassed(mode: String) async throws {
    let activate = try #require(SystemdTools.socketActivate, "CI must install systemd-socket-activate (.ci/run)")
    let port = try #require(freeLoopbackPort())
    let child = "\(LaunchedProcess.productsDirectory)/AsyncToolsTestChild"
    let server = try LaunchedProcess(
      activate,
      ["--listen=127.0.0.1:\(port)", "--fdname=web", "--", child, "systemd", "--socket", "web", "--workers", "2"]
        + (mode == "threads" ? ["--threads"] : []))
    defer { server.killIfRunning() }
    try await withWatchdog(seconds: 60) {
      // systemd-socket-activate reports the socket on standard error before it waits.
      await server.output.wait { events in
        events.contains { $0.hasPrefix("err: Listening on 127.0.0.1:\(port)") } || events.contains { $0.hasPrefix("exit: ") }
      }
      // The first connection is what starts the server (it waits in the socket's backlog meanwhile).
      let first = await onThread { lineRoundTrip(port: port, line: "first") }
      #expect(first?.hasSuffix("LISTEN_FDS=unset NOTIFY_SOCKET=unset: first\n") == true, "\(server.output.events)")
      #expect(first?.hasPrefix("worker ") == true)
      let second = await onThread { lineRoundTrip(port: port, line: "second") }
      #expect(second?.hasSuffix(": second\n") == true)
      let listening = await server.waitForLine { $0.hasPrefix("listening ") }
      #expect(listening == "listening \(port)")
      #expect(await server.waitForLine { $0.hasPrefix("main ") } == "main LISTEN_FDS=unset NOTIFY_SOCKET=unset")

      server.signal(SIGTERM)
      #expect(await server.exitCode() == 0, "\(server.output.events)")
      #expect(server.stdoutLines.last == "server exit 0 stopped by SIGTERM")
    }
  }

  /// A socket name the unit does not pass: the error lists what was passed, exit 1.
  @Test(.enabled(if: SystemdTools.canActivate, "systemd-socket-activate is not installed (apt-get install systemd)"))
  func aWrongSocketNameIsAClearError() async throws {
    let activate = try #require(SystemdTools.socketActivate, "CI must install systemd-socket-activate (.ci/run)")
    let port = try #require(freeLoopbackPort())
    let child = "\(LaunchedProcess.productsDirectory)/AsyncToolsTestChild"
    let server = try LaunchedProcess(
      activate, ["--listen=127.0.0.1:\(port)", "--fdname=web", "--", child, "systemd", "--socket", "api"])
    defer { server.killIfRunning() }
    try await withWatchdog(seconds: 60) {
      await server.output.wait { events in
        events.contains { $0.hasPrefix("err: Listening on 127.0.0.1:\(port)") } || events.contains { $0.hasPrefix("exit: ") }
      }
      _ = await onThread { lineRoundTrip(port: port, line: "wake up", seconds: 10) }
      #expect(await server.exitCode() == 1)
      let error = server.stdoutLines.first { $0.hasPrefix("server error ") }
      #expect(error == "server error socket activation: systemd passed no socket named 'api' (it passed 3 'web')")
    }
  }
}
