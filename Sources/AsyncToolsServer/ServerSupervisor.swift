import Logging
import UnixSignals

/// The main process's event loop: feeds every event to the server's state machine
/// (``ServerState``) and performs the actions it returns — launching, signalling and killing
/// workers through a ``WorkerLauncher`` (so it is mode-agnostic), starting timers, logging.
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
  /// Stops listening on the shared socket (every process shares it): new connections are refused.
  let stopListening: @Sendable () -> Void
  /// Told of readiness, rolling restarts and the stop (prod: systemd notification).
  var observer: (any ServerLifecycleObserver)? = nil
  /// Starts and signals the new main process of a binary upgrade; `nil`: upgrades are disabled.
  var upgrader: MainProcessUpgrader? = nil

  func run() async -> ServerExit {
    var state = ServerState(ServerState.Settings(configuration, processCount: processCount))
    var metrics = configuration.metrics.map(ServerMetrics.init)  // obs: nil unless configured
    var handles: [Int: any WorkerHandle] = [:]
    let start = clock.now
    return await withTaskGroup(of: Void.self) { timers in
      // Events the supervisor itself reports (a launch's result) go first, before the stream's.
      var own: [SupervisorEvent] = [.start]
      var exit: ServerExit?
      var stream = events.makeAsyncIterator()
      while exit == nil {
        if own.isEmpty, let next = await stream.next() { own.append(next) }
        guard !own.isEmpty else { break }
        let event = own.removeFirst()
        let now = start.duration(to: clock.now)
        let actions = state.handle(event, now: now)
        metrics?.observe(event, actions, now: now)
        for action in actions {
          if case .finish(let value) = action { exit = value }
          if let reported = await perform(action, handles: &handles, timers: &timers) { own.append(reported) }
        }
      }
      timers.cancelAll()
      return exit ?? .completed
    }
  }

  /// Performs one action; returns the event it reports back at once (a launch's result), if any.
  private func perform(
    _ action: ServerState.Action, handles: inout [Int: any WorkerHandle], timers: inout TaskGroup<Void>
  ) async -> SupervisorEvent? {
    switch action {
    case .launch(let slot, let index):
      do {
        handles[slot] = try await launcher.launch(slot: slot, index: index, events: continuation)
        return .launched(slot: slot)
      } catch {
        return .launchFailed(slot: slot, message: "\(error)")
      }
    case .stop(let slot, let signal): handles[slot]?.stop(signal)
    case .cancel(let slot): handles[slot]?.cancel()
    case .kill(let slot): handles[slot]?.kill()
    case .abandon(let slot): handles[slot]?.abandon()
    case .startTimer(let timer, let delay):
      let (clock, continuation) = (self.clock, self.continuation)
      timers.addTask {
        if (try? await clock.sleep(for: delay)) != nil { continuation.yield(.timerFired(timer)) }
      }
    case .stopListening: stopListening()
    case .log(let level, let message): configuration.logger.log(level: level, "\(message)")
    case .lifecycle(let event): observer?.serverLifecycle(event)  // prod: observer
    case .finish: break
    case .startUpgrade:
      guard let upgrader else { return .upgradeLaunchFailed(message: "binary upgrades are disabled") }
      do {
        return .upgradeLaunched(pid: try await upgrader.start(events: continuation))
      } catch {
        return .upgradeLaunchFailed(message: "\(error)")
      }
    case .stopUpgrade(let signal): upgrader?.send(signal.rawValue)
    case .killUpgrade: upgrader?.kill()
    }
    return nil
  }
}
