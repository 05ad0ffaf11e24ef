import AsyncTools
import Logging
import UnixSignals

/// Runs a server: `numWorkers` workers (processes or threads) running `worker`, a main context
/// around them, stop signals handled — aiotools' `start_server`.
///
/// ```swift
/// let exit = try await startServer(configuration: configuration) { context in
///   // set up (interrupted if a stop signal arrives now) …
///   let signal = await context.stopSignal()   // ready: run until stopped
///   // … tear down, knowing which signal stopped the server
/// } main: { server in
///   // the main context: entered once, in the main process, before any worker starts
///   let exit = try await server.runWorkers(arguments: ["--db", path])
///   // … and left after every worker has ended
///   return exit
/// }
/// exit(exit.exitCode)
/// ```
///
/// **Process mode** (the default) re-executes this executable once per worker, with the same
/// command line. The worker process runs `main` again up to its `startServer` call, which then runs
/// the worker body instead of the main role and **never returns** (it exits the process with a
/// status the main process reads). So the code before `startServer` runs in every process: keep it
/// to what workers need too (parsing arguments, configuring logging), call
/// `ChildProcess.bootstrap()` first, and do main-only work in `main`.
///
/// The main process, in order: validates the configuration (`AsyncToolsError`, `.invalidArgument`);
/// binds ``ServerConfiguration/listen`` (a ``ServerError`` such as `.addressInUse` before any worker
/// starts); traps the stop signals; runs `main`, whose ``ServerMain/runWorkers(arguments:)`` starts
/// the workers and returns how the server ended:
/// - the first stop signal makes the listening socket stop listening in every process (new
///   connections are refused at once) and is forwarded to every worker (through its pidfd), whose
///   ``WorkerContext/stopSignal()`` returns it (``WorkerContext/serveConnections(drain:_:)`` then
///   drains its connections); after ``ServerConfiguration/gracefulShutdownTimeout`` the workers
///   still running are cancelled, after ``ServerConfiguration/waitTimeout`` killed (threads mode:
///   cancelled, then abandoned); a second stop signal kills them at once;
/// - a failing worker stops the server, is ignored or is restarted
///   (``ServerConfiguration/onWorkerFailure``);
/// - when every worker has ended, the server stops by itself;
/// - ``ServerConfiguration/restartSignal`` (SIGHUP) replaces the workers one at a time (one
///   arriving during a restart is queued);
/// - ``ServerConfiguration/upgradeSignal`` (SIGUSR2) starts a new main process from the executable
///   at the path the server was started from, which inherits the listening socket; once its
///   workers are ready it takes over, the workers here stop and this call returns
///   ``ServerExit/upgraded(newMainProcess:)``; if it fails, this server serves on. In the new main
///   process this same call (it re-runs `main` up to here) serves on the inherited socket instead
///   of binding ``ServerConfiguration/listen``.
///
/// Cancelling the task that called `startServer` stops the server as the default stop signal would.
///
/// - Parameters:
///   - configuration: Workers, mode, signals, timeouts, listen address; validated first.
///   - clock: The clock of the shutdown timeouts and the restart window.
///   - worker: The worker body; see ``WorkerContext``.
///   - extraProcesses: aiotools' `extra_procs`: more bodies, run once each beside the workers
///     (processes or threads, as the workers), with the `processIndex` values that follow the
///     workers' (`numWorkers`, `numWorkers + 1`, …), stopped, restarted and supervised like workers.
///   - main: The main context. Default: run the workers with no extra arguments.
/// - Returns: How the server ended; ``ServerExit/exitCode`` is the status to exit with.
public func startServer<C: Clock<Duration>>(
  configuration: ServerConfiguration = ServerConfiguration(),
  clock: C = ContinuousClock(),
  worker: @escaping @Sendable (WorkerContext) async throws -> Void,
  extraProcesses: [@Sendable (WorkerContext) async throws -> Void] = [],
  main: (ServerMain) async throws -> ServerExit = { try await $0.runWorkers() }
) async throws -> ServerExit {
  try configuration.validate()
  let numWorkers = configuration.numWorkers
  let bodies = WorkerBodies { index in index < numWorkers ? worker : extraProcesses[index - numWorkers] }
  if configuration.mode == .processes, let runtime = WorkerProcessRuntime.fromEnvironment() {
    guard runtime.processIndex < numWorkers + extraProcesses.count else {
      fatalError("worker process \(runtime.processIndex) has no body: the main process and its workers disagree")
    }
    await runtime.run(configuration: configuration, body: bodies.body(runtime.processIndex))
  }
  // prod: the new main process of a binary upgrade serves on the socket the old one passed it.
  let successor = MainProcessUpgrader.Successor.claim()
  let socket =
    if let inherited = successor?.listeningSocket() {
      inherited
    } else {
      try configuration.listen.map { address throws(ServerError) in try ListeningSocket.open(address) }  // prod
    }
  let (events, continuation) = AsyncStream.makeStream(of: SupervisorEvent.self)
  // Trapped before anything starts, so no stop signal can kill the main process with its default
  // action while workers are being spawned (aiotools blocks the signals for the same reason).
  let trapped = configuration.stopSignals + [configuration.restartSignal, configuration.upgradeSignal].compactMap { $0 }
  let signalForwarder: Task<Void, Never>? =
    if configuration.trapsSignals {
      await forwardSignals(trapped, to: continuation)
    } else {
      nil
    }
  // prod: a signal sent to the new main process of an upgrade before it trapped them was held.
  for signal in successor?.heldSignals(among: trapped) ?? [] { continuation.yield(.signal(signal)) }

  // prod: sd_notify when NOTIFY_SOCKET is set (readiness, reloads, stop, watchdog); `nil` otherwise.
  let systemd = SystemdNotifier.fromEnvironment(clock: clock, logger: configuration.logger)
  // prod: binary upgrades (the old side), and the new side's readiness report (after systemd's).
  let upgrader = configuration.upgradeSignal.map { _ in
    MainProcessUpgrader(
      configuration: configuration, socket: socket, successorEnvironment: systemd?.successorEnvironment ?? [:])
  }
  let observers = LifecycleObservers([systemd, successor?.readinessReporter(socket: socket)].compactMap { $0 })
  let server = ServerMain(
    configuration: configuration, listeningPort: socket?.port, continuation: continuation
  ) { arguments in
    let launcher: any WorkerLauncher =
      switch configuration.mode {
      case .threads:
        ThreadWorkerLauncher(
          configuration: configuration, arguments: arguments + configuration.arguments, socket: socket, bodies: bodies)
      case .processes:
        try ProcessWorkerLauncher(
          configuration: configuration, arguments: arguments + configuration.arguments, socket: socket)
      }
    let supervisor = ServerSupervisor(
      configuration: configuration, processCount: numWorkers + extraProcesses.count, launcher: launcher, clock: clock,
      events: events, continuation: continuation, stopListening: { socket?.stopListening() },
      observer: observers, upgrader: upgrader)  // prod: observer, binary upgrades
    // The loop runs in its own task so that cancelling the caller becomes a stop event instead of
    // ending the event stream under the loop's feet.
    let loop = Task { await supervisor.run() }
    let exit = await withTaskCancellationHandler {
      await loop.value
    } onCancel: {
      continuation.yield(.signal(configuration.defaultStopSignal))
    }
    await launcher.finish()
    await upgrader?.finish()  // prod
    // Debug only: the caller gets `exit` and reports it (at info, the stop was said twice).
    configuration.logger.debug("server \(exit)")
    return exit
  }
  let result: Result<ServerExit, any Error>
  do { result = .success(try await main(server)) } catch { result = .failure(error) }
  signalForwarder?.cancel()
  await signalForwarder?.value
  await systemd?.finish()  // prod: STOPPING=1 if not yet sent; ends the watchdog pings
  return try result.get()
}

/// Traps `signals` (awaiting the registration, so none is missed) and forwards each delivery.
private func forwardSignals(
  _ signals: [UnixSignal], to continuation: AsyncStream<SupervisorEvent>.Continuation
) async -> Task<Void, Never> {
  let sequence = await UnixSignalsSequence(trapping: signals)
  return Task {
    for await signal in sequence { continuation.yield(.signal(signal)) }
  }
}

/// Which body runs at which `processIndex`: the worker body, then the extra processes.
struct WorkerBodies: Sendable {
  let body: @Sendable (Int) -> @Sendable (WorkerContext) async throws -> Void
}
