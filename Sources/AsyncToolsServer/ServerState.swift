import AsyncTools
import Logging
import UnixSignals

/// Everything the main process decides about its workers, as a pure state machine: events in
/// (``SupervisorEvent``: a signal, a worker started, became ready or ended, a timer fired), actions
/// out (launch, stop, cancel or kill a worker, start a timer, stop listening, log, finish). No
/// tasks, processes or clocks: ``ServerSupervisor`` performs the actions for both modes, and the
/// unit tests drive every transition directly.
///
/// Workers live in *slots*: slot `i < processCount` is the first run of worker `i`; a restart under
/// ``ServerConfiguration/WorkerFailurePolicy/restart(maxRestarts:within:)`` reuses the slot, a
/// rolling restart appends a fresh slot with the same `processIndex`.
struct ServerState {
  /// What the state machine reads of the configuration.
  struct Settings: Sendable {
    var processCount: Int
    var stopSignals: [UnixSignal]
    var restartSignal: UnixSignal?
    var upgradeSignal: UnixSignal?
    var upgradeTimeout: Duration
    var defaultStopSignal: UnixSignal
    var gracefulShutdownTimeout: Duration?
    var waitTimeout: Duration?
    var onWorkerFailure: ServerConfiguration.WorkerFailurePolicy

    init(_ configuration: ServerConfiguration, processCount: Int) {
      self.processCount = processCount
      stopSignals = configuration.stopSignals
      restartSignal = configuration.restartSignal
      upgradeSignal = configuration.upgradeSignal
      upgradeTimeout = configuration.upgradeTimeout
      defaultStopSignal = configuration.defaultStopSignal
      gracefulShutdownTimeout = configuration.gracefulShutdownTimeout
      waitTimeout = configuration.waitTimeout
      onWorkerFailure = configuration.onWorkerFailure
    }
  }

  /// What the supervisor must do, in order.
  enum Action: Sendable, Hashable {
    /// Start worker `index` in `slot`; report `.launched(slot)` or `.launchFailed` back at once.
    case launch(slot: Int, index: Int)
    /// Deliver a stop signal to the worker in `slot`.
    case stop(slot: Int, UnixSignal)
    /// Phase two of a stop: cancel the worker's body.
    case cancel(slot: Int)
    /// End the worker now (SIGKILL; threads: cancel its task).
    case kill(slot: Int)
    /// Report a killed worker that has not ended as ended (threads: a task ignoring cancellation).
    case abandon(slot: Int)
    /// Report `.timerFired(timer)` after `delay`.
    case startTimer(ServerTimer, after: Duration)
    /// Stop listening on the shared socket in every process: new connections are refused.
    case stopListening
    case log(Logger.Level, String)
    /// Tell the lifecycle observer (prod: systemd notification, ``ServerLifecycleObserver``).
    case lifecycle(ServerLifecycleEvent)
    /// Every worker has ended: the server ends with this.
    case finish(ServerExit)
    /// Start the new main process of a binary upgrade; report `.upgradeLaunched` or
    /// `.upgradeLaunchFailed` back at once, then `.upgradeReady` or `.upgradeEnded`.
    case startUpgrade
    /// Deliver a stop signal to the new main process (the server stops during the upgrade).
    case stopUpgrade(UnixSignal)
    /// SIGKILL the new main process (not ready in time, or a forced stop); its workers follow
    /// (their parent-death signal).
    case killUpgrade
  }

  private enum SlotState { case pending, starting, ready, exited }
  private struct Slot {
    var index: Int
    var state: SlotState
    var killed = false
    /// Replaced by a rolling restart: already sent its stop signal.
    var retiring = false
  }

  /// A rolling restart in progress: the old slots still to replace, the fresh slot whose readiness
  /// is awaited, and the old slot being stopped (one step at a time).
  private struct Rolling {
    var pending: [Int]
    var fresh: Int?
    var retiring: Int?
  }

  enum Phase {
    case running
    /// Stopping because of `signal`; `failure` when a worker failure (not an operator) caused it.
    case stopping(signal: UnixSignal, failure: WorkerFailure?)
    case finished
  }

  let settings: Settings
  private var slots: [Slot]
  var phase = Phase.running
  var forced = false
  /// The last failure the `.ignore` policy let pass: the exit when every worker has ended.
  private var ignoredFailure: WorkerFailure?
  /// The first failure while the server was already stopping (a tear-down that threw).
  private var shutdownFailure: WorkerFailure?
  private var window: RestartWindow?
  private var rolling: Rolling?
  /// Whether a rolling restart is in progress.
  var isRestarting: Bool { rolling != nil }
  /// A restart signal arrived during a rolling restart: another one follows it.
  private var restartQueued = false
  /// The binary upgrade in progress (ServerState+Upgrade.swift).
  var upgrade: Upgrade?
  /// The new main process the server was handed over to: the server is stopping its workers.
  var handedOverTo: Int32?
  /// The actions of the transition being computed.
  var actions: [Action] = []

  init(_ settings: Settings) {
    self.settings = settings
    slots = (0..<settings.processCount).map { Slot(index: $0, state: .pending) }
    if case .restart(let maxRestarts, let period) = settings.onWorkerFailure {
      window = RestartWindow(maxRestarts: maxRestarts, period: period)
    }
  }

  /// Whether the server has ended (the `.finish` action was returned).
  var isFinished: Bool {
    if case .finished = phase { return true }
    return false
  }

  /// Handles one event; `now` is the time since the server started (the restart window's clock).
  mutating func handle(_ event: SupervisorEvent, now: Duration) -> [Action] {
    actions = []
    guard !isFinished else { return [] }
    switch event {
    case .start: launchNextPending()
    case .launched(let slot): launched(slot)
    case .launchFailed(let slot, let message): launchFailed(slot, message: message)
    case .signal(let signal): received(signal)
    case .ready(let slot): ready(slot)
    case .exited(let slot, let outcome): exited(slot, outcome, now: now)
    case .timerFired(let timer): fired(timer)
    case .upgradeLaunched(let pid): upgradeLaunched(pid)
    case .upgradeLaunchFailed(let message): upgradeLaunchFailed(message)
    case .upgradeReady: upgradeReady()
    case .upgradeEnded(let status): upgradeEnded(status)
    }
    finishIfAllEnded()
    return actions
  }

  // MARK: - Starting

  private var live: [Int] { slots.indices.filter { slots[$0].state == .starting || slots[$0].state == .ready } }

  private mutating func launch(_ slot: Int) {
    slots[slot].state = .starting
    actions.append(.launch(slot: slot, index: slots[slot].index))
  }

  /// Workers start one after the other (each launch is reported before the next begins).
  private mutating func launchNextPending() {
    guard case .running = phase, let next = slots.indices.first(where: { slots[$0].state == .pending }) else { return }
    launch(next)
  }

  private mutating func launched(_ slot: Int) {
    switch phase {
    case .running: launchNextPending()
    case .stopping(let signal, _): if slots[slot].state != .exited { actions.append(.stop(slot: slot, signal)) }
    case .finished: break
    }
  }

  private mutating func launchFailed(_ slot: Int, message: String) {
    let index = slots[slot].index
    slots[slot].state = .exited
    actions.append(.log(.error, "worker \(index) could not be started: \(message)"))
    if rolling?.fresh == slot {
      actions.append(.log(.error, "rolling restart aborted: the fresh worker \(index) could not be started"))
      endRolling(completed: false)
    } else if case .running = phase {
      beginStop(settings.defaultStopSignal, failure: .startupFailed(index: index, message: message))
    }
  }

  // MARK: - Signals

  private mutating func received(_ signal: UnixSignal) {
    if signal == settings.restartSignal {
      restartRequested(signal)
    } else if signal == settings.upgradeSignal {
      upgradeRequested(signal)
    } else if settings.stopSignals.contains(signal) {
      switch phase {
      case .running: beginStop(signal, failure: nil)
      case .stopping: kill(reason: "a second stop signal forces the stop")
      case .finished: break
      }
    }
  }

  /// Stops every worker with `signal`. A hand-over (the new main process of an upgrade took over)
  /// leaves the listening socket alone, which the new main process's workers accept on.
  mutating func beginStop(_ signal: UnixSignal, failure: WorkerFailure?, handover: Bool = false) {
    phase = .stopping(signal: signal, failure: failure)
    if !handover { actions.append(.lifecycle(.stopBegan(signal))) }  // prod: observer
    if rolling != nil || restartQueued { actions.append(.log(.notice, "rolling restart abandoned: the server stops")) }
    rolling = nil
    restartQueued = false
    stopUpgradeWithServer(signal)
    for slot in slots.indices where slots[slot].state == .pending { slots[slot].state = .exited }
    if !handover { actions.append(.stopListening) }
    actions.append(.log(.info, "stopping \(live.count) worker(s) with \(signal)"))
    for slot in live where !slots[slot].retiring { actions.append(.stop(slot: slot, signal)) }
    if let timeout = settings.gracefulShutdownTimeout { actions.append(.startTimer(.gracefulShutdown, after: timeout)) }
    if let timeout = settings.waitTimeout { actions.append(.startTimer(.wait, after: timeout)) }
  }

  private mutating func kill(reason: String) {
    killUpgradeWithServer(reason: reason)
    let victims = live.filter { !slots[$0].killed }
    for slot in victims {
      actions.append(.log(.warning, "killing worker \(slots[slot].index): \(reason)"))
      slots[slot].killed = true
      forced = true
      actions.append(.kill(slot: slot))
    }
    if !victims.isEmpty { actions.append(.startTimer(.killGrace, after: Self.killGrace)) }
  }

  /// How long a killed worker may take to end before it is abandoned: a process ends at once
  /// (SIGKILL), a task when it next checks for cancellation — or never.
  static let killGrace = Duration.milliseconds(50)

  // MARK: - Rolling restart

  private mutating func restartRequested(_ signal: UnixSignal) {
    switch phase {
    case .running where upgrade != nil:
      actions.append(.log(.notice, "ignoring \(signal): a binary upgrade is in progress"))
    case .running where rolling != nil:
      if restartQueued {
        actions.append(.log(.notice, "\(signal) during a rolling restart: a restart is already queued"))
      } else {
        restartQueued = true
        actions.append(.log(.notice, "\(signal) during a rolling restart: queued, another restart follows this one"))
      }
    case .running:
      let old = live.filter { !slots[$0].retiring }
      actions.append(.log(.notice, "rolling restart of \(old.count) worker(s)"))
      rolling = Rolling(pending: old, fresh: nil, retiring: nil)
      actions.append(.lifecycle(.restartBegan(workers: old.count)))  // prod: observer
      rollNext()
    case .stopping, .finished:
      actions.append(.log(.notice, "ignoring \(signal): the server is stopping"))
    }
  }

  /// The next step of a rolling restart: start a fresh worker in place of the next old one.
  private mutating func rollNext() {
    guard var current = rolling else { return }
    current.pending.removeAll { slots[$0].state == .exited }
    guard let old = current.pending.first else {
      actions.append(.log(.notice, "rolling restart done"))
      endRolling(completed: true)
      return
    }
    let fresh = slots.count
    slots.append(Slot(index: slots[old].index, state: .pending))
    current.fresh = fresh
    rolling = current
    actions.append(.log(.notice, "rolling restart: starting a fresh worker \(slots[old].index)"))
    launch(fresh)
  }

  /// Ends the rolling restart (done or aborted) and starts the queued one, if any.
  private mutating func endRolling(completed: Bool) {
    rolling = nil
    actions.append(.lifecycle(.restartEnded(completed: completed)))  // prod: observer
    if restartQueued, case .running = phase, let signal = settings.restartSignal {
      restartQueued = false
      actions.append(.log(.notice, "starting the queued rolling restart"))
      restartRequested(signal)
    }
  }

  private mutating func retire(_ old: Int) {
    rolling?.retiring = old
    slots[old].retiring = true
    actions.append(.log(.notice, "rolling restart: stopping the old worker \(slots[old].index)"))
    actions.append(.stop(slot: old, settings.defaultStopSignal))
    if let timeout = settings.gracefulShutdownTimeout {
      actions.append(.startTimer(.retiringGracefulShutdown(slot: old), after: timeout))
    }
    if let timeout = settings.waitTimeout { actions.append(.startTimer(.retiringWait(slot: old), after: timeout)) }
  }

  // MARK: - Worker events

  private mutating func ready(_ slot: Int) {
    if slots[slot].state == .starting {
      slots[slot].state = .ready
      actions.append(.log(.info, "worker \(slots[slot].index) is ready"))
      let (ready, total) = (slots.filter { $0.state == .ready }.count, slots.filter { $0.state != .exited }.count)
      actions.append(.lifecycle(.workerReady(ready: ready, live: total)))  // prod: observer
    }
    guard let current = rolling, current.fresh == slot, let old = current.pending.first else { return }
    rolling?.pending.removeFirst()
    rolling?.fresh = nil
    if slots[old].state == .exited { rollNext() } else { retire(old) }
  }

  private mutating func exited(_ slot: Int, _ outcome: WorkerOutcome, now: Duration) {
    guard slots[slot].state == .starting || slots[slot].state == .ready else { return }
    slots[slot].state = .exited
    if slots[slot].retiring {
      // Replaced by a rolling restart: its end (even a failing tear-down, logged by the launcher)
      // does not concern the running server.
      actions.append(.log(.info, "old worker \(slots[slot].index) ended"))
      if rolling?.retiring == slot {
        rolling?.retiring = nil
        rollNext()
      }
      return
    }
    if rolling?.fresh == slot {
      let index = slots[slot].index
      actions.append(.log(.error, "rolling restart aborted: the fresh worker \(index) ended before it was ready"))
      endRolling(completed: false)
    }
    rolling?.pending.removeAll { $0 == slot }
    guard case .failed(let failure) = outcome, !slots[slot].killed else {
      actions.append(.log(.info, "worker \(slots[slot].index) ended"))
      return
    }
    failed(slot, failure, now: now)
  }

  /// A worker failure the server did not cause: the policy decides.
  private mutating func failed(_ slot: Int, _ failure: WorkerFailure, now: Duration) {
    switch (phase, settings.onWorkerFailure) {
    case (.stopping, _), (.finished, _):
      shutdownFailure = shutdownFailure ?? failure
    case (.running, .stopServer):
      beginStop(settings.defaultStopSignal, failure: failure)
    case (.running, .ignore):
      actions.append(.log(.warning, "ignoring the failure of worker \(failure.index)"))
      ignoredFailure = failure
    case (.running, .restart(let maxRestarts, let period)):
      if window?.admit(at: now) == true {
        actions.append(.log(.notice, "restarting worker \(slots[slot].index)"))
        launch(slot)
      } else {
        actions.append(.log(.error, "more than \(maxRestarts) worker restarts within \(period): stopping the server"))
        beginStop(settings.defaultStopSignal, failure: failure)
      }
    }
  }

  private mutating func fired(_ timer: ServerTimer) {
    switch timer {
    case .upgradeTimeout(let pid):
      upgradeTimedOut(pid)
    case .gracefulShutdown:
      for slot in live {
        actions.append(
          .log(.notice, "worker \(slots[slot].index) outlived the graceful shutdown timeout: cancelling it"))
        actions.append(.cancel(slot: slot))
      }
    case .wait:
      kill(reason: "it outlived the wait timeout")
    case .retiringGracefulShutdown(let slot):
      guard slots[slot].state != .exited else { return }
      actions.append(
        .log(.notice, "old worker \(slots[slot].index) outlived the graceful shutdown timeout: cancelling it"))
      actions.append(.cancel(slot: slot))
    case .retiringWait(let slot):
      guard slots[slot].state != .exited, !slots[slot].killed else { return }
      actions.append(.log(.warning, "killing old worker \(slots[slot].index): it outlived the wait timeout"))
      slots[slot].killed = true
      actions.append(.kill(slot: slot))
      actions.append(.startTimer(.killGrace, after: Self.killGrace))
    case .killGrace:
      for slot in live where slots[slot].killed {
        actions.append(
          .log(
            .error, "worker \(slots[slot].index) ignores its cancellation: abandoned (the process must exit to end it)"))
        actions.append(.abandon(slot: slot))
      }
    }
  }

  // MARK: - The end

  private mutating func finishIfAllEnded() {
    // The new main process of an upgrade is awaited too: it must not outlive a stopping server.
    guard live.isEmpty, !slots.contains(where: { $0.state == .pending }), upgrade == nil else { return }
    let exit: ServerExit
    switch phase {
    case .running:
      // Every worker ended on its own (aiotools #102: noticed at once, without spinning).
      actions.append(.log(.info, "all workers have ended"))
      exit = ignoredFailure.map { .workerFailed($0) } ?? .completed
    case .stopping(let signal, let failure):
      if let pid = handedOverTo {
        exit = .upgraded(newMainProcess: pid)
      } else if let failure = failure ?? shutdownFailure {
        exit = .workerFailed(failure)
      } else {
        exit = forced ? .forceStopped(signal) : .stopped(signal)
      }
    case .finished:
      return
    }
    phase = .finished
    actions.append(.finish(exit))
  }
}

/// The timers of the supervisor; each reports `.timerFired` once.
enum ServerTimer: Sendable, Hashable {
  /// ``ServerConfiguration/gracefulShutdownTimeout`` after the stop began.
  case gracefulShutdown
  /// ``ServerConfiguration/waitTimeout`` after the stop began.
  case wait
  /// ``ServerConfiguration/gracefulShutdownTimeout`` after the old worker in `slot` was stopped by
  /// a rolling restart.
  case retiringGracefulShutdown(slot: Int)
  /// ``ServerConfiguration/waitTimeout`` after the old worker in `slot` was stopped by a rolling
  /// restart.
  case retiringWait(slot: Int)
  /// A short grace after a kill: the killed workers that have not ended are abandoned.
  case killGrace
  /// ``ServerConfiguration/upgradeTimeout`` after the new main process `pid` was started.
  case upgradeTimeout(pid: Int32)
}
