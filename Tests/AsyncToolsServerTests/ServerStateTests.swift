@testable import AsyncToolsServer
import Testing
import UnixSignals

/// The server's state machine, transition by transition: no processes, tasks or clocks.
@Suite("ServerState")
struct ServerStateTests {
  private typealias Action = ServerState.Action

  func state(
    workers: Int = 2, graceful: Duration? = nil, wait: Duration? = nil,
    policy: ServerConfiguration.WorkerFailurePolicy = .stopServer
  ) -> ServerState {
    var configuration = ServerConfiguration(mode: .threads, numWorkers: workers)
    configuration.gracefulShutdownTimeout = graceful
    configuration.waitTimeout = wait
    configuration.onWorkerFailure = policy
    return ServerState(ServerState.Settings(configuration, processCount: workers))
  }

  /// The actions without the log lines and lifecycle reports (ServerStateLifecycleTests has those).
  private func effects(_ actions: [Action]) -> [Action] {
    actions.filter {
      switch $0 {
      case .log, .lifecycle: false
      default: true
      }
    }
  }

  private func logs(_ actions: [Action]) -> [String] {
    actions.compactMap { if case .log(_, let message) = $0 { message } else { nil } }
  }

  /// Starts `workers` workers and makes them all ready.
  func running(_ state: inout ServerState, workers: Int = 2) {
    _ = state.handle(.start, now: .zero)
    for slot in 0..<workers { _ = state.handle(.launched(slot: slot), now: .zero) }
    for slot in 0..<workers { _ = state.handle(.ready(slot: slot), now: .zero) }
  }

  @Test func workersAreLaunchedOneAfterTheOther() {
    var state = state(workers: 3)
    #expect(effects(state.handle(.start, now: .zero)) == [.launch(slot: 0, index: 0)])
    #expect(effects(state.handle(.launched(slot: 0), now: .zero)) == [.launch(slot: 1, index: 1)])
    #expect(effects(state.handle(.launched(slot: 1), now: .zero)) == [.launch(slot: 2, index: 2)])
    #expect(effects(state.handle(.launched(slot: 2), now: .zero)) == [])
    #expect(logs(state.handle(.ready(slot: 1), now: .zero)) == ["worker 1 is ready"])
    #expect(logs(state.handle(.ready(slot: 1), now: .zero)) == [], "ready is reported once")
  }

  @Test func aLaunchFailureStopsTheWorkersStartedSoFarAndLaunchesNoMore() {
    var state = state(workers: 3)
    _ = state.handle(.start, now: .zero)
    _ = state.handle(.launched(slot: 0), now: .zero)
    let actions = state.handle(.launchFailed(slot: 1, message: "no exe"), now: .zero)
    #expect(effects(actions) == [.stopListening, .stop(slot: 0, .sigterm)])
    #expect(logs(actions).first == "worker 1 could not be started: no exe")
    #expect(effects(state.handle(.exited(slot: 0, .clean), now: .zero))
      == [.finish(.workerFailed(.startupFailed(index: 1, message: "no exe")))])
    #expect(state.isFinished)
  }

  @Test func aStopSignalStopsListeningStopsEveryWorkerAndStartsBothTimers() {
    var state = state(graceful: .seconds(5), wait: .seconds(10))
    running(&state)
    #expect(effects(state.handle(.signal(.sigint), now: .zero)) == [
      .stopListening, .stop(slot: 0, .sigint), .stop(slot: 1, .sigint),
      .startTimer(.gracefulShutdown, after: .seconds(5)), .startTimer(.wait, after: .seconds(10)),
    ])
    #expect(effects(state.handle(.exited(slot: 0, .clean), now: .zero)) == [])
    #expect(effects(state.handle(.exited(slot: 1, .clean), now: .zero)) == [.finish(.stopped(.sigint))])
  }

  @Test func theGracefulTimeoutCancelsTheWorkersStillRunning() {
    var state = state(graceful: .seconds(5))
    running(&state)
    _ = state.handle(.signal(.sigterm), now: .zero)
    _ = state.handle(.exited(slot: 0, .clean), now: .zero)
    #expect(effects(state.handle(.timerFired(.gracefulShutdown), now: .zero)) == [.cancel(slot: 1)])
    #expect(effects(state.handle(.exited(slot: 1, .clean), now: .zero)) == [.finish(.stopped(.sigterm))])
  }

  @Test func theWaitTimeoutKillsAndTheKillGraceAbandons() {
    var state = state(wait: .seconds(3))
    running(&state)
    _ = state.handle(.signal(.sigterm), now: .zero)
    #expect(effects(state.handle(.timerFired(.wait), now: .zero)) == [
      .kill(slot: 0), .kill(slot: 1), .startTimer(.killGrace, after: ServerState.killGrace),
    ])
    _ = state.handle(.exited(slot: 0, .clean), now: .zero)
    let abandon = state.handle(.timerFired(.killGrace), now: .zero)
    #expect(effects(abandon) == [.abandon(slot: 1)])
    #expect(effects(state.handle(.exited(slot: 1, .clean), now: .zero)) == [.finish(.forceStopped(.sigterm))])
  }

  @Test func aSecondStopSignalKillsOnce() {
    var state = state()
    running(&state)
    _ = state.handle(.signal(.sigint), now: .zero)
    let kills = effects(state.handle(.signal(.sigint), now: .zero)).filter { if case .kill = $0 { true } else { false } }
    #expect(kills.count == 2)
    #expect(effects(state.handle(.signal(.sigterm), now: .zero)) == [], "already killed")
  }

  @Test func aKilledWorkersFailureIsNotAFailure() {
    var state = state()
    running(&state)
    _ = state.handle(.signal(.sigint), now: .zero)
    _ = state.handle(.signal(.sigint), now: .zero)
    _ = state.handle(.exited(slot: 0, .failed(.killed(index: 0, signal: 9))), now: .zero)
    #expect(effects(state.handle(.exited(slot: 1, .clean), now: .zero)) == [.finish(.forceStopped(.sigint))])
  }

  @Test func aFailureStopsTheServerUnderTheDefaultPolicy() {
    var state = state()
    running(&state)
    let failure = WorkerFailure.killed(index: 1, signal: 9)
    #expect(effects(state.handle(.exited(slot: 1, .failed(failure)), now: .zero)) == [
      .stopListening, .stop(slot: 0, .sigterm),
    ])
    #expect(effects(state.handle(.exited(slot: 0, .clean), now: .zero)) == [.finish(.workerFailed(failure))])
  }

  @Test func theIgnorePolicyKeepsGoingAndReportsTheLastFailureAtTheEnd() {
    var state = state(policy: .ignore)
    running(&state)
    let failure = WorkerFailure.exited(index: 0, status: 7)
    #expect(effects(state.handle(.exited(slot: 0, .failed(failure)), now: .zero)) == [])
    #expect(effects(state.handle(.exited(slot: 1, .clean), now: .zero)) == [.finish(.workerFailed(failure))])
  }

  @Test func theRestartPolicyRelaunchesTheSlotWithinItsWindow() {
    var state = state(policy: .restart(maxRestarts: 2, within: .seconds(10)))
    running(&state)
    let failure = WorkerFailure.killed(index: 1, signal: 9)
    #expect(effects(state.handle(.exited(slot: 1, .failed(failure)), now: .seconds(1))) == [.launch(slot: 1, index: 1)])
    _ = state.handle(.launched(slot: 1), now: .seconds(1))
    #expect(effects(state.handle(.exited(slot: 1, .failed(failure)), now: .seconds(2))) == [.launch(slot: 1, index: 1)])
    _ = state.handle(.launched(slot: 1), now: .seconds(2))
    // A third failure within 10 s of the first restart: the window is full.
    #expect(effects(state.handle(.exited(slot: 1, .failed(failure)), now: .seconds(3))) == [
      .stopListening, .stop(slot: 0, .sigterm),
    ])
  }

  @Test func allWorkersEndingOnTheirOwnCompletesTheServer() {
    var state = state()
    running(&state)
    _ = state.handle(.exited(slot: 0, .clean), now: .zero)
    #expect(effects(state.handle(.exited(slot: 1, .clean), now: .zero)) == [.finish(.completed)])
    #expect(state.handle(.signal(.sigint), now: .zero) == [], "a finished server ignores everything")
  }

  @Test func aTearDownFailureDuringTheStopIsReported() {
    var state = state()
    running(&state)
    _ = state.handle(.signal(.sigterm), now: .zero)
    let failure = WorkerFailure.shutdownFailed(index: 0, message: "boom")
    _ = state.handle(.exited(slot: 0, .failed(failure)), now: .zero)
    #expect(effects(state.handle(.exited(slot: 1, .clean), now: .zero)) == [.finish(.workerFailed(failure))])
  }

  @Test func aRollingRestartReplacesOneWorkerAtATimeFreshFirst() {
    var state = state(graceful: .seconds(5), wait: .seconds(10))
    running(&state)
    #expect(effects(state.handle(.signal(.sighup), now: .zero)) == [.launch(slot: 2, index: 0)])
    _ = state.handle(.launched(slot: 2), now: .zero)
    #expect(effects(state.handle(.ready(slot: 2), now: .zero)) == [
      .stop(slot: 0, .sigterm), .startTimer(.retiringGracefulShutdown(slot: 0), after: .seconds(5)),
      .startTimer(.retiringWait(slot: 0), after: .seconds(10)),
    ])
    #expect(effects(state.handle(.timerFired(.retiringGracefulShutdown(slot: 0)), now: .zero)) == [.cancel(slot: 0)])
    #expect(effects(state.handle(.exited(slot: 0, .clean), now: .zero)) == [.launch(slot: 3, index: 1)])
    #expect(effects(state.handle(.timerFired(.retiringWait(slot: 0)), now: .zero)) == [], "ended: nothing to kill")
    _ = state.handle(.launched(slot: 3), now: .zero)
    _ = state.handle(.ready(slot: 3), now: .zero)
    let done = state.handle(.exited(slot: 1, .clean), now: .zero)
    #expect(logs(done).contains("rolling restart done"))
    #expect(effects(done) == [])
  }

  @Test func theRetiringWaitTimeoutKillsTheOldWorkerWithoutForcingTheServer() {
    var state = state(workers: 1, wait: .seconds(10))
    running(&state, workers: 1)
    _ = state.handle(.signal(.sighup), now: .zero)
    _ = state.handle(.launched(slot: 1), now: .zero)
    _ = state.handle(.ready(slot: 1), now: .zero)
    #expect(effects(state.handle(.timerFired(.retiringWait(slot: 0)), now: .zero)) == [
      .kill(slot: 0), .startTimer(.killGrace, after: ServerState.killGrace),
    ])
    _ = state.handle(.exited(slot: 0, .clean), now: .zero)
    _ = state.handle(.signal(.sigterm), now: .zero)
    #expect(effects(state.handle(.exited(slot: 1, .clean), now: .zero)) == [.finish(.stopped(.sigterm))])
  }

  @Test func aRestartSignalDuringARestartIsQueuedNotDropped() {
    var state = state(workers: 1)
    running(&state, workers: 1)
    _ = state.handle(.signal(.sighup), now: .zero)
    let second = state.handle(.signal(.sighup), now: .zero)
    #expect(effects(second) == [])
    #expect(logs(second) == ["SIGHUP during a rolling restart: queued, another restart follows this one"])
    #expect(
      logs(state.handle(.signal(.sighup), now: .zero)) == ["SIGHUP during a rolling restart: a restart is already queued"])
    _ = state.handle(.launched(slot: 1), now: .zero)
    _ = state.handle(.ready(slot: 1), now: .zero)
    // The first restart ends: the queued one starts, replacing the fresh worker.
    let end = state.handle(.exited(slot: 0, .clean), now: .zero)
    #expect(logs(end).contains("rolling restart done"))
    #expect(logs(end).contains("starting the queued rolling restart"))
    #expect(effects(end) == [.launch(slot: 2, index: 0)])
  }

  @Test func aRestartSignalWhileStoppingIsLogged() {
    var state = state()
    running(&state)
    _ = state.handle(.signal(.sigterm), now: .zero)
    let actions = state.handle(.signal(.sighup), now: .zero)
    #expect(effects(actions) == [])
    #expect(logs(actions) == ["ignoring SIGHUP: the server is stopping"])
  }

  @Test func aFreshWorkerDyingBeforeItIsReadyAbortsTheRestart() {
    var state = state(policy: .ignore)
    running(&state)
    _ = state.handle(.signal(.sighup), now: .zero)
    _ = state.handle(.launched(slot: 2), now: .zero)
    let failure = WorkerFailure.startupFailed(index: 0, message: "x")
    let actions = state.handle(.exited(slot: 2, .failed(failure)), now: .zero)
    #expect(logs(actions).contains("rolling restart aborted: the fresh worker 0 ended before it was ready"))
    #expect(effects(actions) == [], "the old workers keep serving")
    // A new restart may start.
    #expect(effects(state.handle(.signal(.sighup), now: .zero)) == [.launch(slot: 3, index: 0)])
  }

  @Test func aStopDuringARestartStopsTheFreshWorkerTooAndLeavesTheRetiringOneAlone() {
    var state = state()
    running(&state)
    _ = state.handle(.signal(.sighup), now: .zero)
    _ = state.handle(.launched(slot: 2), now: .zero)
    _ = state.handle(.ready(slot: 2), now: .zero)  // slot 0 retiring
    let stop = state.handle(.signal(.sigint), now: .zero)
    #expect(effects(stop) == [.stopListening, .stop(slot: 1, .sigint), .stop(slot: 2, .sigint)])
    #expect(logs(stop).contains("rolling restart abandoned: the server stops"))
  }

  @Test func aStopBeforeEveryWorkerIsLaunchedLaunchesNoMoreAndStopsTheLaunchedOnes() {
    var state = state(workers: 3)
    _ = state.handle(.start, now: .zero)
    let stop = state.handle(.signal(.sigterm), now: .zero)
    #expect(effects(stop) == [.stopListening, .stop(slot: 0, .sigterm)])
    // The launch in flight returns: it gets the stop, and no further worker is launched.
    #expect(effects(state.handle(.launched(slot: 0), now: .zero)) == [.stop(slot: 0, .sigterm)])
    #expect(effects(state.handle(.exited(slot: 0, .clean), now: .zero)) == [.finish(.stopped(.sigterm))])
  }

  @Test func signalsThatAreNeitherStopNorRestartAreIgnored() {
    var state = state()
    running(&state)
    #expect(state.handle(.signal(.sigusr1), now: .zero) == [])
  }
}
