import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Real servers, real signals: the built `echo-server` and `AsyncToolsTestChild server …` started
/// as processes, stopped with `kill`, on 127.0.0.1 and ephemeral ports only. Every test runs under
/// a watchdog and kills what it started if it fails.
@Suite("startServer with real processes and signals")
struct StartServerProcessTests {
  static let modes = ["processes", "threads"]

  private func modeArguments(_ mode: String) -> [String] { mode == "threads" ? ["--threads"] : [] }

  /// Waits for the server's log to say every worker is ready and, for the TestChild scenarios, for
  /// each worker's `pid` line (standard output and error are read by different threads, so one
  /// can be recorded before the other).
  private func waitForReady(_ server: LaunchedProcess, workers: Int, pidLines: Bool = true) async {
    await server.output.wait { events in
      (0..<workers).allSatisfy { index in
        events.contains { $0.hasPrefix("err: ") && $0.hasSuffix("worker \(index) is ready") }
          && (!pidLines || events.contains { $0.hasPrefix("out: worker \(index) pid ") })
      } || events.contains { $0.hasPrefix("exit: ") }
    }
  }

  private func workerPIDs(_ server: LaunchedProcess) -> [Int: pid_t] {
    var pids: [Int: pid_t] = [:]
    for line in server.stdoutLines {
      let words = line.split(separator: " ")
      if words.count == 4, words[0] == "worker", words[2] == "pid", let index = Int(words[1]), let pid = pid_t(words[3]) {
        pids[index] = pid
      }
    }
    return pids
  }

  /// Waits (polling /proc, bounded) until none of `pids` exists: they are not our children, so no
  /// event tells us when the kernel has cleaned them up.
  private func expectGone(
    _ pids: some Collection<pid_t>, within seconds: Int = 10, sourceLocation: SourceLocation = #_sourceLocation
  ) async {
    // No pid parsed would make the check below vacuous.
    #expect(!pids.isEmpty, "no worker pid to check", sourceLocation: sourceLocation)
    let clock = ContinuousClock()
    let deadline = clock.now + .seconds(seconds)
    while pids.contains(where: processExists) && clock.now < deadline {
      try? await Task.sleep(for: .milliseconds(10))
    }
    for pid in pids {
      #expect(!processExists(pid), "worker process \(pid) outlived the server", sourceLocation: sourceLocation)
    }
  }

  @Test(arguments: modes)
  func echoGoesThroughEveryWorkerSetAndStopsCleanly(mode: String) async throws {
    let server = try LaunchedProcess("echo-server", ["--port", "0", "--workers", "3"] + modeArguments(mode))
    defer { server.killIfRunning() }
    try await withWatchdog {
      let banner = await server.waitForLine { $0.hasPrefix("echo-server listening on 127.0.0.1:") }
      #expect(banner.hasSuffix("with 3 worker \(mode)"))
      let port = try #require(Int(banner.split(separator: ":").last!.split(separator: " ").first!))
      await waitForReady(server, workers: 3, pidLines: false)
      let children = childrenOf(server.pid)
      #expect(children.count == (mode == "processes" ? 3 : 0))
      let replies = await onThread { (0..<20).map { echoRoundTrip(port: port, message: "hello \($0)") } }
      #expect(replies == (0..<20).map { "hello \($0)" })
      server.signal(SIGTERM)
      #expect(await server.exitCode() == 0, "\(server.stderrText)")
      #expect(server.stdoutLines.last == "echo-server stopped by SIGTERM")
      if mode == "processes" { await expectGone(children) }
    }
  }

  @Test(arguments: [SIGINT, SIGTERM], modes)
  func aStopSignalShutsTheServerDownWithStatusZero(signal: Int32, mode: String) async throws {
    let server = try LaunchedProcess("AsyncToolsTestChild", ["server", "--workers", "2"] + modeArguments(mode))
    defer { server.killIfRunning() }
    try await withWatchdog {
      await waitForReady(server, workers: 2)
      let workers = workerPIDs(server)
      server.signal(signal)
      #expect(await server.exitCode() == 0, "\(server.stderrText)")
      let name = signal == SIGINT ? "SIGINT" : "SIGTERM"
      #expect(server.stdoutLines.contains("worker 0 stopped by \(name)"))
      #expect(server.stdoutLines.contains("worker 1 stopped by \(name)"))
      #expect(server.stdoutLines.last == "server exit 0 stopped by \(name)")
      if mode == "processes" { await expectGone(workers.values) }
    }
  }

  @Test func anExtraProcessIsStartedAndStoppedLikeAWorker() async throws {
    let server = try LaunchedProcess("AsyncToolsTestChild", ["server", "--workers", "1", "--extra", "1"])
    defer { server.killIfRunning() }
    try await withWatchdog {
      await waitForReady(server, workers: 1)
      await server.output.wait { $0.contains { $0.hasSuffix("worker 1 is ready") } && $0.contains { $0.hasPrefix("out: extra 1 pid") } }
      let extra = try #require(server.stdoutLines.first { $0.hasPrefix("extra 1 pid ") }.flatMap { pid_t($0.split(separator: " ")[3]) })
      #expect(childrenOf(server.pid).contains(extra))
      server.signal(SIGTERM)
      #expect(await server.exitCode() == 0, "\(server.stderrText)")
      #expect(server.stdoutLines.contains("extra 1 stopped by SIGTERM"))
      await expectGone([extra])
    }
  }

  @Test func aRollingRestartUnderASteadyStreamOfConnectionsDropsNone() async throws {
    let server = try LaunchedProcess("echo-server", ["--port", "0", "--workers", "2"])
    defer { server.killIfRunning() }
    try await withWatchdog(seconds: 60) {
      let banner = await server.waitForLine { $0.hasPrefix("echo-server listening on 127.0.0.1:") }
      let port = try #require(Int(banner.split(separator: ":").last!.split(separator: " ").first!))
      await waitForReady(server, workers: 2, pidLines: false)
      let before = Set(childrenOf(server.pid))
      #expect(before.count == 2)
      // A client opening connection after connection, one echo each, until told to stop.
      let stop = StopFlag()
      let client = Probe()
      let clientDone = Task {
        await onThread {
          var n = 0
          while !stop.isSet {
            n += 1
            let reply = echoRoundTrip(port: port, message: "ping \(n)")
            client.record(reply == "ping \(n)" ? "ok" : "failed: ping \(n) → \(reply ?? "refused")")
          }
        }
      }
      await client.wait(for: 20, "ok")
      server.signal(SIGHUP)
      await server.output.wait { $0.contains { $0.hasSuffix("rolling restart done") } || $0.contains { $0.hasPrefix("exit: ") } }
      let okAtRestartEnd = client.count("ok")
      await client.wait(for: okAtRestartEnd + 20, "ok")
      stop.set()
      await clientDone.value
      let failed = client.events.filter { $0.hasPrefix("failed") }
      #expect(failed.isEmpty, "\(failed.count) of \(client.events.count) connections failed: \(failed.prefix(5))")
      let after = Set(childrenOf(server.pid))
      #expect(after.count == 2 && after.isDisjoint(with: before), "workers before \(before), after \(after)")
      server.signal(SIGTERM)
      #expect(await server.exitCode() == 0, "\(server.stderrText)")
      await expectGone(before.union(after))
    }
  }

  @Test func aWorkerIgnoringTheStopSignalIsKilledAfterTheWaitTimeout() async throws {
    let server = try LaunchedProcess(
      "AsyncToolsTestChild", ["server", "--workers", "2", "--ignore-stop", "0", "--wait-timeout-ms", "300"])
    defer { server.killIfRunning() }
    try await withWatchdog {
      await waitForReady(server, workers: 2)
      let workers = workerPIDs(server)
      let start = ContinuousClock.now
      server.signal(SIGTERM)
      #expect(await server.exitCode() == 2, "\(server.stderrText)")
      #expect(ContinuousClock.now - start >= .milliseconds(300))
      #expect(server.stdoutLines.last == "server exit 2 stopped by SIGTERM, killing workers that did not stop in time")
      #expect(server.stderrText.contains("killing worker 0: it outlived the wait timeout"))
      await expectGone(workers.values)
    }
  }

  @Test func aSecondStopSignalSkipsTheWait() async throws {
    let server = try LaunchedProcess("AsyncToolsTestChild", ["server", "--workers", "2", "--ignore-stop", "1"])
    defer { server.killIfRunning() }
    try await withWatchdog {
      await waitForReady(server, workers: 2)
      let workers = workerPIDs(server)
      server.signal(SIGINT)
      await server.waitForLine { $0 == "worker 1 stopped by SIGINT" }
      server.signal(SIGINT)
      #expect(await server.exitCode() == 2, "\(server.stderrText)")
      #expect(server.stderrText.contains("killing worker 1: a second stop signal forces the stop"))
      await expectGone(workers.values)
    }
  }

  @Test func aWorkerKilledWithSIGKILLStopsTheServer() async throws {
    let server = try LaunchedProcess("AsyncToolsTestChild", ["server", "--workers", "2"])
    defer { server.killIfRunning() }
    try await withWatchdog {
      await waitForReady(server, workers: 2)
      let workers = workerPIDs(server)
      kill(try #require(workers[1]), SIGKILL)
      #expect(await server.exitCode() == 1, "\(server.stderrText)")
      #expect(server.stdoutLines.last == "server exit 1 stopped because worker 1 was killed by signal 9")
      #expect(server.stdoutLines.contains("worker 0 stopped by SIGTERM"))
      await expectGone(workers.values)
    }
  }

  @Test func aWorkerKilledWithSIGKILLIsRestartedUnderTheRestartPolicy() async throws {
    let server = try LaunchedProcess("AsyncToolsTestChild", ["server", "--workers", "2", "--policy", "restart"])
    defer { server.killIfRunning() }
    try await withWatchdog {
      await waitForReady(server, workers: 2)
      let first = try #require(workerPIDs(server)[1])
      kill(first, SIGKILL)
      await server.waitForLine { $0.hasPrefix("worker 1 pid ") && $0 != "worker 1 pid \(first)" }
      let replacement = try #require(workerPIDs(server)[1])
      #expect(replacement != first)
      await server.output.wait { $0.filter { $0.hasSuffix("worker 1 is ready") }.count == 2 }
      server.signal(SIGTERM)
      #expect(await server.exitCode() == 0, "\(server.stderrText)")
      await expectGone(Array(workerPIDs(server).values) + [first])
    }
  }

  /// obs: `ServerConfiguration.metrics` in process mode: a worker killed by a signal the server did
  /// not send is an exit of cause `signal`, its replacement a restart of reason `failure`.
  @Test func serverMetricsCountAWorkerKilledBySIGKILLAndItsRestart() async throws {
    let server = try LaunchedProcess(
      "AsyncToolsTestChild", ["server", "--workers", "2", "--policy", "restart", "--metrics"])
    defer { server.killIfRunning() }
    try await withWatchdog {
      await waitForReady(server, workers: 2)
      let first = try #require(workerPIDs(server)[1])
      kill(first, SIGKILL)
      await server.output.wait { $0.filter { $0.hasSuffix("worker 1 is ready") }.count == 2 }
      server.signal(SIGTERM)
      #expect(await server.exitCode() == 0, "\(server.stderrText)")
      let lines = Set(server.stdoutLines.filter { $0.hasPrefix("metric ") })
      #expect(lines.contains("metric asynctools_server_worker_starts_total - 3"), "\(lines)")
      #expect(lines.contains("metric asynctools_server_worker_exits_total cause=signal 1"), "\(lines)")
      #expect(lines.contains("metric asynctools_server_worker_exits_total cause=clean 2"), "\(lines)")
      #expect(lines.contains("metric asynctools_server_worker_exits_total cause=forced 0"), "\(lines)")
      #expect(lines.contains("metric asynctools_server_worker_restarts_total reason=failure 1"), "\(lines)")
      #expect(lines.contains("metric asynctools_server_stop_duration - 1"), "\(lines)")
      await expectGone(Array(workerPIDs(server).values) + [first])
    }
  }

  @Test func theServerStopsByItselfWhenAllWorkersAreKilled() async throws {
    // aiotools #102: the main process spun at 100 % CPU forever once every worker was SIGKILLed.
    let server = try LaunchedProcess("AsyncToolsTestChild", ["server", "--workers", "2", "--policy", "ignore"])
    defer { server.killIfRunning() }
    try await withWatchdog {
      await waitForReady(server, workers: 2)
      for pid in workerPIDs(server).values { kill(pid, SIGKILL) }
      #expect(await server.exitCode() == 1, "\(server.stderrText)")
      #expect(server.stdoutLines.last?.hasPrefix("server exit 1 stopped because worker") == true)
    }
  }

  @Test(arguments: modes)
  func aWorkerFailingDuringStartupWhileOthersAreStillStartingStopsTheServer(mode: String) async throws {
    let server = try LaunchedProcess(
      "AsyncToolsTestChild",
      ["server", "--workers", "3", "--fail-startup", "2", "--slow-startup", "1"] + modeArguments(mode))
    defer { server.killIfRunning() }
    try await withWatchdog {
      #expect(await server.exitCode() == 1, "\(server.stderrText)")
      let last = server.stdoutLines.last ?? ""
      #expect(last.hasPrefix("server exit 1 stopped because worker 2 failed during start-up"), "\(last)")
      if mode == "processes" { await expectGone(workerPIDs(server).values) }
    }
  }

  @Test func killingTheMainProcessLeavesNoOrphan() async throws {
    let server = try LaunchedProcess("AsyncToolsTestChild", ["server", "--workers", "2"])
    defer { server.killIfRunning() }
    try await withWatchdog {
      await waitForReady(server, workers: 2)
      let workers = workerPIDs(server)
      try #require(workers.count == 2)
      server.signal(SIGKILL)
      #expect(await server.exitCode() == -SIGKILL)
      await expectGone(workers.values)
    }
  }

  @Test func aPortInUseIsAClearErrorBeforeAnyWorkerStarts() async throws {
    let first = try LaunchedProcess("echo-server", ["--port", "0", "--workers", "1", "--threads"])
    defer { first.killIfRunning() }
    try await withWatchdog {
      let banner = await first.waitForLine { $0.hasPrefix("echo-server listening on") }
      let port = try #require(Int(banner.split(separator: ":").last!.split(separator: " ").first!))
      let second = try LaunchedProcess("echo-server", ["--port", "\(port)", "--workers", "2"])
      defer { second.killIfRunning() }
      #expect(await second.exitCode() == 1)
      #expect(second.stderrText == "echo-server: cannot listen on 127.0.0.1:\(port): Address already in use")
      #expect(second.stdoutLines.isEmpty)
      first.signal(SIGINT)
      #expect(await first.exitCode() == 0)
    }
  }
}

final class StopFlag: Sendable {
  private let value = Atomic<Bool>(false)
  var isSet: Bool { value.load(ordering: .relaxed) }
  func set() { value.store(true, ordering: .relaxed) }
}
