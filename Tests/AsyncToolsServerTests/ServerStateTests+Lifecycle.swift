@testable import AsyncToolsServer
import Testing
import UnixSignals

/// The lifecycle reports of the server's state machine (what systemd is told through
/// `SystemdNotifier`): readiness counts every worker not yet ended, a rolling restart begins and
/// ends (done or aborted), a stop begins.
extension ServerStateTests {
  private func reports(_ actions: [ServerState.Action]) -> [ServerLifecycleEvent] {
    actions.compactMap { if case .lifecycle(let event) = $0 { event } else { nil } }
  }

  /// A worker not launched yet counts: the first worker's readiness is not the server's.
  @Test func lifecycleReadinessCountsWorkersNotLaunchedYet() {
    var state = state(workers: 2)
    _ = state.handle(.start, now: .zero)
    #expect(reports(state.handle(.ready(slot: 0), now: .zero)) == [.workerReady(ready: 1, live: 2)])
    _ = state.handle(.launched(slot: 0), now: .zero)
    _ = state.handle(.launched(slot: 1), now: .zero)
    #expect(reports(state.handle(.ready(slot: 1), now: .zero)) == [.workerReady(ready: 2, live: 2)])
    #expect(reports(state.handle(.ready(slot: 1), now: .zero)) == [], "ready is reported once")
  }

  @Test func lifecycleRollingRestartBeginsAndEnds() {
    var state = state(workers: 1)
    running(&state, workers: 1)
    #expect(reports(state.handle(.signal(.sighup), now: .zero)) == [.restartBegan(workers: 1)])
    _ = state.handle(.launched(slot: 1), now: .zero)
    #expect(reports(state.handle(.ready(slot: 1), now: .zero)) == [.workerReady(ready: 2, live: 2)])
    #expect(reports(state.handle(.exited(slot: 0, .clean), now: .zero)) == [.restartEnded(completed: true)])
  }

  @Test func lifecycleAbortedRollingRestartEndsToo() {
    var state = state(workers: 1)
    running(&state, workers: 1)
    _ = state.handle(.signal(.sighup), now: .zero)
    #expect(
      reports(state.handle(.launchFailed(slot: 1, message: "no exe"), now: .zero)) == [.restartEnded(completed: false)])
    _ = state.handle(.signal(.sighup), now: .zero)
    _ = state.handle(.launched(slot: 2), now: .zero)
    #expect(reports(state.handle(.exited(slot: 2, .failed(.exited(index: 0, status: 9))), now: .zero)).first
      == .restartEnded(completed: false))
  }

  @Test func lifecycleStopIsReportedFirstAndOnce() {
    var state = state()
    running(&state)
    let actions = state.handle(.signal(.sigterm), now: .zero)
    #expect(actions.first == .lifecycle(.stopBegan(.sigterm)))
    #expect(reports(state.handle(.signal(.sigterm), now: .zero)) == [], "a second signal forces, it does not begin")
  }
}
