import ArgumentParser
import AsyncToolsServer
import AsyncToolsServerCommandLine
import Testing

/// `ServerOptions`, the standard server flags both demos parse (issue #17): what each flag sets in the
/// `ServerConfiguration`, and a message naming the flag for each bad value. (The echo demo's process-level
/// tests, exit status 64 included, are in `EchoServerCommandLineTests`; the HTTP example's smoke test
/// tries one bad flag too.)
@Suite("ServerOptions (the standard server flags)")
struct ServerOptionsTests {
  private func configuration(_ arguments: [String], defaultPort: Int = 8888) throws -> ServerConfiguration {
    try ServerOptions.parse(arguments).configuration(defaultPort: defaultPort)
  }

  /// The message `parseOrExit` would print after "Error: ".
  private func message(_ arguments: [String]) -> String? {
    do {
      _ = try ServerOptions.parse(arguments)
      return nil
    } catch {
      return ServerOptions.message(for: error)
    }
  }

  @Test func theDefaults() throws {
    let configuration = try configuration([], defaultPort: 8080)
    #expect(configuration.mode == .processes)
    #expect(configuration.numWorkers == 2)
    #expect(configuration.listen == .init(host: "127.0.0.1", port: 8080))
    #expect(configuration.waitTimeout == .seconds(10))
    #expect(configuration.gracefulShutdownTimeout == .seconds(5))
    #expect(configuration.onWorkerFailure == .stopServer)
    #expect(configuration.upgradeTimeout == .seconds(60))
    #expect(configuration.acceptBalancing == .leastConnections)
  }

  @Test func everyFlagReachesItsField() throws {
    let configuration = try configuration([
      "--host", "::1", "--port", "0", "--workers", "4", "--mode", "threads", "--wait-timeout", "2.5",
      "--drain-timeout", "0.5", "--on-worker-failure", "restart", "--max-restarts", "3", "--restart-window", "30",
      "--upgrade-timeout", "90", "--accept-balancing", "kernel",
    ])
    #expect(configuration.mode == .threads)
    #expect(configuration.numWorkers == 4)
    #expect(configuration.listen == .init(host: "::1", port: 0))
    #expect(configuration.waitTimeout == .milliseconds(2_500))
    #expect(configuration.gracefulShutdownTimeout == .milliseconds(500))
    #expect(configuration.onWorkerFailure == .restart(maxRestarts: 3, within: .seconds(30)))
    #expect(configuration.upgradeTimeout == .seconds(90))
    #expect(configuration.acceptBalancing == .kernel)
    #expect(try self.configuration(["--on-worker-failure", "ignore"]).onWorkerFailure == .ignore)
  }

  @Test func threadsIsShortForModeThreads() throws {
    #expect(try configuration(["--threads"]).mode == .threads)
    #expect(try configuration(["--threads", "--mode", "threads"]).mode == .threads)
    #expect(try configuration(["--mode", "processes"]).mode == .processes)
    #expect(message(["--threads", "--mode", "processes"]) == "--threads conflicts with --mode processes")
  }

  @Test func theSystemdSocketReplacesHostAndPort() throws {
    let configuration = try configuration(["--systemd-socket", "--socket-name", "http"])
    #expect(configuration.listen == .systemdSocket(named: "http"))
    #expect(message(["--socket-name", "http"]) == "--socket-name needs --systemd-socket")
    #expect(message(["--systemd-socket", "--port", "80"]) == "--port cannot be combined with --systemd-socket")
  }

  /// Without `--drain-timeout` a short `--wait-timeout` is fine (the drain bound never fires first);
  /// given, it must be the shorter one.
  @Test func theDrainTimeoutMustBeShorterThanTheWaitTimeoutWhenGiven() throws {
    #expect(try configuration(["--wait-timeout", "0.0001"]).waitTimeout == .microseconds(100))
    #expect(message(["--drain-timeout", "20", "--wait-timeout", "10"])
      == "--drain-timeout (20.0) must be shorter than --wait-timeout (10.0)")
  }

  @Test(arguments: [
    (["--workers", "0"], "--workers must be in 1...1024, got 0"),
    (["--workers", "1025"], "--workers must be in 1...1024, got 1025"),
    (["--port", "-1"], "--port must be in 0...65535, got -1"),
    (["--wait-timeout", "inf"], "--wait-timeout must be a finite number of seconds, got inf"),
    (["--wait-timeout", "0"], "--wait-timeout must be more than 0 seconds, got 0.0"),
    (["--wait-timeout", "1e-12"], "--wait-timeout must be at least 1 nanosecond, got 1e-12 seconds"),
    (["--drain-timeout", "-1"], "--drain-timeout must be more than 0 seconds, got -1.0"),
    (["--max-restarts", "0"], "--max-restarts must be at least 1, got 0"),
    (["--restart-window", "nan"], "--restart-window must be a finite number of seconds, got nan"),
    (["--upgrade-timeout", "0"], "--upgrade-timeout must be more than 0 seconds, got 0.0"),
  ])
  func aBadValueIsAMessageNamingTheFlag(arguments: [String], expected: String) {
    #expect(message(arguments) == expected)
  }

  @Test func anUnknownModeNamesTheFlagAndTheChoices() {
    let text = message(["--mode", "fork"]) ?? ""
    #expect(text.contains("'--mode <mode>'") && text.contains("'processes' and 'threads'"), "\(text)")
  }
}
