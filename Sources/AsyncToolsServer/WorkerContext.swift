import Logging
import UnixSignals

/// What a worker body receives: who it is, what it was given, and the way to wait for its stop.
///
/// A worker body follows aiotools' `@server` generator shape — set up, wait for the stop signal,
/// tear down — with ``stopSignal()`` in place of `sig = yield`:
///
/// ```swift
/// try await startServer(configuration: configuration) { context in
///   let database = try await Database.connect()                     // set up
///   let signal = await context.stopSignal()                         // ready; run until stopped
///   try await database.close()                                       // tear down, knowing `signal`
/// }
/// ```
///
/// A worker that serves the shared listening socket uses ``serveConnections(drain:_:)``, which
/// waits for the stop itself and drains the connections before it returns.
///
/// Calling ``stopSignal()`` is what marks the worker *ready*. Until then the worker is starting up,
/// and a stop signal received during start-up **interrupts** it: the worker's task is cancelled
/// (aiotools lets start-up run to its end first). An error thrown before ``stopSignal()`` is a
/// start-up failure, one thrown after it a shutdown failure; both count as worker failures
/// (``ServerConfiguration/onWorkerFailure``), except when the server itself cancelled the worker.
public struct WorkerContext: Sendable {
  /// This worker's index, `0..<numWorkers`, stable across restarts of the same worker.
  public let processIndex: Int
  /// The main context's values followed by ``ServerConfiguration/arguments``.
  public let arguments: [String]
  /// The listening socket shared by all workers, as a file descriptor this worker owns, or `nil`
  /// when ``ServerConfiguration/listen`` is `nil`. In threads mode each worker receives its own
  /// `dup` of it.
  ///
  /// Serve it with ``serveConnections(drain:_:)`` (or accept from it with
  /// ``acceptedConnections()``) and hand each connection to SwiftNIO
  /// (`ClientBootstrap.withConnectedSocket(_:)`). Adopting it into a `ServerBootstrap` in every
  /// worker (`withBoundSocket(_:)` / `bind(_ socket:…)`) works in release builds, but SwiftNIO's
  /// debug builds assert that a readable listening socket always yields a connection, which a
  /// socket shared by several event loops cannot promise (see ``AcceptedConnections``).
  public let listeningSocket: CInt?
  /// The port of ``listeningSocket`` (useful when the configuration asked for port 0).
  public let listeningPort: Int?
  /// Whether this worker is a process or a task in the main process.
  public let mode: ServerConfiguration.Mode
  let core: WorkerCore
  /// This worker's entry on the server's accept board (``ServerConfiguration/acceptBalancing``),
  /// or `nil`: its accepts are not balanced.
  let balance: AcceptBalance?
  /// The server's logger (``ServerConfiguration/logger``).
  let logger: Logger

  init(
    processIndex: Int, arguments: [String], listeningSocket: CInt?, listeningPort: Int?,
    mode: ServerConfiguration.Mode, core: WorkerCore, logger: Logger = Logger(label: "AsyncToolsServer"),
    balance: AcceptBalance? = nil
  ) {
    self.logger = logger
    self.balance = balance
    self.processIndex = processIndex
    self.arguments = arguments
    self.listeningSocket = listeningSocket
    self.listeningPort = listeningPort
    self.mode = mode
    self.core = core
  }

  /// Marks this worker ready and suspends until the server stops it; returns the stop signal.
  ///
  /// Returns at once when a stop was already requested, and with the default stop signal under
  /// ``ServerConfiguration/runToCompletion``. It also returns (with the signal received so far, or
  /// the default stop signal) when the calling task is cancelled, so tear-down code always runs;
  /// check `Task.isCancelled` there when it matters. Calling it again returns the same signal.
  public func stopSignal() async -> UnixSignal {
    await core.waitForStop()
  }

  /// Marks this worker ready without waiting for its stop.
  ///
  /// ``stopSignal()`` marks the worker ready too; call this first when the stop is awaited in a
  /// child task, as in
  ///
  /// ```swift
  /// try await startServer(configuration: configuration) { context in
  ///   try await openDatabase()           // start-up: a stop here interrupts it (cancels the worker)
  ///   context.markReady()                // from here a stop is delivered, not a cancellation
  ///   try await withThrowingTaskGroup(of: Void.self) { group in
  ///     group.addTask { try await httpServer.run() }
  ///     group.addTask { _ = await context.stopSignal(); await httpServer.shutDownGracefully() }
  ///     try await group.waitForAll()
  ///   }
  /// }
  /// ```
  ///
  /// Until the worker is ready, a stop is a stop during start-up: it cancels the worker's task.
  /// Without this call, a stop that arrives after `httpServer` started but before the child task
  /// reached ``stopSignal()`` would cancel the server instead of shutting it down gracefully.
  /// ``runServiceGroup(_:)`` calls it for you. Calling it again, or under
  /// ``ServerConfiguration/runToCompletion``, does nothing.
  public func markReady() {
    core.markReady()
  }

  /// Whether the server has asked this worker to stop.
  public var isStopRequested: Bool { core.isStopRequested }

  /// The context of the worker the current task belongs to, or `nil` outside a worker body.
  /// Read-only: only the server binds it, so code cannot pose as another worker.
  public static var current: WorkerContext? { currentInTask }

  /// The task-local behind ``current``; bound by the launchers around each worker body.
  @TaskLocal static var currentInTask: WorkerContext?

  /// The current worker's index: from the task-local ``current`` inside a worker body (both
  /// modes), else the index of this worker process (process mode, readable from any thread, for
  /// example inside SwiftNIO handlers, where task-locals are not set), else `nil`.
  public static var processIndex: Int? {
    current?.processIndex ?? WorkerProcessRuntime.processIndexOfThisProcess
  }
}
