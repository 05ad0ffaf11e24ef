@testable import AsyncToolsServer
import AsyncTools
import AsyncToolsTesting
import Logging
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `sd_notify`: what the server tells systemd and when (a pure state machine), the environment it
/// reads, datagrams on a real Unix socket (path and abstract), the watchdog pings in virtual time,
/// and a real server whose messages arrive in order on a stand-in notify socket.
@Suite("systemd notification")
struct SystemdNotifierTests {
  private func run(_ events: [ServerLifecycleEvent]) -> [String] {
    var state = SystemdNotificationState(mainPID: 99)
    return events.flatMap { state.datagrams(for: $0, monotonicMicroseconds: { 1234 }) }
  }

  @Test func readyOnceEveryWorkerIsReady() {
    #expect(
      run([.workerReady(ready: 1, live: 2), .workerReady(ready: 2, live: 2), .workerReady(ready: 2, live: 2)]) == [
        "STATUS=starting: 1 of 2 worker(s) ready",
        "READY=1\nMAINPID=99\nSTATUS=serving with 2 worker(s)",
      ])
  }

  @Test func rollingRestartReloadsThenIsReadyAgain() {
    #expect(
      run([
        .workerReady(ready: 1, live: 1), .restartBegan(workers: 1), .workerReady(ready: 2, live: 2),
        .restartEnded(completed: true), .restartBegan(workers: 1), .restartEnded(completed: false),
      ]) == [
        "READY=1\nMAINPID=99\nSTATUS=serving with 1 worker(s)",
        "RELOADING=1\nMONOTONIC_USEC=1234\nSTATUS=rolling restart of 1 worker(s)",
        "READY=1\nMAINPID=99\nSTATUS=rolling restart done",
        "RELOADING=1\nMONOTONIC_USEC=1234\nSTATUS=rolling restart of 1 worker(s)",
        "READY=1\nMAINPID=99\nSTATUS=rolling restart aborted, serving with the workers left",
      ])
  }

  @Test func stoppingIsSentOnceAndEndsTheConversation() {
    #expect(
      run([
        .workerReady(ready: 1, live: 1), .stopBegan(.sigterm), .stopBegan(nil), .restartBegan(workers: 1),
        .restartEnded(completed: true),
      ]) == [
        "READY=1\nMAINPID=99\nSTATUS=serving with 1 worker(s)",
        "STOPPING=1\nSTATUS=stopping on SIGTERM",
      ])
    #expect(run([.stopBegan(nil)]) == ["STOPPING=1\nSTATUS=stopping: the server ends"])
  }

  /// A binary upgrade: STATUS when it begins and if it fails; the hand-over moves the main pid and
  /// ends this process's conversation (its end is no stop of the service).
  @Test func upgradeStatusThenMainPIDAndNothingAfter() {
    #expect(
      run([
        .workerReady(ready: 1, live: 1), .upgradeBegan, .upgradeFailed, .upgradeBegan, .handedOver(newMainProcess: 7),
        .stopBegan(nil), .upgradeBegan,
      ]) == [
        "READY=1\nMAINPID=99\nSTATUS=serving with 1 worker(s)",
        "STATUS=binary upgrade: starting a new main process",
        "STATUS=binary upgrade failed: serving on",
        "STATUS=binary upgrade: starting a new main process",
        "MAINPID=7\nSTATUS=handed over to the new main process 7",
      ])
  }

  @Test func aRestartEndingWithoutOneBegunSaysNothing() {
    #expect(run([.restartEnded(completed: true)]).isEmpty)
  }

  @Test func environmentParsing() {
    typealias Settings = SystemdNotifier.Settings
    #expect(Settings.parse([:], pid: 5).settings == nil)
    #expect(Settings.parse(["NOTIFY_SOCKET": "/run/x"], pid: 5).settings == Settings(socketPath: "/run/x", watchdogInterval: nil))
    let watched = Settings.parse(["NOTIFY_SOCKET": "@n", "WATCHDOG_USEC": "3000000"], pid: 5)
    #expect(watched.settings?.watchdogInterval == .milliseconds(1500))
    #expect(Settings.parse(["NOTIFY_SOCKET": "@n", "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "5"], pid: 5)
      .settings?.watchdogInterval == .milliseconds(1500))
    // The watchdog is another process's (a worker inherited it): notify, but do not ping.
    #expect(Settings.parse(["NOTIFY_SOCKET": "@n", "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "6"], pid: 5)
      .settings == Settings(socketPath: "@n", watchdogInterval: nil))
    let badWatchdog = Settings.parse(["NOTIFY_SOCKET": "@n", "WATCHDOG_USEC": "soon"], pid: 5)
    #expect(badWatchdog.settings?.watchdogInterval == nil)
    #expect(badWatchdog.warnings == ["WATCHDOG_USEC must be a positive number of microseconds, got 'soon': no watchdog pings"])
    let relative = Settings.parse(["NOTIFY_SOCKET": "run/x"], pid: 5)
    #expect(relative.settings == nil)
    #expect(relative.warnings == ["NOTIFY_SOCKET 'run/x' is neither a path nor an abstract '@' name: not notifying systemd"])
    #expect(Settings.parse(["NOTIFY_SOCKET": "/" + String(repeating: "x", count: 200)], pid: 5).settings == nil)
  }

  @Test(arguments: [true, false])
  func datagramsReachAUnixSocket(abstract: Bool) async throws {
    let standIn = try NotifySocketStandIn(abstract: abstract)
    defer { standIn.close() }
    try await withWatchdog {
      #expect(SystemdNotifier.sendDatagram("READY=1\nSTATUS=one", to: standIn.path) == 0)
      #expect(SystemdNotifier.sendDatagram("STOPPING=1", to: standIn.path) == 0)
      await standIn.received.wait(for: 2, "")
      #expect(standIn.messages == ["READY=1\nSTATUS=one", "STOPPING=1"])
    }
    #expect(SystemdNotifier.sendDatagram("READY=1", to: "@asynctools-nobody-listens-\(getpid())") == ECONNREFUSED)
  }

  /// Pings every half `WATCHDOG_USEC` of the server's clock, from the start until `finish()`.
  @Test func watchdogPingsAtTheIntervalUntilFinished() async throws {
    let sent = Locked<[(String, Duration)]>([])
    try await withVirtualTime { clock in
      let start = clock.now
      let notifier = SystemdNotifier(
        mainPID: 1, watchdogInterval: .milliseconds(500), clock: clock, logger: Logger(label: "test")
      ) { message in
        sent.withLock { $0.append((message, start.duration(to: clock.now))) }
        return 0
      }
      try await clock.sleep(for: .milliseconds(1750))
      notifier.serverLifecycle(.workerReady(ready: 1, live: 1))
      await notifier.finish()
      try await clock.sleep(for: .seconds(5))
    }
    let log = sent.withLock { $0 }
    #expect(log.map(\.0) == ["WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1", "READY=1\nMAINPID=1\nSTATUS=serving with 1 worker(s)",
      "STOPPING=1\nSTATUS=stopping: the server ends"])
    #expect(log.prefix(3).map(\.1) == [.milliseconds(500), .milliseconds(1000), .milliseconds(1500)])
  }

  /// A failing notify socket is logged once, and the server goes on.
  @Test func aFailingSocketIsLoggedOnce() async throws {
    let probe = Probe()
    let notifier = SystemdNotifier(
      mainPID: 1, watchdogInterval: nil, clock: ContinuousClock(),
      logger: Logger(label: "test") { _ in ProbeLogHandler(probe: probe) }
    ) { _ in ECONNREFUSED }
    notifier.serverLifecycle(.workerReady(ready: 1, live: 1))
    notifier.serverLifecycle(.restartBegan(workers: 1))
    await notifier.finish()
    #expect(probe.events == ["log: cannot notify systemd: Connection refused; further failures are not logged"])
  }

  /// The real thing: a server in its own process with `NOTIFY_SOCKET` (abstract) and
  /// `WATCHDOG_USEC`; readiness, a SIGHUP rolling restart and a SIGTERM stop arrive in that order,
  /// watchdog pings meanwhile, and the workers do not see the variables.
  @Test(arguments: ["processes", "threads"])
  func aServerNotifiesInOrder(mode: String) async throws {
    let standIn = try NotifySocketStandIn(abstract: true)
    defer { standIn.close() }
    let server = try LaunchedProcess(
      "AsyncToolsTestChild", ["systemd", "--port", "0", "--workers", "2"] + (mode == "threads" ? ["--threads"] : []),
      environment: ["NOTIFY_SOCKET=\(standIn.path)", "WATCHDOG_USEC=100000"])
    defer { server.killIfRunning() }
    try await withWatchdog(seconds: 60) {
      let listening = await server.waitForLine { $0.hasPrefix("listening ") }
      let port = try #require(Int(listening.dropFirst("listening ".count)))
      await standIn.received.wait { $0.contains { $0.hasPrefix("READY=1") } }
      let reply = await onThread { lineRoundTrip(port: port, line: "hi") }
      #expect(reply?.hasSuffix("LISTEN_FDS=unset NOTIFY_SOCKET=unset: hi\n") == true)
      #expect(await server.waitForLine { $0.hasPrefix("main ") } == "main LISTEN_FDS=unset NOTIFY_SOCKET=unset")

      server.signal(SIGHUP)
      await standIn.received.wait { $0.filter { $0.hasPrefix("READY=1") }.count == 2 }
      await standIn.received.wait(for: 2, "WATCHDOG=1")
      server.signal(SIGTERM)
      #expect(await server.exitCode() == 0, "\(server.output.events)")
      await standIn.received.wait { $0.contains { $0.hasPrefix("STOPPING=1") } }

      let messages = standIn.messages.filter { !$0.hasPrefix("STATUS=starting") }
      let pid = server.pid
      #expect(messages.count == 4, "\(messages)")
      guard messages.count == 4 else { return }
      #expect(messages[0] == "READY=1\nMAINPID=\(pid)\nSTATUS=serving with 2 worker(s)")
      #expect(messages[1].hasPrefix("RELOADING=1\nMONOTONIC_USEC="))
      #expect(messages[1].hasSuffix("\nSTATUS=rolling restart of 2 worker(s)"))
      #expect(messages[2] == "READY=1\nMAINPID=\(pid)\nSTATUS=rolling restart done")
      #expect(messages[3] == "STOPPING=1\nSTATUS=stopping on SIGTERM")
      // MONOTONIC_USEC is CLOCK_MONOTONIC of the same machine: not in the future.
      let reloadedAt = messages[1].split(separator: "\n")[1].dropFirst("MONOTONIC_USEC=".count)
      #expect(UInt64(reloadedAt).map { $0 <= SystemdNotificationState.monotonicMicroseconds() } == true)
    }
  }
}
