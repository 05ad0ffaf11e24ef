import AsyncTools
import CoreMetrics

/// The swift-metrics instruments of one server (``ServerConfiguration/metrics``), dimension `server`:
/// worker starts, exits by cause, restarts by reason, launch failures, and how long a stop took.
///
/// It reads what the supervisor's state machine already decides — each event handled and the actions
/// it returned — so ``ServerState`` knows nothing of metrics. Only the supervisor's loop calls
/// ``observe(_:_:now:)``, in order; no lock is needed.
struct ServerMetrics {
  /// Why a worker ended, as the `cause` dimension of `asynctools_server_worker_exits_total`.
  enum ExitCause: String, CaseIterable {
    /// It ended without failing: its body returned, or it ended when the server stopped or cancelled it.
    case clean
    /// It threw during start-up or shutdown, or exited with a non-zero status.
    case failure
    /// A signal the server did not send killed it (a crash, the OOM killer, an operator's `kill -9`).
    case signal
    /// The server killed it (``ServerConfiguration/waitTimeout``, a second stop signal), or
    /// abandoned it in threads mode.
    case forced
  }

  /// Why a worker was started again, as the `reason` dimension of `asynctools_server_worker_restarts_total`.
  enum RestartReason: String, CaseIterable {
    /// ``ServerConfiguration/WorkerFailurePolicy/restart(maxRestarts:within:)`` replaced a failed worker.
    case failure
    /// A rolling restart (``ServerConfiguration/restartSignal``) started a fresh worker in place of an old one.
    case rolling
  }

  private let starts: any CounterHandler
  private let launchFailures: any CounterHandler
  private let exits: [ExitCause: any CounterHandler]
  private let restarts: [RestartReason: any CounterHandler]
  private let stopDuration: any TimerHandler

  /// Slots launched and not yet ended.
  private var live: Set<Int> = []
  /// Slots the server killed since they were launched.
  private var killed: Set<Int> = []
  /// Slots ever launched, and the worker indices they ran.
  private var launchedSlots: Set<Int> = []
  private var launchedIndices: Set<Int> = []
  /// When the stop began (time since the server started), until the server finished.
  private var stopBegan: Duration?

  init(_ configuration: MetricsConfiguration) {
    starts = configuration.counter("asynctools_server_worker_starts_total", kind: "server")
    launchFailures = configuration.counter("asynctools_server_worker_launch_failures_total", kind: "server")
    var exits: [ExitCause: any CounterHandler] = [:]
    for cause in ExitCause.allCases {
      exits[cause] = configuration.counter(
        "asynctools_server_worker_exits_total", kind: "server", [("cause", cause.rawValue)])
    }
    self.exits = exits
    var restarts: [RestartReason: any CounterHandler] = [:]
    for reason in RestartReason.allCases {
      restarts[reason] = configuration.counter(
        "asynctools_server_worker_restarts_total", kind: "server", [("reason", reason.rawValue)])
    }
    self.restarts = restarts
    stopDuration = configuration.timer("asynctools_server_stop_duration", kind: "server")
  }

  /// Records what `event` and the `actions` the state machine returned for it mean; `now` is the
  /// time since the server started.
  mutating func observe(_ event: SupervisorEvent, _ actions: [ServerState.Action], now: Duration) {
    switch event {
    case .launched: starts.increment(by: 1)
    case .launchFailed(let slot, _):
      live.remove(slot)
      launchFailures.increment(by: 1)
    case .exited(let slot, let outcome):
      // Exactly one exit per launch: the launchers report one, the set guards against a late duplicate.
      if live.remove(slot) != nil { exits[cause(slot, outcome)]?.increment(by: 1) }
    default: break
    }
    for action in actions {
      switch action {
      case .launch(let slot, let index):
        if launchedSlots.contains(slot) {
          restarts[.failure]?.increment(by: 1)
        } else if launchedIndices.contains(index) {
          restarts[.rolling]?.increment(by: 1)
        }
        launchedSlots.insert(slot)
        launchedIndices.insert(index)
        live.insert(slot)
        killed.remove(slot)
      case .kill(let slot): killed.insert(slot)
      // A stop, or a hand-over to the new main process of a binary upgrade (which keeps the socket listening).
      case .stopListening, .lifecycle(.handedOver): stopBegan = stopBegan ?? now
      case .finish:
        if let stopBegan { stopDuration.record(now - stopBegan) }
      default: break
      }
    }
  }

  private func cause(_ slot: Int, _ outcome: WorkerOutcome) -> ExitCause {
    if killed.contains(slot) { return .forced }
    switch outcome {
    case .clean: return .clean
    case .failed(.killed): return .signal
    case .failed: return .failure
    }
  }
}
