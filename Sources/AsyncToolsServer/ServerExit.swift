import UnixSignals

/// Why a worker counts as failed.
public enum WorkerFailure: Sendable, Hashable, CustomStringConvertible {
  /// The worker body threw before it called ``WorkerContext/stopSignal()`` (its set-up failed).
  /// `message` is the error's description.
  case startupFailed(index: Int, message: String)
  /// The worker body threw after ``WorkerContext/stopSignal()`` returned (its tear-down failed).
  case shutdownFailed(index: Int, message: String)
  /// The worker process exited with a non-zero status the server did not assign a meaning to.
  case exited(index: Int, status: Int32)
  /// The worker process was killed by a signal the server did not send (a crash, the OOM killer,
  /// an operator's `kill -9`).
  case killed(index: Int, signal: Int32)

  /// The failed worker's `processIndex`.
  public var index: Int {
    switch self {
    case .startupFailed(let index, _), .shutdownFailed(let index, _), .exited(let index, _),
      .killed(let index, _):
      index
    }
  }

  public var description: String {
    switch self {
    case .startupFailed(let index, let message): "worker \(index) failed during start-up: \(message)"
    case .shutdownFailed(let index, let message): "worker \(index) failed during shutdown: \(message)"
    case .exited(let index, let status): "worker \(index) exited with status \(status)"
    case .killed(let index, let signal): "worker \(index) was killed by signal \(signal)"
    }
  }
}

/// What ended a server: the value ``startServer(configuration:clock:worker:extraProcesses:main:)`` returns in the
/// main process, with the exit status the process should end with (``exitCode``).
public enum ServerExit: Sendable, Hashable, CustomStringConvertible {
  /// A stop signal (from the operating system or ``ServerMain/signal(_:)``) stopped the server and
  /// every worker ended within the timeouts. Exit status 0.
  case stopped(UnixSignal)
  /// A stop signal stopped the server, but at least one worker had to be killed: it outlived
  /// ``ServerConfiguration/waitTimeout`` or a second stop signal forced the stop. Exit status 2.
  /// In threads mode a killed worker that ignores its cancellation is abandoned, still running:
  /// exit the process with ``exitCode`` to end it.
  case forceStopped(UnixSignal)
  /// Every worker ended on its own without failing (run to completion, or every body returned):
  /// the server stopped by itself. Exit status 0.
  case completed
  /// A worker failed and the policy stopped the server (or, with ``ServerConfiguration/WorkerFailurePolicy/ignore``,
  /// every worker has ended and this was the last failure). Exit status 1.
  case workerFailed(WorkerFailure)
  /// A binary upgrade (``ServerConfiguration/upgradeSignal``) handed the server over to a new main
  /// process, `newMainProcess`, which serves on; this main process stopped its own workers (a
  /// worker that had to be killed, or failed while stopping, is logged). Exit status 0.
  case upgraded(newMainProcess: Int32)

  /// The exit status that says what happened: 0 stopped, completed or upgraded, 1 a worker failed,
  /// 2 stopped but a worker had to be killed.
  public var exitCode: Int32 {
    switch self {
    case .stopped, .completed, .upgraded: 0
    case .workerFailed: 1
    case .forceStopped: 2
    }
  }

  public var description: String {
    switch self {
    case .stopped(let signal): "stopped by \(signal)"
    case .forceStopped(let signal): "stopped by \(signal), killing workers that did not stop in time"
    case .completed: "all workers completed"
    case .workerFailed(let failure): "stopped because \(failure)"
    case .upgraded(let pid): "handed over to the new main process \(pid)"
    }
  }
}

/// A failure of the server itself: the listening socket could not be set up (before any worker
/// starts), a worker could not be launched, or a worker asked for connections without a listening
/// socket.
public struct ServerError: Error, Hashable, Sendable, CustomStringConvertible {
  /// What went wrong.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    fileprivate enum Base: Hashable, Sendable {
      case addressInUse, bindFailed, workerLaunchFailed, notListening, socketActivationFailed
    }
    fileprivate var base: Base
    /// The listen address is already taken by another socket (`EADDRINUSE`).
    public static let addressInUse = Code(base: .addressInUse)
    /// The listen address could not be resolved, bound or listened on for another reason.
    public static let bindFailed = Code(base: .bindFailed)
    /// A worker process could not be started (the executable could not be re-executed).
    public static let workerLaunchFailed = Code(base: .workerLaunchFailed)
    /// A descriptor handed to ``AcceptedConnections`` is not a listening socket, or a worker asked
    /// for connections of a server without ``ServerConfiguration/listen``.
    public static let notListening = Code(base: .notListening)
    /// The socket to take from systemd (or an inherited descriptor) is missing, meant for another
    /// process, or not a listening stream socket.
    public static let socketActivationFailed = Code(base: .socketActivationFailed)

    public var description: String {
      switch base {
      case .addressInUse: "address in use"
      case .bindFailed: "bind failed"
      case .workerLaunchFailed: "worker launch failed"
      case .notListening: "not listening"
      case .socketActivationFailed: "socket activation failed"
      }
    }
  }

  /// What went wrong.
  public var code: Code
  /// A sentence naming the problem, e.g. `cannot listen on 127.0.0.1:8888: address already in use`.
  public var message: String

  /// Creates an error.
  public init(code: Code, message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { "ServerError(\(code)): \(message)" }
}
