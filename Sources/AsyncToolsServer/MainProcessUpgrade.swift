#if os(Linux)
import AsyncTools
import AsyncToolsProcess
import Glibc
import Synchronization
import UnixSignals

/// The binary upgrade of the main process (``ServerConfiguration/upgradeSignal``), both sides of it.
/// A client of AsyncToolsProcess' re-execution, as worker processes are: the old main process
/// re-executes the program from the path it was started from with the role ``role``, the listening
/// socket as descriptor 3 and the systemd variables; the new main process claims the role in
/// `startServer` (``Successor/claim()``), serves on the inherited socket, and reports readiness
/// through the re-execution's readiness pipe once every one of its workers is ready.
///
/// The new main process is started like this:
/// - same command line (`argv[0]` included) and environment as this process had, plus
///   `NOTIFY_SOCKET` and `WATCHDOG_USEC` under systemd (this process unset them at start);
/// - its own process group (a terminal's Ctrl-C reaches only the old main process, which forwards
///   the stop to the new one while the upgrade is in progress), no parent-death signal (it outlives
///   the old one);
/// - the stop, restart and upgrade signals blocked until it traps them, so one that arrives during
///   its start-up is held and acted on, never lost or taken with its default action.
final class MainProcessUpgrader: Sendable {
  /// The re-execution role of a new main process.
  static let role = "asynctools-server-main"

  private let configuration: ServerConfiguration
  private let socket: ListeningSocket?
  private let successorEnvironment: [String: String]
  /// The new main process of the upgrade in progress, and the watchers still running.
  private let state = Locked<(child: ChildProcess?, watchers: [Task<Void, Never>])>((nil, []))

  /// The executable and command line the new main process runs, captured when the server started.
  private let executable = ChildProcess.startupExecutable
  private let argv = CommandLine.arguments

  init(configuration: ServerConfiguration, socket: ListeningSocket?, successorEnvironment: [String: String]) {
    self.configuration = configuration
    self.socket = socket
    self.successorEnvironment = successorEnvironment
  }

  /// Starts the new main process and returns its pid; then reports `.upgradeReady` or
  /// `.upgradeEnded` on `events`.
  func start(events: AsyncStream<SupervisorEvent>.Continuation) async throws -> Int32 {
    let listenFD: CInt = 3
    let handoff = Successor.Handoff(listenFD: socket == nil ? nil : listenFD, adopted: socket?.adopted ?? false)
    var environment: [String: String] = [:]
    for variable in ChildProcess.currentEnvironment() {
      guard let equals = variable.firstIndex(of: "=") else { continue }
      environment[String(variable[..<equals])] = String(variable[variable.index(after: equals)...])
    }
    environment.merge(successorEnvironment) { $1 }
    let held = configuration.stopSignals + [configuration.restartSignal, configuration.upgradeSignal].compactMap { $0 }
    let options = ChildProcess.Options(
      processGroup: .own, parentDeathSignal: nil, blockedSignals: held.map(\.rawValue), readinessTimeout: nil)
    let (child, readiness) = try await ChildProcess.reexecute(
      executable: executable, argv: argv, target: .role(Self.role), arguments: handoff.encoded,
      environment: environment, fileDescriptors: socket.map { [listenFD: $0.fd] } ?? [:], options: options)
    let watcher = Task {
      // Readiness first: it ends at the latest with the exit.
      if (try? await readiness.wait(timeout: nil)) == .ready {
        events.yield(.upgradeReady)
        return
      }
      // Through cancellation: the process must be reaped (status unknown: reaped elsewhere).
      let status = (try? await child.waitUncancellable().get()) ?? .exited(255)
      events.yield(.upgradeEnded(status: Self.describe(status)))
    }
    state.withLock {
      $0.child = child
      $0.watchers.append(watcher)
    }
    return child.pid
  }

  /// Sends `signal` to the new main process of the upgrade in progress.
  func send(_ signal: Int32) {
    _ = try? state.withLock { $0.child }?.send(signal: signal)
  }

  /// SIGKILLs the new main process of the upgrade in progress (its workers follow: their
  /// parent-death signal).
  func kill() { send(SIGKILL) }

  /// Awaits the watchers: a new main process that failed or was stopped has been reaped.
  func finish() async {
    for watcher in state.withLock({ $0.watchers }) { await watcher.value }
  }

  private static func describe(_ status: ChildProcess.ExitStatus) -> String {
    switch status {
    case .exited(let code): "exited with status \(code)"
    case .signaled(let signal, _): "was killed by signal \(signal)"
    }
  }

  /// The new main process's side: what the old one handed over, claimed from the re-execution
  /// handshake.
  struct Successor: Sendable {
    /// What the old main process tells the new one, encoded as the re-execution arguments.
    struct Handoff: Sendable, Hashable {
      /// The listening socket's descriptor in the new main process, if the server listens.
      var listenFD: CInt?
      /// Whether the socket was passed to the old main process (systemd, an inherited descriptor)
      /// rather than bound by it: then it is never shut down (see `ListeningSocket.adopted`).
      var adopted: Bool

      /// `[fd or "", "adopted" or "bound"]`.
      var encoded: [String] { [listenFD.map { String($0) } ?? "", adopted ? "adopted" : "bound"] }

      init(listenFD: CInt?, adopted: Bool) {
        self.listenFD = listenFD
        self.adopted = adopted
      }

      /// The hand-off, or `nil` if `fields` is not what ``encoded`` produces.
      init?(decoding fields: [String]) {
        guard fields.count == 2, ["adopted", "bound"].contains(fields[1]) else { return nil }
        if fields[0].isEmpty {
          listenFD = nil
        } else {
          guard let fd = CInt(fields[0]), fd >= 0 else { return nil }
          listenFD = fd
        }
        adopted = fields[1] == "adopted"
      }
    }

    let handoff: Handoff
    let child: ReexecutedChild

    /// The successor's side when this process is the new main process of an upgrade, else `nil`.
    /// A malformed hand-off is printed and ends the process with status 1 (the old one serves on).
    static func claim() -> Successor? {
      guard let child = ReexecutedChild.claim(role: MainProcessUpgrader.role) else { return nil }
      guard let handoff = Handoff(decoding: child.arguments) else {
        ReexecutedChild.printError("malformed binary upgrade arguments \(child.arguments)")
        exit(1)
      }
      return Successor(handoff: handoff, child: child)
    }

    /// The inherited listening socket, shared with the old main process until the hand-over.
    func listeningSocket() -> ListeningSocket? {
      handoff.listenFD.map { ListeningSocket(upgradeInherited: $0, adopted: handoff.adopted) }
    }

    /// The signals that arrived while they were blocked by the old main process's spawn, among
    /// `trapped`: call right after trapping them, and act on each as on a trapped signal.
    func heldSignals(among trapped: [UnixSignal]) -> [UnixSignal] {
      ReexecutedChild.takeHeldSignals().compactMap { raw in trapped.first { $0.rawValue == raw } }
    }

    /// Reports readiness to the old main process once every worker is ready (and after systemd
    /// heard `READY=1` and `MAINPID=`, when this observer comes after the notifier): the socket is
    /// then this process's alone.
    func readinessReporter(socket: ListeningSocket?) -> any ServerLifecycleObserver {
      ReadinessReporter(child: child, socket: socket)
    }
  }

  /// Reports once, and never once this process began to stop (it must not take over then).
  private final class ReadinessReporter: ServerLifecycleObserver {
    let child: ReexecutedChild
    let socket: ListeningSocket?
    private let done = Atomic(false)

    init(child: ReexecutedChild, socket: ListeningSocket?) {
      self.child = child
      self.socket = socket
    }

    func serverLifecycle(_ event: ServerLifecycleEvent) {
      switch event {
      case .stopBegan:
        done.store(true, ordering: .releasing)
      case .workerReady(let ready, let live) where ready >= live:
        guard !done.exchange(true, ordering: .acquiringAndReleasing) else { return }
        socket?.takeOver()
        child.reportReady()
      default:
        break
      }
    }
  }
}
#else
/// Binary upgrades need AsyncToolsProcess' re-execution: Linux only for now.
final class MainProcessUpgrader: Sendable {
  init(configuration: ServerConfiguration, socket: ListeningSocket?, successorEnvironment: [String: String]) {}
  func start(events: AsyncStream<SupervisorEvent>.Continuation) async throws -> Int32 {
    throw ServerError(code: .workerLaunchFailed, message: "binary upgrades are available on Linux only")
  }
  func send(_ signal: Int32) {}
  func kill() {}
  func finish() async {}

  struct Successor: Sendable {
    static func claim() -> Successor? { nil }
    func listeningSocket() -> ListeningSocket? { nil }
    func heldSignals(among trapped: [UnixSignal]) -> [UnixSignal] { [] }
    func readinessReporter(socket: ListeningSocket?) -> any ServerLifecycleObserver { fatalError("Linux only") }
  }
}
#endif
