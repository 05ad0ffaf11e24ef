#if os(Linux)
import AsyncTools
import AsyncToolsProcess
import CAsyncToolsShims
import Glibc
import Synchronization
import UnixSignals

/// The worker side of process mode: what `startServer` does when this process is a worker the main
/// process re-executed. It is a client of AsyncToolsProcess' re-execution: the worker claims the
/// role ``role`` from the handshake environment (``Launch`` travels as its arguments), reports
/// readiness through the same pipe as `ChildProcess.fork`, and had its parent-death signal
/// (SIGKILL) armed before `main` ran.
///
/// The main process starts workers with the stop signals *blocked*; they stay pending until this
/// runtime traps them (Dispatch signal sources read pending signals), so a stop signal that
/// arrives during the worker's start-up is never lost and never kills it with the default action.
struct WorkerProcessRuntime: Sendable {
  /// The re-execution role of a server worker.
  static let role = "asynctools-server-worker"

  /// What the main process tells a worker, encoded as the re-execution arguments.
  struct Launch: Sendable, Hashable {
    /// The worker's `processIndex`.
    var index: Int
    /// The main program's name, for the worker's process title.
    var program: String
    /// The shared listening socket's descriptor and port in the worker, if any.
    var listenFD: CInt?
    var listenPort: Int?
    /// The accept board's descriptor in the worker and the worker's entry on it, when the server
    /// balances accepts (``ServerConfiguration/acceptBalancing``).
    var balance: Balance?
    /// ``WorkerContext/arguments``.
    var arguments: [String]

    /// A worker's seat on the accept board.
    struct Balance: Sendable, Hashable {
      var fd: CInt
      var entry: Int
    }

    /// `[index, program, fd or "", port or "", "board-fd:entry" or "", arguments…]`.
    var encoded: [String] {
      [
        String(index), program, listenFD.map { String($0) } ?? "", listenPort.map { String($0) } ?? "",
        balance.map { "\($0.fd):\($0.entry)" } ?? "",
      ] + arguments
    }

    /// The launch, or `nil` if `fields` is not what ``encoded`` produces.
    init?(decoding fields: [String]) {
      guard fields.count >= 5, let index = Int(fields[0]), index >= 0 else { return nil }
      self.index = index
      self.program = fields[1]
      if fields[2].isEmpty != fields[3].isEmpty { return nil }
      if fields[2].isEmpty {
        (listenFD, listenPort) = (nil, nil)
      } else {
        guard let fd = CInt(fields[2]), fd >= 0, let port = Int(fields[3]) else { return nil }
        (listenFD, listenPort) = (fd, port)
      }
      if fields[4].isEmpty {
        balance = nil
      } else {
        let parts = fields[4].split(separator: ":")
        guard parts.count == 2, let fd = CInt(parts[0]), fd >= 0, let entry = Int(parts[1]), entry >= 0 else {
          return nil
        }
        balance = Balance(fd: fd, entry: entry)
      }
      arguments = Array(fields.dropFirst(5))
    }

    init(
      index: Int, program: String, listenFD: CInt?, listenPort: Int?, balance: Balance? = nil,
      arguments: [String]
    ) {
      self.index = index
      self.program = program
      self.listenFD = listenFD
      self.listenPort = listenPort
      self.balance = balance
      self.arguments = arguments
    }
  }

  /// Exit statuses with a meaning for the main process.
  enum ExitStatus {
    static let clean: Int32 = 0
    static let startupFailed: Int32 = 3
    static let shutdownFailed: Int32 = 4
  }

  private static let index = Atomic<Int>(-1)

  /// This process's worker index, once the runtime has started; `nil` in the main process.
  static var processIndexOfThisProcess: Int? {
    let value = index.load(ordering: .acquiring)
    return value >= 0 ? value : nil
  }

  let launch: Launch
  let child: ReexecutedChild
  var processIndex: Int { launch.index }

  /// The runtime when this process is a server worker, else `nil`. Claiming clears the handshake
  /// variables, so that processes this worker starts are not mistaken for workers.
  static func fromEnvironment() -> WorkerProcessRuntime? {
    guard let child = ReexecutedChild.claim(role: role) else { return nil }
    guard let launch = Launch(decoding: child.arguments) else {
      ReexecutedChild.printError("malformed server worker arguments \(child.arguments)")
      exit(ExitStatus.startupFailed)
    }
    return WorkerProcessRuntime(launch: launch, child: child)
  }

  /// `program: worker N`: the worker's `argv[0]`, what `ps -o args` shows.
  static func title(program: String, index: Int) -> String { "\(program): worker \(index)" }

  /// The process name (`comm`, at most 15 bytes) shown by `ps`, `top` and `ss`: the title if it
  /// fits, else `program: wN` with the program's name shortened to fit.
  static func processName(program: String, index: Int) -> String {
    let title = title(program: program, index: index)
    if title.utf8.count <= 15 { return title }
    let suffix = ": w\(index)"
    var name = program
    while name.utf8.count + suffix.utf8.count > 15 && !name.isEmpty { name.removeLast() }
    return name + suffix
  }

  /// Runs the worker body and exits the process with a status that tells the main process how the
  /// worker ended. Never returns.
  func run(
    configuration: ServerConfiguration, body: @escaping @Sendable (WorkerContext) async throws -> Void
  ) async -> Never {
    Self.index.store(processIndex, ordering: .releasing)
    let logger = configuration.logger
    _ = asynctools_set_process_name(Self.processName(program: launch.program, index: processIndex))
    let child = self.child
    let core = WorkerCore(defaultSignal: configuration.defaultStopSignal, runToCompletion: configuration.runToCompletion) {
      child.reportReady()
    }
    // Trap before the body runs and only then let the pending signals in (they were blocked by the
    // spawn): a stop during start-up interrupts it.
    let signals = await UnixSignalsSequence(trapping: configuration.stopSignals)
    // A stop that arrived before the trap was held since load time (the spawn blocked it): act on
    // it now, so the start-up is interrupted and the tear-down runs.
    for raw in ReexecutedChild.takeHeldSignals() {
      if let signal = configuration.stopSignals.first(where: { $0.rawValue == raw }) { core.requestStop(signal) }
    }
    let forwarder = Task {
      for await signal in signals { core.requestStop(signal) }
    }
    let balance = launch.balance.flatMap { balance in
      AcceptBoard.adopt(balance.fd).flatMap { AcceptBalance(board: $0, entry: balance.entry) }
    }
    let context = WorkerContext(
      processIndex: processIndex, arguments: launch.arguments, listeningSocket: launch.listenFD,
      listeningPort: launch.listenPort, mode: .processes, core: core, logger: logger, balance: balance)
    let index = processIndex
    let status = Locked(ExitStatus.clean)
    let task = Task {
      do {
        try await WorkerContext.$currentInTask.withValue(context) { try await body(context) }
      } catch {
        switch ThreadWorkerLauncher.classify(error, index: index, core: core) {
        case .clean: break
        case .failed(let failure):
          logger.error("\(failure)")
          status.withLock { $0 = core.reachedStop ? ExitStatus.shutdownFailed : ExitStatus.startupFailed }
        }
      }
    }
    core.attach(task)
    await task.value
    forwarder.cancel()
    await forwarder.value
    exit(status.withLock { $0 })
  }
}
#else
/// Process mode needs AsyncToolsProcess' re-execution: Linux only for now, so no process is ever a
/// worker elsewhere.
struct WorkerProcessRuntime: Sendable {
  static var processIndexOfThisProcess: Int? { nil }
  static func fromEnvironment() -> WorkerProcessRuntime? { nil }
  var processIndex: Int { 0 }
  func run(configuration: ServerConfiguration, body: @escaping @Sendable (WorkerContext) async throws -> Void) async -> Never {
    fatalError("process mode is available on Linux only")
  }
}
#endif
