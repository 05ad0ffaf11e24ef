import Logging
import UnixSignals

/// The main process's event loop: starts the workers, reacts to signals, worker exits and
/// timeouts, and decides how the server ends. Mode-agnostic: a ``WorkerLauncher`` does the
/// starting.
///
/// Every event arrives through one `AsyncStream` and only ``run()`` touches the state, so there is
/// no lock and no event can be lost or handled twice. Nothing here waits for a worker to become
/// ready: a worker that dies at any moment is an `.exited` event like any other, which is why a
/// half-started worker cannot hang the server (aiotools 2.2.4 can), and why the server notices
/// that all workers have died without polling (aiotools #102).
struct ServerSupervisor<C: Clock<Duration>>: Sendable {
  let configuration: ServerConfiguration
  /// Workers plus extra processes.
  let processCount: Int
  let launcher: any WorkerLauncher
  let clock: C
  let events: AsyncStream<SupervisorEvent>
  let continuation: AsyncStream<SupervisorEvent>.Continuation
  /// Told of readiness, rolling restarts and the stop (prod: systemd notification).
  var observer: (any ServerLifecycleObserver)? = nil

  private enum SlotState { case starting, ready, exited }
  private struct Slot {
    var index: Int
    var handle: (any WorkerHandle)?
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

  private enum Phase {
    case running
    /// Stopping because of `signal`; `failure` when a worker failure (not an operator) caused it.
    case stopping(signal: UnixSignal, failure: WorkerFailure?)
  }

  func run() async -> ServerExit {
    let logger = configuration.logger
    var slots: [Slot] = []
    var phase = Phase.running
    var forced = false
    /// The last failure the `.ignore` policy let pass: the exit when every worker has ended.
    var ignoredFailure: WorkerFailure?
    /// The first failure while the server was already stopping (a tear-down that threw).
    var shutdownFailure: WorkerFailure?
    var launchFailure: WorkerFailure?
    var restarts: [C.Instant] = []
    var rolling: Rolling?

    return await withTaskGroup(of: Void.self) { group in
      func launch(slot: Int, index: Int) async -> Bool {
        do {
          slots[slot].handle = try await launcher.launch(slot: slot, index: index, events: continuation)
          slots[slot].state = .starting
          return true
        } catch {
          logger.error("worker \(index) could not be started: \(error)")
          slots[slot].state = .exited
          launchFailure = .startupFailed(index: index, message: "\(error)")
          return false
        }
      }

      func live() -> [Int] { slots.indices.filter { slots[$0].state != .exited } }

      func beginStop(_ signal: UnixSignal, failure: WorkerFailure?) {
        phase = .stopping(signal: signal, failure: failure)
        observer?.serverLifecycle(.stopBegan(signal))  // prod: observer
        rolling = nil
        logger.info("stopping \(live().count) worker(s) with \(signal)")
        for slot in live() where !slots[slot].retiring { slots[slot].handle?.stop(signal) }
        if let timeout = configuration.gracefulShutdownTimeout {
          group.addTask {
            if (try? await clock.sleep(for: timeout)) != nil { continuation.yield(.gracefulTimeout) }
          }
        }
        if let timeout = configuration.waitTimeout {
          group.addTask {
            if (try? await clock.sleep(for: timeout)) != nil { continuation.yield(.waitTimeout) }
          }
        }
      }

      func kill(_ reason: String) {
        for slot in live() where !slots[slot].killed {
          logger.warning("killing worker \(slots[slot].index): \(reason)")
          slots[slot].killed = true
          forced = true
          slots[slot].handle?.kill()
        }
      }

      /// A failed worker under the restart policy: restart it, or report that the budget is spent.
      func restart(slot: Int, maxRestarts: Int, within window: Duration) async -> Bool {
        let now = clock.now
        restarts = restarts.filter { $0.duration(to: now) < window }
        guard restarts.count < maxRestarts else {
          logger.error("more than \(maxRestarts) worker restarts within \(window): stopping the server")
          return false
        }
        restarts.append(now)
        logger.notice("restarting worker \(slots[slot].index)")
        return await launch(slot: slot, index: slots[slot].index)
      }

      /// The next step of a rolling restart: start a fresh worker in place of the next old one.
      func rollNext() async {
        guard var current = rolling else { return }
        current.pending.removeAll { slots[$0].state == .exited }
        guard let old = current.pending.first else {
          rolling = nil
          logger.notice("rolling restart done")
          observer?.serverLifecycle(.restartEnded(completed: true))  // prod: observer
          return
        }
        let index = slots[old].index
        let fresh = slots.count
        slots.append(Slot(index: index, handle: nil, state: .exited))
        current.fresh = fresh
        rolling = current
        logger.notice("rolling restart: starting a fresh worker \(index)")
        if await !launch(slot: fresh, index: index) {
          logger.error("rolling restart aborted: the fresh worker \(index) could not be started")
          rolling = nil
          observer?.serverLifecycle(.restartEnded(completed: false))  // prod: observer
        }
      }

      for index in 0..<processCount {
        slots.append(Slot(index: index, handle: nil, state: .exited))
        if await !launch(slot: index, index: index) { break }
      }
      if let launchFailure { beginStop(configuration.defaultStopSignal, failure: launchFailure) }

      eventLoop: for await event in events {
        switch event {
        case .signal(let signal):
          if signal == configuration.restartSignal {
            if case .running = phase, rolling == nil {
              let old = live().filter { !slots[$0].retiring }
              logger.notice("rolling restart of \(old.count) worker(s)")
              rolling = Rolling(pending: old, fresh: nil, retiring: nil)
              observer?.serverLifecycle(.restartBegan(workers: old.count))  // prod: observer
              await rollNext()
            }
            continue
          }
          guard configuration.stopSignals.contains(signal) else { continue }
          switch phase {
          case .running: beginStop(signal, failure: nil)
          case .stopping: kill("a second stop signal forces the stop")
          }
        case .ready(let slot):
          if slots[slot].state == .starting {
            slots[slot].state = .ready
            logger.info("worker \(slots[slot].index) is ready")
            let ready = slots.filter { $0.state == .ready }.count
            observer?.serverLifecycle(.workerReady(ready: ready, live: live().count))  // prod: observer
          }
          if let current = rolling, current.fresh == slot, let old = current.pending.first {
            rolling?.pending.removeFirst()
            rolling?.fresh = nil
            if slots[old].state == .exited {
              await rollNext()
            } else {
              rolling?.retiring = old
              slots[old].retiring = true
              logger.notice("rolling restart: stopping the old worker \(slots[old].index)")
              slots[old].handle?.stop(configuration.defaultStopSignal)
            }
          }
        case .exited(let slot, let outcome):
          slots[slot].state = .exited
          if slots[slot].retiring {
            // Replaced by a rolling restart: its end (even a failing tear-down, logged by the
            // launcher) does not concern the running server.
            logger.info("old worker \(slots[slot].index) ended")
            if rolling?.retiring == slot {
              rolling?.retiring = nil
              await rollNext()
            }
            if live().isEmpty { break eventLoop }
            continue
          }
          if rolling?.fresh == slot {
            logger.error("rolling restart aborted: the fresh worker \(slots[slot].index) ended before it was ready")
            rolling = nil
            observer?.serverLifecycle(.restartEnded(completed: false))  // prod: observer
          }
          rolling?.pending.removeAll { $0 == slot }
          if case .failed(let failure) = outcome, !slots[slot].killed {
            switch (phase, configuration.onWorkerFailure) {
            case (.stopping, _):
              shutdownFailure = shutdownFailure ?? failure
            case (.running, .stopServer):
              beginStop(configuration.defaultStopSignal, failure: failure)
            case (.running, .ignore):
              logger.warning("ignoring the failure of worker \(failure.index)")
              ignoredFailure = failure
            case (.running, .restart(let maxRestarts, let window)):
              if await !restart(slot: slot, maxRestarts: maxRestarts, within: window) {
                beginStop(configuration.defaultStopSignal, failure: failure)
              }
            }
          } else {
            logger.info("worker \(slots[slot].index) ended")
          }
        case .gracefulTimeout:
          for slot in live() {
            logger.notice("worker \(slots[slot].index) outlived the graceful shutdown timeout: cancelling it")
            slots[slot].handle?.cancel()
          }
        case .waitTimeout:
          kill("it outlived the wait timeout")
        }
        if live().isEmpty { break eventLoop }
      }
      group.cancelAll()

      switch phase {
      case .running:
        // Every worker ended on its own (aiotools #102: noticed at once, without spinning).
        logger.info("all workers have ended")
        return ignoredFailure.map { .workerFailed($0) } ?? .completed
      case .stopping(let signal, let failure):
        if let failure = failure ?? shutdownFailure { return .workerFailed(failure) }
        return forced ? .forceStopped(signal) : .stopped(signal)
      }
    }
  }
}
