import AsyncTools
import Synchronization
import UnixSignals

/// The main context's handle on the server, passed to the `main` closure of
/// ``startServer(configuration:clock:worker:extraProcesses:main:)``: it starts the workers, tells where the server
/// listens, and lets code stop the server as a signal would.
public struct ServerMain: Sendable {
  /// The configuration the server runs with.
  public let configuration: ServerConfiguration
  /// The port the shared listening socket is bound to (the kernel's choice when the configuration
  /// asked for port 0), or `nil` without ``ServerConfiguration/listen``.
  public let listeningPort: Int?
  private let continuation: AsyncStream<SupervisorEvent>.Continuation
  private let run: @Sendable ([String]) async throws -> ServerExit
  private let entered: Entered

  /// Once-only guard of `runWorkers`; the lock is the only state, so the box is safely Sendable.
  private final class Entered: Sendable {
    let value = Locked(false)
  }

  init(
    configuration: ServerConfiguration, listeningPort: Int?,
    continuation: AsyncStream<SupervisorEvent>.Continuation,
    run: @escaping @Sendable ([String]) async throws -> ServerExit
  ) {
    self.configuration = configuration
    self.listeningPort = listeningPort
    self.continuation = continuation
    self.run = run
    self.entered = Entered()
  }

  /// Starts the workers, passing them `arguments` (followed by
  /// ``ServerConfiguration/arguments``) as ``WorkerContext/arguments``, and returns when every
  /// worker has ended, with how the server ended.
  ///
  /// Does not wait for workers to become ready before starting the next one, and never waits for
  /// readiness at all: a worker that dies while others are still starting is noticed like any
  /// other exit. Cancelling the calling task stops the server with the default stop signal.
  ///
  /// - Throws: `AsyncToolsError` `.alreadyEntered` when called a second time; ``ServerError``
  ///   `.workerLaunchFailed` when this executable cannot be located for re-execution.
  public func runWorkers(arguments: [String] = []) async throws -> ServerExit {
    let first = entered.value.withLock { entered in
      defer { entered = true }
      return !entered
    }
    guard first else {
      throw AsyncToolsError(code: .alreadyEntered, message: "runWorkers can be called only once per server")
    }
    return try await run(arguments)
  }

  /// Acts as if the main process received `signal`: a stop signal stops the server (a second one
  /// forces it), the restart signal starts a rolling restart, the upgrade signal a binary upgrade;
  /// other signals are ignored. Callable from any task, before or while the workers run; the only
  /// way to stop a server whose ``ServerConfiguration/trapsSignals`` is `false`.
  public func signal(_ signal: UnixSignal) {
    continuation.yield(.signal(signal))
  }
}
