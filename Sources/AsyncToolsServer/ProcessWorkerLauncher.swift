#if os(Linux)
import AsyncTools
import AsyncToolsProcess
import CAsyncToolsShims
import Glibc
import Synchronization
import UnixSignals

/// Process mode: each worker is this program re-executed with the same command line through
/// AsyncToolsProcess (`ChildProcess.reexecute`, the machinery of `ChildProcess.fork`), told by its
/// handshake that it is worker `index` (see `WorkerProcessRuntime`).
///
/// - The executable is the file the server was started from, resolved before `main` ran: after the
///   program is rebuilt in place, a rolling restart (or a restarted worker) runs the new build.
/// - `argv[0]` is `program: worker N`, and the worker names itself so (`ps`, `top`).
/// - The listening socket is passed as descriptor 3, the readiness pipe right above it; every other
///   descriptor is closed in the worker.
/// - The stop signals start blocked, so one that arrives before the worker traps them stays pending
///   instead of killing it without its tear-down.
/// - Workers lead their own process groups: a terminal's Ctrl-C reaches only the main process,
///   which forwards it once (in the same group, each worker would get SIGINT twice — from the
///   terminal and from the main process — and take the second for a forced stop).
/// - Signals go through the worker's pidfd (`ChildProcess.send(signal:)`), never `kill(0, …)` to
///   the process group as aiotools does; exits are watched through the pidfd too, without polling.
final class ProcessWorkerLauncher: WorkerLauncher {
  private let configuration: ServerConfiguration
  private let arguments: [String]
  private let socket: ListeningSocket?
  /// Where the workers balance their accepts (``ServerConfiguration/acceptBalancing``), if they do;
  /// passed to each worker as descriptor 4.
  private let board: AcceptBoard?
  /// The exit watchers, awaited by `finish()`.
  private let watchers = Locked<[Task<Void, Never>]>([])

  /// The executable the server was started from (so a rolling restart runs a rebuilt binary), the
  /// program name for the workers' titles, and the command line every worker runs with.
  private let executable = ChildProcess.startupExecutable
  private let program = String(CommandLine.arguments.first?.split(separator: "/").last ?? "server")
  private let commandLine = Array(CommandLine.arguments.dropFirst())

  init(configuration: ServerConfiguration, arguments: [String], socket: ListeningSocket?) throws {
    self.configuration = configuration
    self.arguments = arguments
    self.socket = socket
    self.board = AcceptBoard.forServer(configuration, listening: socket != nil)
  }

  /// A worker process; remembers what the server sent it, to tell a requested end from a failure.
  private final class Handle: WorkerHandle {
    let child: ChildProcess
    /// The signals sent so far, and whether SIGKILL was one; the lock is the only state.
    private let sent = Locked<(signals: Set<Int32>, last: UnixSignal?)>(([], nil))

    init(child: ChildProcess) { self.child = child }

    func stop(_ signal: UnixSignal) {
      sent.withLock {
        $0.signals.insert(signal.rawValue)
        $0.last = signal
      }
      _ = try? child.send(signal: signal.rawValue)
    }

    /// The worker runtime takes a second stop signal for "cancel the body".
    func cancel() {
      if let last = sent.withLock({ $0.last }) { stop(last) }
    }

    func kill() {
      sent.withLock { _ = $0.signals.insert(SIGKILL) }
      _ = try? child.send(signal: SIGKILL)
    }

    func wasSent(_ signal: Int32) -> Bool { sent.withLock { $0.signals.contains(signal) } }
  }

  func launch(slot: Int, index: Int, events: AsyncStream<SupervisorEvent>.Continuation) async throws -> any WorkerHandle {
    let (child, readiness): (ChildProcess, ChildProcess.Readiness)
    let (board, entry) = (board, board?.claim())
    do {
      (child, readiness) = try await start(index: index, boardEntry: entry)
    } catch {
      if let entry { board?.release(entry) }
      throw ServerError(code: .workerLaunchFailed, message: "cannot start worker \(index): \(error)")
    }
    configuration.logger.debug("worker \(index) started as process \(child.pid)")

    let handle = Handle(child: child)
    let stopSignals = Set(configuration.stopSignals.map(\.rawValue))
    let logger = configuration.logger
    let watcher = Task {
      // Readiness first (it ends at the latest with the exit), so `.ready` precedes `.exited`.
      if (try? await readiness.wait(timeout: nil)) == .ready { events.yield(.ready(slot: slot)) }
      let outcome: WorkerOutcome
      // Through cancellation: a worker must be reaped and reported (status unknown: reaped elsewhere).
      switch (try? await child.waitUncancellable().get()) ?? .exited(255) {
      case .exited(WorkerProcessRuntime.ExitStatus.clean):
        outcome = .clean
      case .exited(WorkerProcessRuntime.ExitStatus.startupFailed):
        outcome = .failed(.startupFailed(index: index, message: "see the worker's log"))
      case .exited(WorkerProcessRuntime.ExitStatus.shutdownFailed):
        outcome = .failed(.shutdownFailed(index: index, message: "see the worker's log"))
      case .exited(let status):
        outcome = .failed(.exited(index: index, status: status))
      case .signaled(let signal, _):
        // Killed by what the server sent (SIGKILL, or a stop signal that arrived before the worker
        // trapped it): the end the server asked for. Anything else is a failure.
        if handle.wasSent(signal) && (signal == SIGKILL || stopSignals.contains(signal)) {
          outcome = .clean
        } else {
          outcome = .failed(.killed(index: index, signal: signal))
        }
      }
      if case .failed(let failure) = outcome { logger.error("\(failure)") }
      if let entry { board?.release(entry) }  // ended: no longer a peer, however it ended
      events.yield(.exited(slot: slot, outcome))
    }
    watchers.withLock { $0.append(watcher) }
    return handle
  }

  /// Re-executes the program the server was started from as worker `index`: same command line,
  /// `argv[0]` the worker's title, the listening socket as descriptor 3, the stop signals blocked
  /// (pending until the worker traps them), SIGKILL as parent-death signal, its own process group;
  /// with its entry on the accept board, the board as descriptor 4.
  private func start(index: Int, boardEntry: Int?) async throws -> (ChildProcess, ChildProcess.Readiness) {
    let (listenFD, boardFD): (Int32, Int32) = (3, 4)
    var descriptors = socket.map { [listenFD: $0.fd] } ?? [:]
    var balance: WorkerProcessRuntime.Launch.Balance?
    if let board, let boardEntry {
      descriptors[boardFD] = board.fd
      balance = .init(fd: boardFD, entry: boardEntry)
    }
    let launch = WorkerProcessRuntime.Launch(
      index: index, program: program, listenFD: socket == nil ? nil : listenFD, listenPort: socket?.port,
      balance: balance, arguments: arguments)
    let options = ChildProcess.Options(
      processGroup: .own, parentDeathSignal: SIGKILL,
      blockedSignals: configuration.stopSignals.map(\.rawValue), readinessTimeout: nil)
    return try await ChildProcess.reexecute(
      executable: executable, argv: [WorkerProcessRuntime.title(program: program, index: index)] + commandLine,
      target: .role(WorkerProcessRuntime.role), arguments: launch.encoded, environment: nil,
      fileDescriptors: descriptors, options: options)
  }

  func finish() async {
    let watchers = self.watchers.withLock { $0 }
    for watcher in watchers { await watcher.value }
  }
}
#else
/// Process mode needs pidfds: Linux only for now.
final class ProcessWorkerLauncher: WorkerLauncher {
  init(configuration: ServerConfiguration, arguments: [String], socket: ListeningSocket?) throws {
    throw ServerError(code: .workerLaunchFailed, message: "process mode is available on Linux only; use .threads")
  }

  func launch(slot: Int, index: Int, events: AsyncStream<SupervisorEvent>.Continuation) async throws -> any WorkerHandle {
    throw ServerError(code: .workerLaunchFailed, message: "process mode is available on Linux only")
  }

  func finish() async {}
}
#endif
