// The echo server's command line: flags, their checks, and what `--help` tells an operator.
import ArgumentParser
import AsyncToolsServer

/// How the workers share new connections (`--accept-balancing`).
enum AcceptBalancingFlag: String, ExpressibleByArgument, CaseIterable {
  case leastConnections = "least-connections", kernel
}

/// What a failing worker does to the server (`--on-worker-failure`).
enum FailurePolicyFlag: String, ExpressibleByArgument, CaseIterable {
  case stop, ignore, restart
}

struct EchoServerCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "echo-server",
    abstract: "A TCP echo server with prefork (or threaded) workers.",
    discussion: """
      The main process binds one listening socket and shares it with every \
      worker; each worker accepts from it and echoes every byte back. Workers \
      are processes, shown in `ps` as "echo-server: worker N" (or tasks of one \
      process with --threads).

      SIGNALS (to the main process):
        INT, TERM  stop: the workers stop accepting, finish their connections
                   and end; one still running after --wait-timeout is killed.
                   A second INT or TERM forces the stop at once.
        HUP        rolling restart: one worker at a time, a fresh worker
                   replaces an old one once it is ready; no connection is
                   refused. Workers run the executable the server was started
                   from, so a rebuilt binary is picked up.
        USR2       binary upgrade: a new main process starts from the
                   executable at the path the server was started from and
                   inherits the listening socket; once all its workers are
                   ready it takes over (under systemd: MAINPID=) and this one
                   stops its own workers and exits 0. If the new one fails or
                   is not ready within --upgrade-timeout, it is stopped and
                   this one logs why and serves on. A USR2 or HUP during an
                   upgrade is logged and ignored; INT or TERM stops both.

      WHEN A WORKER DIES OR FAILS (--on-worker-failure):
        stop       stop the whole server (default).
        ignore     log it and keep the others; the server ends when all have.
        restart    start a fresh worker in its place, at most --max-restarts
                   times within --restart-window seconds; one more failure
                   stops the server.

      EXIT STATUS:
        0   stopped by a signal, every worker completed, or handed over to
            a new main process (USR2)
        1   a worker failed and the server stopped, or the server could not
            start (the address is in use, for example)
        2   stopped, but a worker had to be killed (--wait-timeout or a
            second signal)
        64  a bad flag
      """)

  @Option(help: "The address to listen on: a numeric IPv4 or IPv6 address, or localhost.")
  var host = "127.0.0.1"
  @Option(parsing: .unconditional, help: "The port to listen on, 0...65535 (0: any free port).")
  var port = 8888
  @Option(parsing: .unconditional, help: "How many workers, 1...\(Self.maxWorkers).")
  var workers = 2
  @Flag(help: "Run workers as tasks in one process instead of worker processes.")
  var threads = false
  @Option(
    parsing: .unconditional,
    help: "Seconds the workers get to stop after INT or TERM before they are killed (> 0, finite).")
  var waitTimeout: Double = 10
  @Option(
    help: """
      How workers share new connections: least-connections (the worker with the fewest open ones \
      takes it) or kernel (whichever worker the kernel wakes).
      """)
  var acceptBalancing: AcceptBalancingFlag = .leastConnections
  @Option(help: "What a failing worker does to the server: stop, ignore or restart.")
  var onWorkerFailure: FailurePolicyFlag = .stop
  @Option(parsing: .unconditional, help: "With --on-worker-failure restart: restarts allowed per window (>= 1).")
  var maxRestarts = 5
  @Option(parsing: .unconditional, help: "With --on-worker-failure restart: the window, in seconds (> 0, finite).")
  var restartWindow: Double = 60
  @Option(
    parsing: .unconditional,
    help: "Seconds a new main process started by USR2 gets until all its workers are ready (> 0, finite).")
  var upgradeTimeout: Double = 60

  static let maxWorkers = 1024
  /// Longer durations than this are surely a typo (and would not fit in a `Duration` as nanoseconds).
  static let maxSeconds: Double = 1_000_000_000

  func validate() throws {
    if !(0...65535).contains(port) { throw ValidationError("--port must be in 0...65535, got \(port)") }
    if !(1...Self.maxWorkers).contains(workers) {
      throw ValidationError("--workers must be in 1...\(Self.maxWorkers), got \(workers)")
    }
    _ = try Self.duration(waitTimeout, flag: "--wait-timeout")
    if maxRestarts < 1 { throw ValidationError("--max-restarts must be at least 1, got \(maxRestarts)") }
    _ = try Self.duration(restartWindow, flag: "--restart-window")
    _ = try Self.duration(upgradeTimeout, flag: "--upgrade-timeout")
  }

  /// `seconds` as a `Duration`, or a message naming `flag`: it must be finite, positive, at most
  /// ``maxSeconds``, and not round to zero nanoseconds.
  static func duration(_ seconds: Double, flag: String) throws -> Duration {
    guard seconds.isFinite else { throw ValidationError("\(flag) must be a finite number of seconds, got \(seconds)") }
    guard seconds > 0 else { throw ValidationError("\(flag) must be more than 0 seconds, got \(seconds)") }
    guard seconds <= maxSeconds else {
      throw ValidationError("\(flag) must be at most \(Int(maxSeconds)) seconds, got \(seconds)")
    }
    let nanoseconds = (seconds * 1e9).rounded()
    guard nanoseconds >= 1 else { throw ValidationError("\(flag) must be at least 1 nanosecond, got \(seconds) seconds") }
    return .nanoseconds(Int64(nanoseconds))
  }

  /// The server configuration these flags ask for. Call after `validate()`.
  func serverConfiguration() throws -> ServerConfiguration {
    var configuration = ServerConfiguration(
      mode: threads ? .threads : .processes, numWorkers: workers, listen: .init(host: host, port: port))
    configuration.waitTimeout = try Self.duration(waitTimeout, flag: "--wait-timeout")
    configuration.upgradeTimeout = try Self.duration(upgradeTimeout, flag: "--upgrade-timeout")
    // Requests in flight when a stop begins get this long to be answered; then their connections close.
    configuration.gracefulShutdownTimeout = .seconds(5)
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
