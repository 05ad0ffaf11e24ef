import AsyncTools
import Synchronization
import UnixSignals

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Threads mode: each worker is a task of this process, its `processIndex` a task-local.
///
/// Each worker gets its own `dup` of the one listening socket, so every worker owns (and closes)
/// its descriptor exactly as in process mode, and a SwiftNIO worker adopts it into its own event
/// loop: the worker code is the same in both modes. (The alternative — one NIO
/// `MultiThreadedEventLoopGroup` and one bound channel shared by all workers — would make
/// "worker" mean nothing at the socket level and the worker code mode-specific.)
final class ThreadWorkerLauncher: WorkerLauncher {
  private let configuration: ServerConfiguration
  private let arguments: [String]
  private let socket: ListeningSocket?
  private let bodies: WorkerBodies
  /// Where the workers balance their accepts (``ServerConfiguration/acceptBalancing``), if they do.
  private let board: AcceptBoard?
  /// The worker tasks, awaited by `finish()` unless abandoned: the owner of every task this
  /// launcher starts.
  private let tasks = Locked<[ObjectIdentifier: Task<Void, Never>]>([:])

  init(
    configuration: ServerConfiguration, arguments: [String], socket: ListeningSocket?,
    bodies: WorkerBodies
  ) {
    self.configuration = configuration
    self.arguments = arguments
    self.socket = socket
    self.bodies = bodies
    self.board = AcceptBoard.forServer(configuration, listening: socket != nil)
  }

  /// Reports a worker's end exactly once: when its task ends, or when the server abandons it.
  private final class ExitReport: Sendable {
    private let reported = Locked(false)
    let report: @Sendable (WorkerOutcome) -> Void
    init(report: @escaping @Sendable (WorkerOutcome) -> Void) { self.report = report }
    func callAsFunction(_ outcome: WorkerOutcome) {
      let first = reported.withLock { reported in
        defer { reported = true }
        return !reported
      }
      if first { report(outcome) }
    }
  }

  private struct Handle: WorkerHandle {
    let core: WorkerCore
    let exit: ExitReport
    let forget: @Sendable () -> Void
    func stop(_ signal: UnixSignal) { core.requestStop(signal) }
    func cancel() { core.cancel() }
    /// A task cannot be killed: it is cancelled, and abandoned if it ignores that.
    func kill() { core.cancel() }
    func abandon() {
      forget()
      exit(.clean)
    }
  }

  func launch(slot: Int, index: Int, events: AsyncStream<SupervisorEvent>.Continuation) async throws -> any WorkerHandle {
    let core = WorkerCore(defaultSignal: configuration.defaultStopSignal, runToCompletion: configuration.runToCompletion) {
      events.yield(.ready(slot: slot))
    }
    let (board, entry) = (board, board?.claim())
    let balance = board.flatMap { board in entry.flatMap { AcceptBalance(board: board, entry: $0) } }
    let context = WorkerContext(
      processIndex: index, arguments: arguments, listeningSocket: socket?.duplicate(),
      listeningPort: socket?.port, mode: .threads, core: core,
      logger: configuration.logger, balance: balance)
    let body = bodies.body(index)
    let logger = configuration.logger
    let exit = ExitReport { outcome in
      if let entry { board?.release(entry) }  // ended (or abandoned): no longer a peer
      events.yield(.exited(slot: slot, outcome))
    }
    let task = Task {
      let outcome: WorkerOutcome
      do {
        try await WorkerContext.$currentInTask.withValue(context) { try await body(context) }
        outcome = .clean
      } catch {
        outcome = Self.classify(error, index: index, core: core)
      }
      if case .failed(let failure) = outcome { logger.error("\(failure)") }
      exit(outcome)
    }
    let key = ObjectIdentifier(exit)
    tasks.withLock { $0[key] = task }
    core.attach(task)
    return Handle(core: core, exit: exit) { _ = self.tasks.withLock { $0.removeValue(forKey: key) } }
  }

  /// After the server cancelled the worker, a `CancellationError`, or any error of an interrupted
  /// start-up, is how a cancelled worker ends, not a failure; any other error is.
  static func classify(_ error: any Error, index: Int, core: WorkerCore) -> WorkerOutcome {
    let message = String(describing: error)
    if core.reachedStop {
      if core.wasCancelledByServer && error is CancellationError { return .clean }
      return .failed(.shutdownFailed(index: index, message: message))
    }
    if core.wasCancelledByServer { return .clean }
    return .failed(.startupFailed(index: index, message: message))
  }

  func finish() async {
    let tasks = self.tasks.withLock { Array($0.values) }
    for task in tasks { await task.value }
  }
}
