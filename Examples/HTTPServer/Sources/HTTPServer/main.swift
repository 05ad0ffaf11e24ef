// An HTTP service on Hummingbird 2 under AsyncToolsServer's prefork `startServer`:
//
//     swift run --package-path Examples/HTTPServer http-server                 # 2 workers, 127.0.0.1:8080
//     swift run --package-path Examples/HTTPServer http-server --workers 4 --port 9000
//     systemd-socket-activate -l 127.0.0.1:8080 -- .build/debug/http-server --systemd-socket
//
//     curl http://127.0.0.1:8080/           # hello from worker <n> (pid <p>)
//     curl http://127.0.0.1:8080/health     # {"status":"ok","worker":<n>,"pid":<p>} (readiness probe)
//
// The main process binds one socket (or takes systemd's) and shares it with N worker processes;
// each serves its connections with Hummingbird on its own event loop (SharedSocketHTTP.swift).
// SIGINT/SIGTERM stop it: every worker stops accepting, closes idle keep-alive connections, lets
// requests in flight finish (up to --drain-timeout), and exits; a second signal forces the stop.
// SIGHUP replaces the workers one at a time without refusing a connection; SIGUSR2 hands the
// server over to a new main process started from the (rebuilt) binary at the same path. Under
// systemd (NOTIFY_SOCKET set) it reports READY=1, RELOADING=1, STOPPING=1, MAINPID= after an
// upgrade, and pings the watchdog.
//
// `--single-process` runs the same router as a plain Hummingbird `Application` in one process
// (its own socket, --workers event-loop threads): the baseline the benchmark compares with.
import ArgumentParser
import AsyncTools
import AsyncToolsServer
import Hummingbird
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

struct HTTPServerCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "http-server",
    abstract: "An HTTP service on Hummingbird with prefork (or threaded) workers.",
    discussion: """
      Signals: SIGINT/SIGTERM stop the server (workers drain their connections); a second one forces \
      the stop; SIGHUP restarts the workers one at a time; SIGUSR2 upgrades the main process from the \
      binary at its path (a new main process takes over once its workers are ready; if it fails, \
      this one serves on). Exit status: 0 stopped or handed over, 1 a worker failed or the server \
      could not start, 2 workers had to be killed.
      """)

  @Option(help: "The address to listen on.") var host = "127.0.0.1"
  // `.unconditional`: a negative number is the option's (bad) value, not an unknown flag.
  @Option(parsing: .unconditional, help: "The port to listen on (0: any free port).") var port = 8080
  @Option(parsing: .unconditional, help: "How many workers.") var workers = 2
  @Flag(help: "Run workers as tasks in one process instead of worker processes.") var threads = false
  @Option(parsing: .unconditional, help: "Seconds the workers get to stop before they are killed.")
  var waitTimeout: Double = 10
  @Option(
    parsing: .unconditional,
    help: "Seconds a stopping worker lets requests in flight finish before it closes their connections (< --wait-timeout).")
  var drainTimeout: Double = 5
  @Option(parsing: .unconditional, help: "Seconds an idle keep-alive connection stays open.") var idleTimeout: Double = 60
  @Flag(help: "Take the listening socket from systemd (socket activation) instead of binding --host/--port.")
  var systemdSocket = false
  @Option(help: "With --systemd-socket: the name of the socket to take (FileDescriptorName=).") var socketName: String?
  @Flag(help: "Run the same service as a plain Hummingbird application in one process (the benchmark baseline).")
  var singleProcess = false
  @Option(
    help: "How workers share new connections: least-connections (default) or kernel (whichever worker wakes first).")
  var acceptBalancing = "least-connections"

  func validate() throws {
    guard (1...1024).contains(workers) else { throw ValidationError("--workers must be in 1...1024, got \(workers)") }
    guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535, got \(port)") }
    for (flag, value) in [("--wait-timeout", waitTimeout), ("--drain-timeout", drainTimeout), ("--idle-timeout", idleTimeout)] {
      guard value.isFinite, value > 0, value <= 86_400 else {
        throw ValidationError("\(flag) must be a number of seconds in (0, 86400], got \(value)")
      }
    }
    if drainTimeout >= waitTimeout {
      throw ValidationError("--drain-timeout (\(drainTimeout)) must be shorter than --wait-timeout (\(waitTimeout))")
    }
    if socketName != nil && !systemdSocket { throw ValidationError("--socket-name needs --systemd-socket") }
    guard ["least-connections", "kernel"].contains(acceptBalancing) else {
      throw ValidationError("--accept-balancing must be least-connections or kernel, got \(acceptBalancing)")
    }
    if singleProcess && (systemdSocket || threads) {
      throw ValidationError("--single-process cannot be combined with --systemd-socket or --threads")
    }
  }
}

/// Seconds as a `Duration`, to the millisecond (validated finite and positive).
func duration(_ seconds: Double) -> Duration { .milliseconds(Int64((seconds * 1000).rounded(.up))) }

/// The service: the same routes in every mode.
func makeRouter() -> Router<BasicRequestContext> {
  let router = Router()
  router.get("/") { _, _ in
    "hello from worker \(WorkerContext.processIndex.map(String.init) ?? "-") (pid \(getpid()))\n"
  }
  // For a load balancer's or Kubernetes' probe: a worker that answers is serving.
  router.get("/health") { _, _ -> Response in
    let body = "{\"status\":\"ok\",\"worker\":\(WorkerContext.processIndex.map(String.init) ?? "null"),\"pid\":\(getpid())}\n"
    return Response(
      status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
  }
  return router
}

func say(_ line: String) {
  print(line)
  fflush(nil)  // scripts and tests read these lines through a pipe
}

let options = HTTPServerCommand.parseOrExit()
let logger = Logger(label: "http-server")

if options.singleProcess {
  let group = MultiThreadedEventLoopGroup(numberOfThreads: options.workers)
  let app = Application(
    router: makeRouter(),
    server: .http1(configuration: .init(idleTimeout: .milliseconds(Int64(options.idleTimeout * 1000)))),
    configuration: .init(address: .hostname(options.host, port: options.port)),
    onServerRunning: { channel in
      say("http-server listening on \(channel.localAddress.map { "\($0)" } ?? "?") in one process")
    },
    eventLoopGroupProvider: .shared(group), logger: logger)
  do {
    try await app.runService()
    exit(0)
  } catch {
    say("http-server: \(error)")
    exit(1)
  }
}

var configuration = ServerConfiguration(
  mode: options.threads ? .threads : .processes, numWorkers: options.workers,
  listen: options.systemdSocket
    ? .systemdSocket(named: options.socketName) : .init(host: options.host, port: options.port))
configuration.waitTimeout = duration(options.waitTimeout)
// The drain's bound: requests in flight at a stop get this long, then their connections close.
configuration.gracefulShutdownTimeout = duration(options.drainTimeout)
configuration.logger = logger
configuration.acceptBalancing = options.acceptBalancing == "kernel" ? .kernel : .leastConnections
let http = SharedSocketHTTP(
  router: makeRouter().buildResponder(),
  idleTimeout: .milliseconds(Int64((options.idleTimeout * 1000).rounded(.up))), logger: logger)

do {
  let result = try await startServer(configuration: configuration, worker: http.serve) { server in
    let address =
      options.systemdSocket
      ? "the systemd socket (port \(server.listeningPort ?? 0))"
      : "\(ServerConfiguration.ListenAddress(host: options.host, port: server.listeningPort ?? 0))"
    say("http-server listening on \(address) with \(options.workers) worker \(options.threads ? "threads" : "processes")")
    return try await server.runWorkers()
  }
  say("http-server \(result)")
  exit(result.exitCode)
} catch {
  let message = "http-server: \((error as? ServerError)?.message ?? "\(error)")\n"
  _ = message.withCString { write(2, $0, strlen($0)) }
  exit(1)
}
