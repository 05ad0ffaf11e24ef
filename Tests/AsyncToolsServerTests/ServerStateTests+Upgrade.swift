@testable import AsyncToolsServer
import AsyncTools
import Testing
import UnixSignals

/// The binary upgrade of the main process, transition by transition: SIGUSR2 starts a new main
/// process; its readiness hands the server over (the old workers stop, the socket stays open, the
/// server ends as `.upgraded`); its failure (launch, exit, timeout) leaves this one serving; other
/// signals during an upgrade.
extension ServerStateTests {
  private func upgradeEffects(_ actions: [ServerState.Action]) -> [ServerState.Action] {
    actions.filter {
      switch $0 {
      case .log, .lifecycle: false
      default: true
      }
    }
  }

  private func upgradeLogs(_ actions: [ServerState.Action]) -> [String] {
    actions.compactMap { if case .log(_, let message) = $0 { message } else { nil } }
  }

  private func upgradeReports(_ actions: [ServerState.Action]) -> [ServerLifecycleEvent] {
    actions.compactMap { if case .lifecycle(let event) = $0 { event } else { nil } }
  }

  /// Two ready workers, and a new main process 42 started by SIGUSR2.
  private func upgrading(timeout: Duration = .seconds(60), graceful: Duration? = nil) -> ServerState {
    var configuration = ServerConfiguration(mode: .threads, numWorkers: 2)
    configuration.upgradeTimeout = timeout
    configuration.gracefulShutdownTimeout = graceful
    var state = ServerState(ServerState.Settings(configuration, processCount: 2))
    running(&state)
    _ = state.handle(.signal(.sigusr2), now: .zero)
    _ = state.handle(.upgradeLaunched(pid: 42), now: .zero)
    return state
  }

  @Test func upgradeStartsANewMainProcessAndWaitsForItsReadiness() {
    var state = state()
    running(&state)
    let actions = state.handle(.signal(.sigusr2), now: .zero)
    #expect(upgradeEffects(actions) == [.startUpgrade])
    #expect(upgradeReports(actions) == [.upgradeBegan])
    #expect(upgradeLogs(actions) == ["binary upgrade: starting a new main process"])
    #expect(
      upgradeEffects(state.handle(.upgradeLaunched(pid: 42), now: .zero)) == [
        .startTimer(.upgradeTimeout(pid: 42), after: .seconds(60))
      ])
  }

  /// Ready: the old workers stop with the default signal, the socket is left to the new workers
  /// (no `.stopListening`), systemd is told the new main pid (and not `STOPPING=1`).
  @Test func upgradeHandsOverWhenTheNewMainProcessIsReady() {
    var state = upgrading(graceful: .seconds(5))
    let actions = state.handle(.upgradeReady, now: .zero)
    #expect(
      upgradeEffects(actions) == [
        .stop(slot: 0, .sigterm), .stop(slot: 1, .sigterm), .startTimer(.gracefulShutdown, after: .seconds(5)),
      ])
    #expect(upgradeReports(actions) == [.handedOver(newMainProcess: 42)])
    #expect(upgradeLogs(actions).first == "binary upgrade: the new main process 42 is ready and takes over")
    #expect(upgradeEffects(state.handle(.exited(slot: 0, .clean), now: .zero)) == [])
    #expect(
      upgradeEffects(state.handle(.exited(slot: 1, .clean), now: .zero)) == [.finish(.upgraded(newMainProcess: 42))])
    #expect(ServerExit.upgraded(newMainProcess: 42).exitCode == 0)
  }

  /// After the hand-over the server is stopping: a stop signal is a second one, and forces it.
  @Test func upgradeStopSignalAfterTheHandOverKillsTheOldWorkers() {
    var state = upgrading()
    _ = state.handle(.upgradeReady, now: .zero)
    #expect(
      upgradeEffects(state.handle(.signal(.sigterm), now: .zero)) == [
        .kill(slot: 0), .kill(slot: 1), .startTimer(.killGrace, after: ServerState.killGrace),
      ])
    _ = state.handle(.exited(slot: 0, .clean), now: .zero)
    #expect(
      upgradeEffects(state.handle(.exited(slot: 1, .clean), now: .zero)) == [.finish(.upgraded(newMainProcess: 42))])
  }

  @Test func upgradeNewMainProcessEndingBeforeReadyLeavesThisOneServing() {
    var state = upgrading()
    let actions = state.handle(.upgradeEnded(status: "exited with status 1"), now: .zero)
    #expect(upgradeEffects(actions) == [])
    #expect(
      upgradeLogs(actions) == [
        "binary upgrade failed: the new main process 42 exited with status 1 before it was ready; this main process serves on"
      ])
    #expect(upgradeReports(actions) == [.upgradeFailed])
    #expect(upgradeEffects(state.handle(.timerFired(.upgradeTimeout(pid: 42)), now: .zero)) == [], "a stale timer")
    // Still serving: a stop is an ordinary stop, and a new upgrade can be tried.
    #expect(upgradeEffects(state.handle(.signal(.sigusr2), now: .zero)) == [.startUpgrade])
  }

  @Test func upgradeLaunchFailureLeavesThisOneServing() {
    var state = state()
    running(&state)
    _ = state.handle(.signal(.sigusr2), now: .zero)
    let actions = state.handle(.upgradeLaunchFailed(message: "ENOENT"), now: .zero)
    #expect(upgradeEffects(actions) == [])
    #expect(
      upgradeLogs(actions) == [
        "binary upgrade failed: the new main process could not be started: ENOENT; this main process serves on"
      ])
    #expect(upgradeEffects(state.handle(.signal(.sigusr2), now: .zero)) == [.startUpgrade])
  }

  @Test func upgradeNotReadyInTimeIsKilled() {
    var state = upgrading(timeout: .seconds(3))
    let actions = state.handle(.timerFired(.upgradeTimeout(pid: 42)), now: .zero)
    #expect(upgradeEffects(actions) == [.killUpgrade])
    #expect(
      upgradeLogs(actions) == [
        "binary upgrade failed: the new main process 42 was not ready within 3.0 seconds: killed it; this main process serves on"
      ])
    // Ready too late (the byte raced the kill): no hand-over.
    #expect(upgradeEffects(state.handle(.upgradeReady, now: .zero)) == [])
    let ended = state.handle(.upgradeEnded(status: "was killed by signal 9"), now: .zero)
    #expect(upgradeEffects(ended) == [] && upgradeReports(ended) == [])
    #expect(upgradeLogs(ended) == ["the new main process 42 was killed by signal 9"])
    #expect(upgradeEffects(state.handle(.signal(.sigusr2), now: .zero)) == [.startUpgrade])
  }

  /// A second SIGUSR2 and a SIGHUP during an upgrade, a SIGUSR2 during a rolling restart or a stop:
  /// logged, nothing else.
  @Test func upgradeOtherSignalsDuringAnUpgradeAreLoggedAndIgnored() {
    var state = upgrading()
    let again = state.handle(.signal(.sigusr2), now: .zero)
    #expect(upgradeEffects(again) == [])
    #expect(
      upgradeLogs(again) == ["ignoring SIGUSR2: a binary upgrade is already in progress (new main process 42)"])
    let hup = state.handle(.signal(.sighup), now: .zero)
    #expect(upgradeEffects(hup) == [])
    #expect(upgradeLogs(hup) == ["ignoring SIGHUP: a binary upgrade is in progress"])

    var restarting = self.state()
    running(&restarting)
    _ = restarting.handle(.signal(.sighup), now: .zero)
    let during = restarting.handle(.signal(.sigusr2), now: .zero)
    #expect(upgradeEffects(during) == [])
    #expect(
      upgradeLogs(during) == ["ignoring SIGUSR2: a rolling restart is in progress; send it again when it is done"])

    var stopping = self.state()
    running(&stopping)
    _ = stopping.handle(.signal(.sigterm), now: .zero)
    #expect(upgradeEffects(stopping.handle(.signal(.sigusr2), now: .zero)) == [])
  }

  /// A stop during the upgrade stops the new main process too, and the server ends only when it
  /// has ended (it must not outlive a stopped server); its late readiness changes nothing.
  @Test func upgradeStopDuringAnUpgradeStopsTheNewMainProcessToo() {
    var state = upgrading()
    let actions = state.handle(.signal(.sigterm), now: .zero)
    #expect(
      upgradeEffects(actions) == [
        .stopUpgrade(.sigterm), .stopListening, .stop(slot: 0, .sigterm), .stop(slot: 1, .sigterm),
      ])
    #expect(upgradeReports(actions) == [.stopBegan(.sigterm)])
    #expect(upgradeEffects(state.handle(.upgradeReady, now: .zero)) == [])
    _ = state.handle(.exited(slot: 0, .clean), now: .zero)
    #expect(upgradeEffects(state.handle(.exited(slot: 1, .clean), now: .zero)) == [], "the new main process still runs")
    #expect(
      upgradeEffects(state.handle(.upgradeEnded(status: "exited with status 0"), now: .zero)) == [
        .finish(.stopped(.sigterm))
      ])
  }

  /// A second stop signal kills the new main process with the workers; the stop is a forced one.
  @Test func upgradeForcedStopKillsTheNewMainProcess() {
    var state = upgrading()
    _ = state.handle(.signal(.sigterm), now: .zero)
    let effects = upgradeEffects(state.handle(.signal(.sigint), now: .zero))
    #expect(effects.first == .killUpgrade)
    #expect(effects.contains(.kill(slot: 0)) && effects.contains(.kill(slot: 1)))
    _ = state.handle(.exited(slot: 0, .clean), now: .zero)
    _ = state.handle(.exited(slot: 1, .clean), now: .zero)
    #expect(
      upgradeEffects(state.handle(.upgradeEnded(status: "was killed by signal 9"), now: .zero)) == [
        .finish(.forceStopped(.sigterm))
      ])
  }

  /// The wait timeout kills a new main process that ignores the stop (a binary that is no
  /// AsyncTools server keeps the stop signals blocked, as they were passed to it).
  @Test func upgradeWaitTimeoutKillsANewMainProcessThatIgnoresTheStop() {
    var configuration = ServerConfiguration(mode: .threads, numWorkers: 1)
    configuration.waitTimeout = .seconds(10)
    var state = ServerState(ServerState.Settings(configuration, processCount: 1))
    running(&state, workers: 1)
    _ = state.handle(.signal(.sigusr2), now: .zero)
    _ = state.handle(.upgradeLaunched(pid: 7), now: .zero)
    _ = state.handle(.signal(.sigterm), now: .zero)
    #expect(upgradeEffects(state.handle(.exited(slot: 0, .clean), now: .zero)) == [])
    let actions = state.handle(.timerFired(.wait), now: .zero)
    #expect(upgradeEffects(actions) == [.killUpgrade])
    #expect(upgradeLogs(actions) == ["killing the new main process 7: it outlived the wait timeout"])
    #expect(
      upgradeEffects(state.handle(.upgradeEnded(status: "was killed by signal 9"), now: .zero)) == [
        .finish(.forceStopped(.sigterm))
      ])
  }

  @Test func upgradeSignalCanBeDisabledOrMoved() throws {
    var configuration = ServerConfiguration(mode: .threads, numWorkers: 1)
    configuration.upgradeSignal = nil
    var disabled = ServerState(ServerState.Settings(configuration, processCount: 1))
    running(&disabled, workers: 1)
    #expect(disabled.handle(.signal(.sigusr2), now: .zero) == [])

    configuration.upgradeSignal = .sigusr1
    var moved = ServerState(ServerState.Settings(configuration, processCount: 1))
    running(&moved, workers: 1)
    #expect(upgradeEffects(moved.handle(.signal(.sigusr1), now: .zero)) == [.startUpgrade])
  }

  @Test func upgradeConfigurationIsValidated() {
    var configuration = ServerConfiguration()
    configuration.upgradeSignal = .sigterm
    #expect(throws: AsyncToolsError.invalidArgument("upgradeSignal SIGTERM must not also be a stop signal")) {
      try configuration.validate()
    }
    configuration.upgradeSignal = .sighup
    #expect(throws: AsyncToolsError.invalidArgument("upgradeSignal SIGHUP must not also be the restart signal")) {
      try configuration.validate()
    }
    configuration.upgradeSignal = .sigusr2
    configuration.upgradeTimeout = .zero
    #expect(throws: AsyncToolsError.self) { try configuration.validate() }
  }
}
