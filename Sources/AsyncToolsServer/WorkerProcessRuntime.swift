import AsyncTools
import CAsyncToolsShims
import Synchronization
import UnixSignals

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The worker side of process mode: what `startServer` does when this process is a worker the main
/// process re-executed. Everything it needs arrives in the environment (``Environment``), the
/// listening socket as an inherited descriptor.
///
/// The main process starts workers with the stop signals *blocked*; they stay pending until this
/// runtime traps them (Dispatch signal sources read pending signals), so a stop signal that
/// arrives during the worker's start-up is never lost and never kills it with the default action.
struct WorkerProcessRuntime: Sendable {
  /// The environment variables the main process sets for a worker.
  enum Environment {
    static let index = "ASYNCTOOLS_SERVER_WORKER_INDEX"
    static let parentPID = "ASYNCTOOLS_SERVER_PARENT_PID"
    static let arguments = "ASYNCTOOLS_SERVER_ARGUMENTS"
    static let listenFD = "ASYNCTOOLS_SERVER_LISTEN_FD"
    static let listenPort = "ASYNCTOOLS_SERVER_LISTEN_PORT"
    static let readyFD = "ASYNCTOOLS_SERVER_READY_FD"
    static let all = [index, parentPID, arguments, listenFD, listenPort, readyFD]
  }

  /// Exit statuses with a meaning for the main process.
  enum ExitStatus {
    static let clean: Int32 = 0
    static let startupFailed: Int32 = 3
    static let shutdownFailed: Int32 = 4
  }

  /// The descriptors the main process places the shared socket and the readiness pipe at.
  static let listenDescriptor: CInt = 3
  static let readyDescriptor: CInt = 4

  private static let index = Atomic<Int>(-1)

  /// This process's worker index, once the runtime has started; `nil` in the main process.
  static var processIndexOfThisProcess: Int? {
    let value = index.load(ordering: .acquiring)
    return value >= 0 ? value : nil
  }

  let processIndex: Int
  let parentPID: pid_t
  let arguments: [String]
  let listenFD: CInt?
  let listenPort: Int?
  let readyFD: CInt?

  /// The runtime when this process is a server worker, else `nil`. Clears the variables, so that
  /// processes this worker starts are not mistaken for workers.
  static func fromEnvironment() -> WorkerProcessRuntime? {
    guard let indexText = getenv(Environment.index).map({ String(cString: $0) }), let index = Int(indexText) else {
      return nil
    }
    func value(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
    let runtime = WorkerProcessRuntime(
      processIndex: index,
      parentPID: value(Environment.parentPID).flatMap { pid_t($0) } ?? 0,
      arguments: ArgumentCoding.decode(value(Environment.arguments) ?? ""),
      listenFD: value(Environment.listenFD).flatMap { CInt($0) },
      listenPort: value(Environment.listenPort).flatMap { Int($0) },
      readyFD: value(Environment.readyFD).flatMap { CInt($0) })
    for name in Environment.all { unsetenv(name) }
    return runtime
  }

  /// Runs the worker body and exits the process with a status that tells the main process how the
  /// worker ended. Never returns.
  func run(
    configuration: ServerConfiguration, body: @escaping @Sendable (WorkerContext) async throws -> Void
  ) async -> Never {
    Self.index.store(processIndex, ordering: .releasing)
    let logger = configuration.logger
    #if os(Linux)
    // Die with the main process, whatever kills it: SIGKILL, because a main process that is gone
    // cannot wait for a graceful stop, and an orphan must not outlive it. The check after the
    // prctl closes the race with a main process that died before it.
    _ = asynctools_set_parent_death_signal(SIGKILL)
    if parentPID != 0 && getppid() != parentPID { _exit(ExitStatus.clean) }
    #endif
    let readyFD = self.readyFD
    let core = WorkerCore(defaultSignal: configuration.defaultStopSignal, runToCompletion: configuration.runToCompletion) {
      guard let readyFD else { return }
      var byte: UInt8 = 0x52  // "R"
      _ = write(readyFD, &byte, 1)
      close(readyFD)
    }
    // Trap before the body runs and only then let the pending signals in (they were blocked by the
    // spawn): a stop during start-up interrupts it.
    let signals = await UnixSignalsSequence(trapping: configuration.stopSignals)
    let forwarder = Task {
      for await signal in signals { core.requestStop(signal) }
    }
    let context = WorkerContext(
      processIndex: processIndex, arguments: arguments, listeningSocket: listenFD, listeningPort: listenPort,
      mode: .processes, core: core, logger: logger)
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

/// Passes the worker arguments through one environment variable: each argument as `x` followed by
/// its UTF-8 bytes in hex, comma-separated, so any content survives (and `[""]` differs from `[]`).
enum ArgumentCoding {
  private static let digits = Array("0123456789abcdef".utf8)

  static func encode(_ arguments: [String]) -> String {
    arguments.map { argument in
      var hex: [UInt8] = [0x78]
      for byte in argument.utf8 {
        hex.append(digits[Int(byte >> 4)])
        hex.append(digits[Int(byte & 0xF)])
      }
      return String(decoding: hex, as: UTF8.self)
    }.joined(separator: ",")
  }

  static func decode(_ text: String) -> [String] {
    if text.isEmpty { return [] }
    return text.split(separator: ",", omittingEmptySubsequences: false).map { part in
      let part = part.dropFirst()
      var bytes: [UInt8] = []
      var high: UInt8?
      for character in part.utf8 {
        let nibble = character <= 0x39 ? character - 0x30 : character - 0x61 + 10
        if let h = high {
          bytes.append(h << 4 | nibble)
          high = nil
        } else {
          high = nibble
        }
      }
      return String(decoding: bytes, as: UTF8.self)
    }
  }
}
