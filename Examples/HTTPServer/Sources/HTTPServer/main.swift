// An HTTP service on Hummingbird 2 under AsyncToolsServer's prefork `startServer`:
//
//     swift run --package-path Examples/HTTPServer http-server                 # 2 workers, 127.0.0.1:8080
//     swift run --package-path Examples/HTTPServer http-server --workers 4 --port 9000 --metrics-port 9100
//     systemd-socket-activate -l 127.0.0.1:8080 -- .build/debug/http-server --systemd-socket
//
//     curl http://127.0.0.1:8080/           # hello from worker <n> (pid <p>)
//     curl http://127.0.0.1:8080/health     # {"status":"ok","worker":<n>,"pid":<p>} (readiness probe)
//     curl http://127.0.0.1:8080/metrics    # Prometheus text of the worker that answered
//
// The flags are the echo demo's (AsyncToolsServerCommandLine's `ServerOptions`: --workers, --mode,
// --port, --wait-timeout, --drain-timeout, --on-worker-failure, …) plus --idle-timeout,
// --metrics-port and --single-process.
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
import AsyncToolsServerCommandLine
import Hummingbird
import Logging
import Metrics
import NIOCore
import NIOPosix
import Prometheus

#if canImport(Glibc)
import Glibc
#endif

struct HTTPServerCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "http-server",
    abstract: "An HTTP service on Hummingbird with prefork (or threaded) workers.",
    discussion: """
      Listens on 127.0.0.1:8080 unless --host and --port say otherwise. GET / answers which worker \
      served it, GET /health is a readiness probe, GET /metrics the Prometheus text of the process that \
      answered (each worker process has its own registry; --metrics-port serves the main process's, \
      with the server's worker starts, exits and restarts). Signals: SIGINT/SIGTERM stop the server \
      (workers drain their connections for at most --drain-timeout seconds); a second one forces the \
      stop; SIGHUP restarts the workers one at a time; SIGUSR2 upgrades the main process from the \
      binary at its path (a new main process takes over once its workers are ready, within \
      --upgrade-timeout; if it fails, this one serves on). Exit status: 0 stopped or handed over, 1 a \
      worker failed or the server could not start, 2 workers had to be killed, 64 a bad flag.
      """)

  /// The standard server flags, the echo demo's too (AsyncToolsServerCommandLine's `ServerOptions`).
  @OptionGroup var server: ServerOptions
  @Option(parsing: .unconditional, help: "Seconds an idle keep-alive connection stays open (> 0, finite).")
  var idleTimeout: Double = 60
  @Option(
    parsing: .unconditional,
    help: "Serve the main process's /metrics (the server's worker metrics) on this port of --host (0: any free port).")
  var metricsPort: Int?
  @Flag(help: "Run the same service as a plain Hummingbird application in one process (the benchmark baseline).")
  var singleProcess = false

  static let defaultPort = 8080

  func validate() throws {
    _ = try ServerOptions.duration(idleTimeout, flag: "--idle-timeout")
    if let metricsPort, !(0...65535).contains(metricsPort) {
      throw ValidationError("--metrics-port must be in 0...65535, got \(metricsPort)")
    }
    if singleProcess && (server.systemdSocket || server.resolvedMode == .threads || metricsPort != nil) {
      throw ValidationError("--single-process cannot be combined with --systemd-socket, --mode threads or --metrics-port")
    }
  }
}

/// The service: the same routes in every mode. `/metrics` is `registry` (this process's) in the
/// Prometheus text format; every request is counted and timed by Hummingbird's `MetricsMiddleware`.
func makeRouter(metrics registry: PrometheusCollectorRegistry) -> Router<BasicRequestContext> {
  let router = Router()
  router.middlewares.add(MetricsMiddleware())
  router.get("/") { _, _ in
    "hello from worker \(WorkerContext.processIndex.map(String.init) ?? "-") (pid \(getpid()))\n"
  }
  // For a load balancer's or Kubernetes' probe: a worker that answers is serving.
  router.get("/health") { _, _ -> Response in
    let body = "{\"status\":\"ok\",\"worker\":\(WorkerContext.processIndex.map(String.init) ?? "null"),\"pid\":\(getpid())}\n"
    return Response(
      status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
  }
  addMetricsRoute(to: router, registry: registry)
  return router
}

/// `GET /metrics`: `registry` in the Prometheus text exposition format, with
/// `http_server_process_info{worker,pid} 1` saying which process answered (`worker="main"` for the
/// main process's endpoint).
func addMetricsRoute(to router: Router<BasicRequestContext>, registry: PrometheusCollectorRegistry) {
  router.get("/metrics") { _, _ -> Response in
    let worker = WorkerContext.processIndex.map(String.init) ?? "main"
    let processInfo = MetricNameDescriptor(
      namespace: "http_server", metricName: "process", unitName: "info",
      helpText: "1, labelled with the worker (or main) process that answered this scrape and its pid")
    registry.makeGauge(descriptor: processInfo, labels: [("worker", worker), ("pid", "\(getpid())")]).set(to: 1)
    return Response(
      status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
      body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
  }
}

func say(_ line: String) {
  print(line)
  fflush(nil)  // scripts and tests read these lines through a pipe
}

let options = HTTPServerCommand.parseOrExit()
let logger = Logger(label: "http-server")
// Runs in every process (the workers re-execute this program): each process gets its own registry,
// so each worker's /metrics shows that worker's requests. See the DocC Observability article for
// aggregating them.
let registry = PrometheusCollectorRegistry()
MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
let idleTimeout = TimeAmount((try? ServerOptions.duration(options.idleTimeout, flag: "--idle-timeout")) ?? .seconds(60))

if options.singleProcess {
  let group = MultiThreadedEventLoopGroup(numberOfThreads: options.server.workers)
  let app = Application(
    router: makeRouter(metrics: registry),
    server: .http1(configuration: .init(idleTimeout: idleTimeout)),
    configuration: .init(
      address: .hostname(options.server.host, port: options.server.port ?? HTTPServerCommand.defaultPort)),
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

var configuration: ServerConfiguration
do {
  configuration = try options.server.configuration(defaultPort: HTTPServerCommand.defaultPort)
} catch {
  HTTPServerCommand.exit(withError: error)
}
configuration.logger = logger
// The server's own metrics (worker starts, exits by cause, restarts, stop duration), recorded in the
// main process: on /metrics in threads mode, on --metrics-port in process mode.
configuration.metrics = MetricsConfiguration(name: "http-server")
let http = SharedSocketHTTP(router: makeRouter(metrics: registry).buildResponder(), idleTimeout: idleTimeout, logger: logger)

/// The main process's `/metrics` on `--metrics-port`, until the task running it is cancelled.
func serveMainMetrics(port: Int) async throws {
  let router = Router()
  addMetricsRoute(to: router, registry: registry)
  let app = Application(
    router: router, configuration: .init(address: .hostname(options.server.host, port: port)),
    onServerRunning: { channel in say("http-server main-process metrics on port \(channel.localAddress?.port ?? 0)") },
    logger: logger)
  try await app.runService()
}

do {
  let result = try await startServer(configuration: configuration, worker: http.serve) { server in
    let address =
      options.server.systemdSocket
      ? "the systemd socket (port \(server.listeningPort ?? 0))"
      : "\(ServerConfiguration.ListenAddress(host: options.server.host, port: server.listeningPort ?? 0))"
    say("http-server listening on \(address) with \(configuration.numWorkers) worker \(configuration.mode)")
    let metrics = options.metricsPort.map { port in
      Task {
        do {
          try await serveMainMetrics(port: port)
        } catch {
          // E.g. the port is still the old main process's during a SIGUSR2 upgrade: serve on without it.
          logger.error("the main process's /metrics on port \(port) is unavailable: \(error)")
        }
      }
    }
    defer { metrics?.cancel() }
    return try await server.runWorkers()
  }
  say("http-server \(result)")
  exit(result.exitCode)
} catch {
  let message = "http-server: \((error as? ServerError)?.message ?? "\(error)")\n"
  _ = message.withCString { write(2, $0, strlen($0)) }
  exit(1)
}
