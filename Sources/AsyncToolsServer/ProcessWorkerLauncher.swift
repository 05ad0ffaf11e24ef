#if os(Linux)
import AsyncTools
import AsyncToolsProcess
import CAsyncToolsShims
import Dispatch
import Glibc
import Synchronization
import UnixSignals

/// Process mode: each worker is this executable re-executed with the same command line, told by
/// its environment that it is worker `index` (see `WorkerProcessRuntime`).
///
/// - The listening socket is passed as descriptor 3, a readiness pipe as descriptor 4; every other
///   descriptor is closed in the worker.
/// - Workers lead their own process groups: a terminal's Ctrl-C reaches only the main process,
///   which forwards it once (in the same group, each worker would get SIGINT twice — from the
///   terminal and from the main process — and take the second for a forced stop).
/// - Signals go through the worker's pidfd (`ChildProcess.send(signal:)`), never `kill(0, …)` to
///   the process group as aiotools does; exits are watched through the pidfd too, without polling.
final class ProcessWorkerLauncher: WorkerLauncher {
  private let configuration: ServerConfiguration
  private let arguments: [String]
  private let socket: ListeningSocket?
  /// The exit watchers, awaited by `finish()`.
  private let watchers = Locked<[Task<Void, Never>]>([])

  init(configuration: ServerConfiguration, arguments: [String], socket: ListeningSocket?) throws {
    self.configuration = configuration
    self.arguments = arguments
    self.socket = socket
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
    var environment = ChildProcess.inheritedEnvironment
    typealias Env = WorkerProcessRuntime.Environment
    environment[Env.index] = String(index)
    environment[Env.parentPID] = String(getpid())
    environment[Env.arguments] = ArgumentCoding.encode(arguments)
    environment[Env.readyFD] = String(WorkerProcessRuntime.readyDescriptor)
    var descriptors: [Int32: Int32] = [:]
    if let socket {
      descriptors[WorkerProcessRuntime.listenDescriptor] = socket.fd
      environment[Env.listenFD] = String(WorkerProcessRuntime.listenDescriptor)
      environment[Env.listenPort] = String(socket.port)
    }
    var pipe: [Int32] = [-1, -1]
    guard asynctools_pipe2(&pipe, O_CLOEXEC | O_NONBLOCK) == 0 else {
      throw ServerError(code: .workerLaunchFailed, message: "cannot create a pipe for worker \(index): errno \(errno)")
    }
    descriptors[WorkerProcessRuntime.readyDescriptor] = pipe[1]
    let child: ChildProcess
    do {
      child = try await ChildProcess.spawn(
        executable: "/proc/self/exe", arguments: Array(CommandLine.arguments.dropFirst()),
        environment: environment, fileDescriptors: descriptors,
        options: ChildProcess.Options(processGroup: .own))
    } catch {
      close(pipe[0])
      close(pipe[1])
      throw ServerError(code: .workerLaunchFailed, message: "cannot start worker \(index): \(error)")
    }
    close(pipe[1])
    configuration.logger.debug("worker \(index) started as process \(child.pid)")
    Self.watchReadiness(pipe[0], slot: slot, events: events)

    let handle = Handle(child: child)
    let stopSignals = Set(configuration.stopSignals.map(\.rawValue))
    let logger = configuration.logger
    let watcher = Task {
      let outcome: WorkerOutcome
      switch await Self.waitForExit(child) {
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
      events.yield(.exited(slot: slot, outcome))
    }
    watchers.withLock { $0.append(watcher) }
    return handle
  }

  /// The exit status; waits through cancellation, because a worker must be reaped and reported.
  private static func waitForExit(_ child: ChildProcess) async -> ChildProcess.ExitStatus {
    while true {
      do {
        return try await child.wait()
      } catch is CancellationError {
        continue
      } catch {
        return .exited(255)  // reaped elsewhere: status unknown
      }
    }
  }

  /// Reports `.ready` when the worker writes its byte. On EOF the source is cancelled at once: a
  /// level-triggered EOF left registered is aiotools #102's 100 % CPU loop.
  private static func watchReadiness(_ fd: Int32, slot: Int, events: AsyncStream<SupervisorEvent>.Continuation) {
    let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: readinessQueue)
    source.setEventHandler { [source] in
      var byte: UInt8 = 0
      let count = read(fd, &byte, 1)
      if count == 1 { events.yield(.ready(slot: slot)) }
      if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) || count == 1 { source.cancel() }
    }
    source.setCancelHandler { close(fd) }
    source.resume()
  }

  private static let readinessQueue = DispatchQueue(label: "AsyncToolsServer.readiness")

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
