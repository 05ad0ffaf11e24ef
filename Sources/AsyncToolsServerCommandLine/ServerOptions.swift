import ArgumentParser
import AsyncToolsServer

/// The standard command-line flags of a server built on `startServer`, as a swift-argument-parser
/// option group: where to listen, how many workers and where they run, the stop's timeouts, and what
/// a failing worker does. Include it in a command with `@OptionGroup` and build the server's
/// configuration with ``configuration(defaultPort:)``:
///
/// ```swift
/// struct MyServer: ParsableCommand {
///   @OptionGroup var server: ServerOptions
///   @Option var databaseURL: String
/// }
/// let command = MyServer.parseOrExit()
/// var configuration = try command.server.configuration(defaultPort: 8080)
/// ```
///
/// Every value out of range is a `ValidationError` naming the flag (`--workers must be in 1...1024,
/// got 0`), reported by `parseOrExit()` with exit status 64 before anything starts; none reaches the
/// library as a field name. The flags:
///
/// | flag | default | meaning |
/// |---|---|---|
/// | `--host` | `127.0.0.1` | address to listen on: numeric IPv4 or IPv6, or `localhost` |
/// | `--port` | the program's | port to listen on, 0...65535 (0: any free port) |
/// | `--workers` | 2 | number of workers, 1...1024 |
/// | `--mode` | `processes` | `processes` or `threads` (`ServerConfiguration.Mode`); `--threads` is short for `--mode threads` |
/// | `--wait-timeout` | 10 | seconds the workers get to stop before they are killed |
/// | `--drain-timeout` | 5 | seconds requests in flight get when a stop begins; must be shorter than `--wait-timeout` when both are given |
/// | `--on-worker-failure` | `stop` | `stop`, `ignore` or `restart` (`ServerConfiguration.WorkerFailurePolicy`) |
/// | `--max-restarts`, `--restart-window` | 5, 60 | with `restart`: restarts allowed per window of that many seconds |
/// | `--upgrade-timeout` | 60 | seconds a new main process started by SIGUSR2 gets until all its workers are ready |
/// | `--accept-balancing` | `least-connections` | `least-connections` or `kernel` (`ServerConfiguration.AcceptBalancing`) |
/// | `--systemd-socket`, `--socket-name` | off | take the listening socket from systemd instead of binding `--host`/`--port` |
///
/// Durations are seconds: finite, more than 0, at most 1,000,000,000, and at least one nanosecond.
public struct ServerOptions: ParsableArguments, Sendable {
  /// Where workers run (`--mode`).
  public enum ModeArgument: String, ExpressibleByArgument, CaseIterable, Sendable {
    case processes, threads
  }

  /// How the workers share new connections (`--accept-balancing`).
  public enum AcceptBalancingArgument: String, ExpressibleByArgument, CaseIterable, Sendable {
    case leastConnections = "least-connections", kernel
  }

  /// What a failing worker does to the server (`--on-worker-failure`).
  public enum FailurePolicyArgument: String, ExpressibleByArgument, CaseIterable, Sendable {
    case stop, ignore, restart
  }

  @Option(help: "The address to listen on: a numeric IPv4 or IPv6 address, or localhost.")
  public var host = "127.0.0.1"
  // `.unconditional`: a negative number is the option's (bad) value, not an unknown flag.
  @Option(parsing: .unconditional, help: "The port to listen on, 0...65535 (0: any free port).")
  public var port: Int?
  @Option(parsing: .unconditional, help: "How many workers, 1...\(Self.maxWorkers).")
  public var workers = 2
  @Option(help: "Where workers run: processes (one process each) or threads (tasks of one process).")
  public var mode: ModeArgument?
  @Flag(help: "Short for --mode threads.")
  public var threads = false
  @Option(
    parsing: .unconditional,
    help: "Seconds the workers get to stop after INT or TERM before they are killed (> 0, finite).")
  public var waitTimeout: Double = 10
  @Option(
    parsing: .unconditional,
    help: "Seconds a stopping worker lets requests in flight finish before it closes their connections (default 5).")
  public var drainTimeout: Double?
  @Option(help: "What a failing worker does to the server: stop, ignore or restart.")
  public var onWorkerFailure: FailurePolicyArgument = .stop
  @Option(parsing: .unconditional, help: "With --on-worker-failure restart: restarts allowed per window (>= 1).")
  public var maxRestarts = 5
  @Option(parsing: .unconditional, help: "With --on-worker-failure restart: the window, in seconds (> 0, finite).")
  public var restartWindow: Double = 60
  @Option(
    parsing: .unconditional,
    help: "Seconds a new main process started by USR2 gets until all its workers are ready (> 0, finite).")
  public var upgradeTimeout: Double = 60
  @Option(
    help: """
      How workers share new connections: least-connections (the worker with the fewest open ones \
      takes it) or kernel (whichever worker the kernel wakes first).
      """)
  public var acceptBalancing: AcceptBalancingArgument = .leastConnections
  @Flag(help: "Take the listening socket from systemd (socket activation) instead of binding --host/--port.")
  public var systemdSocket = false
  @Option(help: "With --systemd-socket: the name of the socket to take (FileDescriptorName=).")
  public var socketName: String?

  /// The most workers `--workers` accepts.
  public static let maxWorkers = 1024
  /// The longest duration a flag accepts, in seconds (a longer one is surely a typo, and would not fit
  /// in a `Duration` of nanoseconds).
  public static let maxSeconds: Double = 1_000_000_000
  /// The drain timeout without `--drain-timeout`.
  public static let defaultDrainTimeout: Double = 5

  /// The default values; `parse(_:)` (or `@OptionGroup`) sets the ones given.
  public init() {}

  /// Where workers run: `--mode`, or `threads` with `--threads`.
  public var resolvedMode: ServerConfiguration.Mode {
    if let mode { return mode == .threads ? .threads : .processes }
    return threads ? .threads : .processes
  }

  /// Checks every flag; the error names the first one out of range.
  public func validate() throws {
    if let port, !(0...65535).contains(port) { throw ValidationError("--port must be in 0...65535, got \(port)") }
    if !(1...Self.maxWorkers).contains(workers) {
      throw ValidationError("--workers must be in 1...\(Self.maxWorkers), got \(workers)")
    }
    if threads, let mode, mode != .threads { throw ValidationError("--threads conflicts with --mode \(mode.rawValue)") }
    _ = try Self.duration(waitTimeout, flag: "--wait-timeout")
    if let drainTimeout {
      _ = try Self.duration(drainTimeout, flag: "--drain-timeout")
      if drainTimeout >= waitTimeout {
        throw ValidationError("--drain-timeout (\(drainTimeout)) must be shorter than --wait-timeout (\(waitTimeout))")
      }
    }
    if maxRestarts < 1 { throw ValidationError("--max-restarts must be at least 1, got \(maxRestarts)") }
    _ = try Self.duration(restartWindow, flag: "--restart-window")
    _ = try Self.duration(upgradeTimeout, flag: "--upgrade-timeout")
    if socketName != nil && !systemdSocket { throw ValidationError("--socket-name needs --systemd-socket") }
    if systemdSocket && port != nil { throw ValidationError("--port cannot be combined with --systemd-socket") }
  }

  /// `seconds` as a `Duration`, or a `ValidationError` naming `flag`: it must be finite, more than 0,
  /// at most ``maxSeconds``, and not round to zero nanoseconds.
  public static func duration(_ seconds: Double, flag: String) throws -> Duration {
    guard seconds.isFinite else { throw ValidationError("\(flag) must be a finite number of seconds, got \(seconds)") }
    guard seconds > 0 else { throw ValidationError("\(flag) must be more than 0 seconds, got \(seconds)") }
    guard seconds <= maxSeconds else {
      throw ValidationError("\(flag) must be at most \(Int(maxSeconds)) seconds, got \(seconds)")
    }
    let nanoseconds = (seconds * 1e9).rounded()
    guard nanoseconds >= 1 else { throw ValidationError("\(flag) must be at least 1 nanosecond, got \(seconds) seconds") }
    return .nanoseconds(Int64(nanoseconds))
  }

  /// Where the server listens: `--host` and `--port` (else `defaultPort`), or systemd's socket.
  public func listenAddress(defaultPort: Int) -> ServerConfiguration.ListenAddress {
    systemdSocket ? .systemdSocket(named: socketName) : .init(host: host, port: port ?? defaultPort)
  }

  /// The server configuration these flags ask for: mode, workers, listen address, wait, drain
  /// (graceful shutdown) and upgrade timeouts, the worker-failure policy and the accept balancing;
  /// every other field keeps its default.
  ///
  /// - Parameter defaultPort: The port without `--port`.
  /// - Throws: `ValidationError` naming the flag, for values ``validate()`` rejects (it has run already
  ///   when the options come from `parse` or `@OptionGroup`).
  public func configuration(defaultPort: Int) throws -> ServerConfiguration {
    try validate()
    var configuration = ServerConfiguration(
      mode: resolvedMode, numWorkers: workers, listen: listenAddress(defaultPort: defaultPort))
    configuration.waitTimeout = try Self.duration(waitTimeout, flag: "--wait-timeout")
    configuration.upgradeTimeout = try Self.duration(upgradeTimeout, flag: "--upgrade-timeout")
    // Requests in flight when a stop begins get this long to be answered; then their connections close.
    configuration.gracefulShutdownTimeout = try Self.duration(
      drainTimeout ?? Self.defaultDrainTimeout, flag: "--drain-timeout")
    configuration.acceptBalancing = acceptBalancing == .kernel ? .kernel : .leastConnections
    switch onWorkerFailure {
    case .stop: configuration.onWorkerFailure = .stopServer
    case .ignore: configuration.onWorkerFailure = .ignore
    case .restart:
      configuration.onWorkerFailure = .restart(
        maxRestarts: maxRestarts, within: try Self.duration(restartWindow, flag: "--restart-window"))
    }
    return configuration
  }
}
