import UnixSignals

/// The binary upgrade of the main process, as part of the server's state machine: the upgrade
/// signal starts a new main process (``ServerState/Action/startUpgrade``); when every one of its
/// workers is ready it takes over and this server stops its own workers without closing the
/// listening socket (a *hand-over*, ending in ``ServerExit/upgraded(newMainProcess:)``); if it
/// cannot be started, ends before it is ready, or is not ready within the upgrade timeout (then it
/// is killed), this server logs why and serves on.
extension ServerState {
  /// A binary upgrade in progress: the new main process (`nil` while it is being launched), and
  /// what this server already did to it.
  struct Upgrade: Sendable, Hashable {
    var pid: Int32?
    /// Sent a stop signal: the server stops.
    var stopped = false
    /// Killed: not ready in time, or a forced stop.
    var killed = false
  }

  mutating func upgradeRequested(_ signal: UnixSignal) {
    switch phase {
    case .running where upgrade != nil:
      let pid = upgrade?.pid.map { " (new main process \($0))" } ?? ""
      actions.append(.log(.notice, "ignoring \(signal): a binary upgrade is already in progress\(pid)"))
    case .running where isRestarting:
      actions.append(
        .log(.notice, "ignoring \(signal): a rolling restart is in progress; send it again when it is done"))
    case .running:
      upgrade = Upgrade()
      actions.append(.log(.notice, "binary upgrade: starting a new main process"))
      actions.append(.lifecycle(.upgradeBegan))  // prod: observer
      actions.append(.startUpgrade)
    case .stopping, .finished:
      actions.append(.log(.notice, "ignoring \(signal): the server is stopping"))
    }
  }

  mutating func upgradeLaunched(_ pid: Int32) {
    guard upgrade != nil else { return }
    upgrade?.pid = pid
    actions.append(.log(.info, "binary upgrade: new main process \(pid) started, waiting for its workers"))
    switch phase {
    case .running:
      actions.append(.startTimer(.upgradeTimeout(pid: pid), after: settings.upgradeTimeout))
    case .stopping(let signal, _):
      stopUpgradeWithServer(signal)
    case .finished:
      break
    }
  }

  mutating func upgradeLaunchFailed(_ message: String) {
    guard upgrade != nil else { return }
    upgrade = nil
    failed("the new main process could not be started: \(message)")
  }

  mutating func upgradeReady() {
    guard let current = upgrade, let pid = current.pid, !current.stopped, !current.killed, case .running = phase
    else { return }
    upgrade = nil
    handedOverTo = pid
    actions.append(.log(.notice, "binary upgrade: the new main process \(pid) is ready and takes over"))
    actions.append(.lifecycle(.handedOver(newMainProcess: pid)))  // prod: observer
    beginStop(settings.defaultStopSignal, failure: nil, handover: true)
  }

  mutating func upgradeEnded(_ status: String) {
    guard let current = upgrade else { return }
    upgrade = nil
    let pid = current.pid.map { " \($0)" } ?? ""
    if current.stopped || current.killed {
      actions.append(.log(.info, "the new main process\(pid) \(status)"))
    } else {
      failed("the new main process\(pid) \(status) before it was ready")
    }
  }

  mutating func upgradeTimedOut(_ pid: Int32) {
    guard let current = upgrade, current.pid == pid, !current.stopped, !current.killed, case .running = phase
    else { return }
    upgrade?.killed = true
    actions.append(.killUpgrade)
    failed("the new main process \(pid) was not ready within \(settings.upgradeTimeout): killed it")
  }

  /// The server stops during an upgrade: the new main process stops too (before it took over, the
  /// server is still this one).
  mutating func stopUpgradeWithServer(_ signal: UnixSignal) {
    guard let current = upgrade, let pid = current.pid, !current.stopped, !current.killed else { return }
    upgrade?.stopped = true
    actions.append(.log(.notice, "binary upgrade abandoned: the server stops, and so does the new main process \(pid)"))
    actions.append(.stopUpgrade(signal))
  }

  /// A forced stop kills the new main process of an upgrade too (the server then ends as
  /// force-stopped, exit status 2, as when a worker is killed).
  mutating func killUpgradeWithServer(reason: String) {
    guard let current = upgrade, let pid = current.pid, !current.killed else { return }
    upgrade?.killed = true
    forced = true
    actions.append(.log(.warning, "killing the new main process \(pid): \(reason)"))
    actions.append(.killUpgrade)
  }

  private mutating func failed(_ reason: String) {
    actions.append(.log(.error, "binary upgrade failed: \(reason); this main process serves on"))
    actions.append(.lifecycle(.upgradeFailed))  // prod: observer
  }
}
