import AsyncTools
import Logging
import UnixSignals

/// How ``startServer(configuration:clock:worker:extraProcesses:main:)`` runs its workers and stops them.
///
/// A value type with documented defaults, in the style of swift-service-lifecycle's
/// `ServiceGroupConfiguration`: start from `ServerConfiguration()` and set what differs.
/// ``validate()`` (called by `startServer`) rejects values out of range with an
/// `AsyncToolsError` of code `.invalidArgument` whose message names the field.
public struct ServerConfiguration: Sendable {
  /// Where workers run.
  public enum Mode: Sendable, Hashable, CustomStringConvertible {
    /// Each worker is a process: this executable re-executed, reaching `startServer` again and
    /// running the worker body there (default). Workers are isolated: a crash or a leak in one
    /// cannot corrupt or kill the others' processes, and the operating system spreads them over all
    /// cores. What the *server* does when one dies is ``onWorkerFailure``: by default
    /// (``WorkerFailurePolicy/stopServer``) it stops the other workers too and exits with status 1;
    /// ``WorkerFailurePolicy/restart(maxRestarts:within:)`` replaces the dead worker while the
    /// others keep serving, ``WorkerFailurePolicy/ignore`` lets the others go on.
    case processes
    /// Each worker is a task in this process (on Swift's cooperative thread pool), like aiotools'
    /// old `use_threading`. Cheaper to start and debug; one crash takes every worker down. A task
    /// cannot be killed: a forced stop cancels it and, if it ignores that for 50 ms, *abandons* it —
    /// `startServer` returns ``ServerExit/forceStopped(_:)`` and the process should exit.
    case threads

    public var description: String {
      switch self {
      case .processes: "processes"
      case .threads: "threads"
      }
    }
  }

  /// What the server does when a worker fails: throws during start-up or shutdown, exits with a
  /// non-zero status, or is killed by a signal it was not sent by the server.
  public enum WorkerFailurePolicy: Sendable, Hashable {
    /// Stop the whole server: every other worker receives the default stop signal, and
    /// `startServer` returns ``ServerExit/workerFailed(_:)`` (default; aiotools' behaviour for
    /// failures during start-up and shutdown, extended to workers that die).
    case stopServer
    /// Log the failure and keep the other workers running (aiotools' `ignore_child_interrupts`).
    /// When every worker has ended, the server stops by itself.
    case ignore
    /// Start a fresh worker with the same `processIndex` in place of the failed one, at most
    /// `maxRestarts` times within `window`; one restart more stops the server as ``stopServer``.
    case restart(maxRestarts: Int, within: Duration)
  }

  /// Where the main process listens. It binds one socket before any worker starts and hands it to
  /// every worker (see ``WorkerContext/listeningSocket``).
  public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    /// A numeric IPv4 or IPv6 address, or `localhost`. Default `127.0.0.1`.
    public var host: String
    /// The TCP port; `0` lets the kernel choose a free one (read it back from
    /// ``ServerMain/listeningPort``).
    public var port: Int
    /// The listen backlog: connections the kernel queues while no worker accepts. Default 511.
    public var backlog: Int
    /// Bind `host:port`, or take a socket from systemd or an inherited descriptor (see
    /// ``systemdSocket(named:)``). Default ``Source/bind``.
    public var source: Source = .bind  // prod: socket activation (SystemdSocketActivation.swift)

    /// Creates a listen address.
    public init(host: String = "127.0.0.1", port: Int, backlog: Int = 511) {
      self.host = host
      self.port = port
      self.backlog = backlog
    }

    public var description: String {
      inheritedDescription ?? (host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")  // prod
    }
  }

  /// Processes or threads. Default ``Mode/processes``.
  public var mode: Mode = .processes
  /// How many workers run the worker body. Must be at least 1. Default 1 (as aiotools).
  public var numWorkers: Int = 1
  /// The signals that stop the server, in the main process and in every worker. The first one
  /// received starts the shutdown; a second one forces it. Must not be empty.
  /// Default `[.sigint, .sigterm]`.
  public var stopSignals: [UnixSignal] = [.sigint, .sigterm]
  /// The signal that performs a rolling restart (beyond aiotools; gunicorn's and uvicorn's
  /// SIGHUP): one worker at a time, a fresh worker is started and, once it is ready, an old one is
  /// stopped with the default stop signal and awaited — cancelled after
  /// ``gracefulShutdownTimeout`` and killed after ``waitTimeout``, as in a stop; the next follows.
  /// With the shared listening socket no connection is refused meanwhile, and a worker that drains
  /// (``WorkerContext/serveConnections(drain:_:)``) answers the requests in flight. The signal
  /// arriving during a restart is queued: one more restart follows the current one (further ones
  /// are logged and merged into it); while stopping, it is logged and ignored. `nil` disables it;
  /// must not be a stop signal. Default `.sighup` (workers lead their own process groups, so a
  /// terminal's hang-up reaches only the main process).
  public var restartSignal: UnixSignal? = .sighup
  /// The signal that upgrades the main process itself, the nginx/unicorn way (beyond aiotools): the
  /// main process starts a new main process from the executable at the path it was started from
  /// (so a rebuilt binary takes over), hands it the listening socket and, under systemd, the notify
  /// socket; the new one starts its workers and, once all of them are ready, takes over (under
  /// systemd it reports `MAINPID=`). The old main process then stops its own workers with the
  /// default stop signal (they finish their connections; the listening socket stays open for the
  /// new workers, so no connection is refused) and `startServer` returns
  /// ``ServerExit/upgraded(newMainProcess:)`` (exit status 0).
  ///
  /// If the new main process fails — it cannot be started, exits before it is ready, or is not
  /// ready within ``upgradeTimeout`` (then it is killed) — the old one logs why and keeps serving.
  /// The signal arriving during an upgrade or a rolling restart is logged and ignored (send it
  /// again when that is done), and so is the restart signal during an upgrade. A stop signal
  /// during an upgrade stops the new main process too. `nil` disables upgrades; must be neither a
  /// stop signal nor the restart signal. Default `.sigusr2`.
  public var upgradeSignal: UnixSignal? = .sigusr2
  /// How long a new main process started by ``upgradeSignal`` may take until every one of its
  /// workers is ready; after it, the new main process is killed and the old one keeps serving.
  /// Default 60 seconds.
  public var upgradeTimeout: Duration = .seconds(60)
  /// Phase one of the shutdown (aiotools #33): how long workers may take after receiving the stop
  /// signal before they are cancelled (threads: their task is cancelled; processes: they receive
  /// the stop signal a second time, which cancels the worker body). This is the time requests in
  /// flight get to be answered: ``ConnectionDrain/drain()`` closes idle connections at once and
  /// the busy ones when cancelled. `nil` (default): no cancellation phase, wait for
  /// ``waitTimeout``.
  public var gracefulShutdownTimeout: Duration? = nil
  /// How long after the first stop signal the main process waits for the workers before it
  /// SIGKILLs the ones still running (threads mode cannot kill a task: it cancels it, and abandons
  /// it 50 ms later if it has not ended). The server then returns ``ServerExit/forceStopped(_:)``
  /// (exit status 2). `nil` (default, as aiotools): wait as long as it takes; a second stop signal
  /// still forces the stop the same way.
  public var waitTimeout: Duration? = nil
  /// What a failing worker (one that throws, exits non-zero, or is killed by a signal the server
  /// did not send, such as an operator's `kill -9`) does to the server. Default
  /// ``WorkerFailurePolicy/stopServer``: the other workers are stopped too, and `startServer`
  /// returns ``ServerExit/workerFailed(_:)`` (exit status 1).
  public var onWorkerFailure: WorkerFailurePolicy = .stopServer
  /// When `true`, ``WorkerContext/stopSignal()`` returns at once with the default stop signal, so
  /// each worker sets up, tears down and ends; the server ends when all have (aiotools'
  /// `run_to_completion`). Default `false`.
  public var runToCompletion: Bool = false
  /// Arguments appended, after the main context's values, to what every worker receives in
  /// ``WorkerContext/arguments``. Default empty.
  public var arguments: [String] = []
  /// The socket the main process binds (or takes from systemd, see
  /// ``ListenAddress/systemdSocket(named:)``) and shares with every worker. Default `nil` (none).
  public var listen: ListenAddress? = nil
  /// How the workers share the connections of the listening socket. Default
  /// ``AcceptBalancing/leastConnections``: each new connection goes to a worker with the fewest
  /// open connections. ``AcceptBalancing/kernel`` lets whichever worker the kernel wakes first take
  /// it (often one worker takes nearly all). See ``AcceptBalancing``.
  public var acceptBalancing: AcceptBalancing = .leastConnections
  /// Whether the main process (and each worker process) traps ``stopSignals`` from the operating
  /// system. Set it to `false` when embedding the server in a process that handles its own signals
  /// (or in tests): the server then stops only through ``ServerMain/signal(_:)``. Default `true`.
  public var trapsSignals: Bool = true
  /// Where the server logs worker starts, failures, stops and kills. Pass your own to keep its
  /// metadata and handler; the library logs its lines in the workers to it too.
  public var logger: Logger = Logger(label: "AsyncToolsServer")
  /// Opt-in swift-metrics instrumentation of the main process's supervisor, dimension `server` set to
  /// `MetricsConfiguration.name`: worker starts, exits by cause, restarts by reason, launch
  /// failures and the stop's duration (the names are in the Observability article of AsyncTools and
  /// in <doc:RunningServers>). Recorded in the main process only (in process mode the workers are
  /// other processes, with their own metrics). `nil` (default): nothing is created or recorded.
  public var metrics: MetricsConfiguration? = nil

  /// Creates a configuration with every default; set the fields that differ.
  public init() {}

  /// Creates a configuration with the most used fields set.
  public init(mode: Mode = .processes, numWorkers: Int, listen: ListenAddress? = nil) {
    self.mode = mode
    self.numWorkers = numWorkers
    self.listen = listen
  }

  /// The signal a worker receives when the server stops on its own (a worker failed, all workers
  /// ended, run to completion): SIGTERM if it is a stop signal, otherwise the first stop signal.
  public var defaultStopSignal: UnixSignal {
    stopSignals.contains(.sigterm) ? .sigterm : (stopSignals.first ?? .sigterm)
  }

  /// Throws `AsyncToolsError` (`.invalidArgument`) naming the first field out of range. Durations
  /// must be positive and at most 1,000,000,000 seconds (a longer one could not be slept for: the
  /// clock's deadline would overflow).
  public func validate() throws(AsyncToolsError) {
    if numWorkers < 1 { throw .invalidArgument("numWorkers must be at least 1, got \(numWorkers)") }
    if stopSignals.isEmpty { throw .invalidArgument("stopSignals must not be empty") }
    if let restartSignal, stopSignals.contains(restartSignal) {
      throw .invalidArgument("restartSignal \(restartSignal) must not also be a stop signal")
    }
    if let upgradeSignal {
      if stopSignals.contains(upgradeSignal) {
        throw .invalidArgument("upgradeSignal \(upgradeSignal) must not also be a stop signal")
      }
      if upgradeSignal == restartSignal {
        throw .invalidArgument("upgradeSignal \(upgradeSignal) must not also be the restart signal")
      }
    }
    try upgradeTimeout.requireTimeout("upgradeTimeout")
    if let gracefulShutdownTimeout { try gracefulShutdownTimeout.requireTimeout("gracefulShutdownTimeout") }
    if let waitTimeout { try waitTimeout.requireTimeout("waitTimeout") }
    if case .restart(let maxRestarts, let window) = onWorkerFailure {
      if maxRestarts < 1 { throw .invalidArgument("maxRestarts must be at least 1, got \(maxRestarts)") }
      try window.requireTimeout("restart window")
    }
    if let listen {
      try listen.validateSource()  // prod: socket activation
      if !(0...65535).contains(listen.port) {
        throw .invalidArgument("listen port must be in 0...65535, got \(listen.port)")
      }
      if listen.backlog < 1 { throw .invalidArgument("listen backlog must be at least 1, got \(listen.backlog)") }
    }
  }
}
