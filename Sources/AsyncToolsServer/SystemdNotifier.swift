import AsyncTools
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The main process's side of `sd_notify(3)`, without libsystemd: when systemd (or a test) sets
/// `NOTIFY_SOCKET`, the server reports readiness, rolling restarts and its stop as datagrams on
/// that Unix socket (see ``SystemdNotificationState`` for which, when), and pings the watchdog
/// every half `WATCHDOG_USEC` when that is set for this process.
///
/// Created once by `startServer` in the main process, which then unsets `NOTIFY_SOCKET`,
/// `WATCHDOG_USEC` and `WATCHDOG_PID`, so workers (and their children) never notify on their own:
/// systemd's default `NotifyAccess=main` would drop their messages anyway. The watchdog pings come
/// from a task of the main process: they say its runtime is alive, not that each worker is.
///
/// A binary upgrade hands `NOTIFY_SOCKET` and `WATCHDOG_USEC` on to the new main process
/// (``successorEnvironment``); once it has taken over, this notifier says nothing more and stops
/// pinging.
package final class SystemdNotifier: ServerLifecycleObserver, Sendable {
  /// The protocol's environment variables.
  package enum Variable {
    package static let socket = "NOTIFY_SOCKET"
    package static let watchdogMicroseconds = "WATCHDOG_USEC"
    package static let watchdogPID = "WATCHDOG_PID"
    package static let all = [socket, watchdogMicroseconds, watchdogPID]
  }

  /// What the environment asks for.
  package struct Settings: Sendable, Hashable {
    /// `NOTIFY_SOCKET`: a path, or an abstract socket name starting with `@`.
    package var socketPath: String
    /// Half of `WATCHDOG_USEC` (systemd's advice), or `nil` without a watchdog for this process.
    package var watchdogInterval: Duration?

    /// The settings in `environment` for process `pid`, or `nil` when `NOTIFY_SOCKET` is unset;
    /// `warnings` names each variable that is set but unusable (and then ignored).
    package static func parse(
      _ environment: [String: String], pid: pid_t
    ) -> (settings: Settings?, warnings: [String]) {
      var warnings: [String] = []
      guard let path = environment[Variable.socket], !path.isEmpty else { return (nil, warnings) }
      guard path.hasPrefix("/") || path.hasPrefix("@") else {
        return (nil, ["NOTIFY_SOCKET '\(path)' is neither a path nor an abstract '@' name: not notifying systemd"])
      }
      guard path.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else {
        return (nil, ["NOTIFY_SOCKET '\(path)' is longer than a Unix socket address can be: not notifying systemd"])
      }
      var interval: Duration?
      if let text = environment[Variable.watchdogMicroseconds] {
        let forUs = environment[Variable.watchdogPID].map { pid_t($0) == pid } ?? true
        if let microseconds = UInt64(text), microseconds > 0 {
          if forUs { interval = .microseconds(microseconds / 2) }
        } else {
          warnings.append("WATCHDOG_USEC must be a positive number of microseconds, got '\(text)': no watchdog pings")
        }
      }
      return (Settings(socketPath: path, watchdogInterval: interval), warnings)
    }
  }

  private struct State {
    var protocolState: SystemdNotificationState
    var watchdog: Task<Void, Never>?
    var warnedAboutSending = false
  }

  private let state: Locked<State>
  private let send: @Sendable (String) -> CInt
  private let logger: Logger
  /// The protocol's variables for the new main process of a binary upgrade: `NOTIFY_SOCKET`, and
  /// `WATCHDOG_USEC` when the watchdog is this process's (the new one then pings in its place).
  package let successorEnvironment: [String: String]

  /// A notifier that hands each datagram to `send` (which returns 0 or an `errno`), and pings the
  /// watchdog every `watchdogInterval` of `clock` until ``finish()``.
  package init<C: Clock<Duration>>(
    mainPID: pid_t, watchdogInterval: Duration?, clock: C, logger: Logger,
    successorEnvironment: [String: String] = [:], send: @escaping @Sendable (String) -> CInt
  ) {
    self.state = Locked(State(protocolState: SystemdNotificationState(mainPID: mainPID)))
    self.send = send
    self.logger = logger
    self.successorEnvironment = successorEnvironment
    guard let watchdogInterval, watchdogInterval > .zero else { return }
    let task = Task { [weak self] in
      while (try? await clock.sleep(for: watchdogInterval)) != nil {
        guard let self else { return }
        self.deliver("WATCHDOG=1")
      }
    }
    state.withLock { $0.watchdog = task }
  }

  /// The notifier `NOTIFY_SOCKET` asks for, or `nil` when it is unset (or unusable: logged). Unsets
  /// the protocol's variables either way.
  package static func fromEnvironment<C: Clock<Duration>>(clock: C, logger: Logger) -> SystemdNotifier? {
    var environment: [String: String] = [:]
    for name in Variable.all {
      if let value = getenv(name) { environment[name] = String(cString: value) }
      unsetenv(name)
    }
    let (settings, warnings) = Settings.parse(environment, pid: getpid())
    for warning in warnings { logger.warning("\(warning)") }
    guard let settings else { return nil }
    var successor = [Variable.socket: settings.socketPath]
    if settings.watchdogInterval != nil {
      successor[Variable.watchdogMicroseconds] = environment[Variable.watchdogMicroseconds]
    }
    return SystemdNotifier(
      mainPID: getpid(), watchdogInterval: settings.watchdogInterval, clock: clock, logger: logger,
      successorEnvironment: successor
    ) { message in
      Self.sendDatagram(message, to: settings.socketPath)
    }
  }

  package func serverLifecycle(_ event: ServerLifecycleEvent) {
    // Under the lock, so datagrams leave in the order of the events.
    let watchdog = state.withLock { state in
      let datagrams = state.protocolState.datagrams(
        for: event, monotonicMicroseconds: SystemdNotificationState.monotonicMicroseconds)
      for datagram in datagrams { deliver(datagram, warned: &state.warnedAboutSending) }
      // Handed over: the new main process pings now (systemd would drop this one's pings anyway).
      // (Cancelled here, awaited by `finish()`.)
      return state.protocolState.phase == .handedOver ? state.watchdog : nil
    }
    watchdog?.cancel()
  }

  /// Reports the end of the server (`STOPPING=1` unless a stop was already reported) and stops the
  /// watchdog pings.
  package func finish() async {
    serverLifecycle(.stopBegan(nil))
    let watchdog = state.withLock { state in
      defer { state.watchdog = nil }
      return state.watchdog
    }
    watchdog?.cancel()
    await watchdog?.value
  }

  private func deliver(_ datagram: String) {
    state.withLock { deliver(datagram, warned: &$0.warnedAboutSending) }
  }

  /// Sends one datagram; the first failure is logged, the next ones are not (a missing notify
  /// socket fails every time, and the server must go on serving).
  private func deliver(_ datagram: String, warned: inout Bool) {
    let code = send(datagram)
    guard code != 0, !warned else { return }
    warned = true
    logger.warning("cannot notify systemd: \(String(cString: strerror(code))); further failures are not logged")
  }

  /// Sends `message` as one datagram to the Unix socket at `path` (`@name`: the abstract namespace);
  /// returns 0 or the `errno` of the failure.
  package static func sendDatagram(_ message: String, to path: String) -> CInt {
    #if canImport(Glibc)
    let fd = socket(AF_UNIX, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
    #else
    let fd = socket(AF_UNIX, SOCK_DGRAM, 0)
    #endif
    guard fd >= 0 else { return errno }
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    var bytes = Array(path.utf8)
    guard !bytes.isEmpty else { return EINVAL }
    if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract: a leading NUL, no terminator
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    guard bytes.count < capacity else { return ENAMETOOLONG }
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + (bytes[0] == 0 ? 0 : 1))
    let payload = Array(message.utf8)
    let sent = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        sendto(fd, payload, payload.count, CInt(MSG_NOSIGNAL), $0, length)
      }
    }
    return sent == payload.count ? 0 : errno
  }
}
