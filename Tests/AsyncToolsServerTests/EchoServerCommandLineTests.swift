import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The demo as an operator meets it (issue #14, items 6 and 7): every bad flag value is a clear
/// message naming the flag (exit status 64, never a crash or a library field name), `--help`
/// explains signals, exit statuses and the failure policy, and worker processes carry readable
/// names in `ps`.
@Suite("echo-server command line")
struct EchoServerCommandLineTests {
  /// Runs `echo-server` with `arguments` and returns its exit status and standard error.
  private func run(_ arguments: [String]) async throws -> (code: Int32, stderr: String, stdout: String) {
    let process = try LaunchedProcess("echo-server", arguments)
    defer { process.killIfRunning() }
    let code = try await withWatchdog { await process.exitCode() }
    return (code, process.stderrText, process.stdoutLines.joined(separator: "\n"))
  }

  @Test(arguments: [
    (["--wait-timeout", "inf"], "--wait-timeout must be a finite number of seconds, got inf"),
    (["--wait-timeout", "nan"], "--wait-timeout must be a finite number of seconds, got nan"),
    (["--wait-timeout", "1e300"], "--wait-timeout must be at most 1000000000 seconds, got 1e+300"),
    (["--wait-timeout", "0"], "--wait-timeout must be more than 0 seconds, got 0.0"),
    (["--wait-timeout", "-1"], "--wait-timeout must be more than 0 seconds, got -1.0"),
    (["--wait-timeout", "1e-12"], "--wait-timeout must be at least 1 nanosecond, got 1e-12 seconds"),
    (["--wait-timeout", "soon"], "The value 'soon' is invalid for '--wait-timeout <wait-timeout>'"),
    (["--workers", "-1"], "--workers must be in 1...1024, got -1"),
    (["--workers", "0"], "--workers must be in 1...1024, got 0"),
    (["--workers", "99999"], "--workers must be in 1...1024, got 99999"),
    (["--workers", "two"], "The value 'two' is invalid for '--workers <workers>'"),
    (["--port", "-1"], "--port must be in 0...65535, got -1"),
    (["--port", "65536"], "--port must be in 0...65535, got 65536"),
    (["--on-worker-failure", "crash"], "The value 'crash' is invalid for '--on-worker-failure <on-worker-failure>'"),
    (
      ["--accept-balancing", "round-robin"],
      "The value 'round-robin' is invalid for '--accept-balancing <accept-balancing>'"
    ),
    (["--max-restarts", "0"], "--max-restarts must be at least 1, got 0"),
    (["--restart-window", "-inf"], "--restart-window must be a finite number of seconds, got -inf"),
    (["--upgrade-timeout", "0"], "--upgrade-timeout must be more than 0 seconds, got 0.0"),
  ])
  func aBadFlagValueIsAMessageNamingTheFlag(arguments: [String], message: String) async throws {
    let (code, stderr, stdout) = try await run(arguments)
    #expect(code == 64, "\(stderr)")
    #expect(stderr.contains("Error: \(message)"), "\(stderr)")
    #expect(!stderr.contains("numWorkers") && !stderr.contains("waitTimeout"), "no library field names: \(stderr)")
    #expect(!stdout.contains("listening"), "nothing may start")
  }

  @Test func aTinyWaitTimeoutIsKeptNotRoundedToZero() async throws {
    // 0.0001 s used to become "0.0 seconds" and a library error; it is a valid (if short) timeout.
    let server = try LaunchedProcess("echo-server", ["--port", "0", "--workers", "1", "--wait-timeout", "0.0001"])
    defer { server.killIfRunning() }
    try await withWatchdog {
      await server.waitForLine { $0.hasPrefix("echo-server listening on") }
      server.signal(SIGTERM)
      let code = await server.exitCode()
      #expect(code == 0 || code == 2, "\(server.stderrText)")
    }
  }

  @Test func helpExplainsSignalsExitStatusesAndTheFailurePolicy() async throws {
    let (code, _, stdout) = try await run(["--help"])
    #expect(code == 0)
    for text in [
      "INT, TERM", "A second INT or TERM forces the stop", "HUP", "rolling restart", "--on-worker-failure",
      "restart    start a fresh worker", "EXIT STATUS", "64  a bad flag", "echo-server: worker N",
      "USR2       binary upgrade", "--upgrade-timeout", "a new main process (USR2)",
    ] {
      #expect(stdout.contains(text), "--help should mention \(text)")
    }
  }

  @Test func workerProcessesAreNamedInPs() async throws {
    let server = try LaunchedProcess("echo-server", ["--port", "0", "--workers", "2"])
    defer { server.killIfRunning() }
    try await withWatchdog {
      await server.output.wait { events in
        (0..<2).allSatisfy { index in events.contains { $0.hasSuffix("worker \(index) is ready") } }
          || events.contains { $0.hasPrefix("exit: ") }
      }
      let workers = childrenOf(server.pid)
      #expect(workers.count == 2)
      var titles: [String] = []
      var names: [String] = []
      for pid in workers {
        titles.append(readFile("/proc/\(pid)/cmdline")?.split(separator: "\0").first.map(String.init) ?? "")
        names.append(readFile("/proc/\(pid)/comm")?.trimmingSuffix("\n") ?? "")
      }
      #expect(titles.sorted() == ["echo-server: worker 0", "echo-server: worker 1"])
      #expect(names.sorted() == ["echo-server: w0", "echo-server: w1"])
      // The main process keeps its own name; its accept threads do not exist (workers accept).
      #expect(readFile("/proc/\(server.pid)/comm") == "echo-server\n")
      server.signal(SIGINT)
      #expect(await server.exitCode() == 0)
      // The end is reported once, by the program (the library's log says it only at debug level).
      let stopped = server.output.events.filter { $0.contains("stopped by SIGINT") }
      #expect(stopped == ["out: echo-server stopped by SIGINT"], "\(server.output.events)")
    }
  }
}

extension String {
  fileprivate func trimmingSuffix(_ suffix: String) -> String {
    hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
  }
}
