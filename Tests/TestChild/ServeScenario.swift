// The drain scenario for AsyncToolsServerTests: a server whose workers serve connections through
// `WorkerContext.serveConnections`, one blocking thread per connection (no NIO), so the tests see
// the library's drain and accept loop alone.
//
//     AsyncToolsTestChild serve [--threads] [--workers N] [--graceful-timeout-ms N]
//         [--wait-timeout-ms N] [--reply-delay-ms N] [--nofile N] [--ignore-cancel] [--tag]
//         [--ignore-failed] [--kernel-balancing]
//
// Each connection echoes what it reads, after `--reply-delay-ms` (each read is one request: the
// worker prints `request <bytes>` when it starts one). Each worker prints `worker <index> pid
// <pid>`, and `worker <index> drained by <signal>` when `serveConnections` returns. The main
// process prints `listening <port>` and `server exit <code> <description>`. `--nofile N` lowers
// RLIMIT_NOFILE in every process first. `--ignore-cancel` (threads mode): the worker body, once
// stopped, ignores cancellation forever. `--tag`: each reply starts with `<worker index>:`, so a
// client knows which worker serves it. `--ignore-failed`: a failed (killed) worker leaves the others running.
// `--kernel-balancing`: ServerConfiguration.acceptBalancing `.kernel`.
import AsyncTools
import AsyncToolsServer

#if canImport(Glibc)
import Glibc
#endif

func runServeScenarioIfRequested() async {
  let arguments = Array(CommandLine.arguments.dropFirst())
  guard arguments.first == "serve" else { return }
  func option(_ name: String) -> Int? { optionValue(name, in: arguments).flatMap { Int($0) } }
  if let limit = option("--nofile") {
    var value = rlimit(rlim_cur: rlim_t(limit), rlim_max: rlim_t(limit))
    if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &value) != 0 { say("setrlimit failed: errno \(errno)") }
  }
  var configuration = ServerConfiguration(
    mode: arguments.contains("--threads") ? .threads : .processes, numWorkers: option("--workers") ?? 1,
    listen: .init(port: 0))
  if let milliseconds = option("--wait-timeout-ms") { configuration.waitTimeout = .milliseconds(milliseconds) }
  if let milliseconds = option("--graceful-timeout-ms") {
    configuration.gracefulShutdownTimeout = .milliseconds(milliseconds)
  }
  if arguments.contains("--ignore-failed") { configuration.onWorkerFailure = .ignore }
  if arguments.contains("--kernel-balancing") { configuration.acceptBalancing = .kernel }
  let tagged = arguments.contains("--tag")
  let delay = option("--reply-delay-ms") ?? 0
  let ignoreCancel = arguments.contains("--ignore-cancel")
  do {
    let result = try await startServer(configuration: configuration) { context in
      say("worker \(context.processIndex) pid \(getpid())")
      if ignoreCancel {
        say("worker \(context.processIndex) ignoring cancellation after \(await context.stopSignal())")
        while true { try? await Task.sleep(for: .seconds(1)) }
      }
      let signal = try await context.serveConnections { socket, connection in
        let tag = tagged ? Array("\(context.processIndex):".utf8) : []
        EchoConnection(socket: socket, connection: connection, delay: delay, tag: tag).start()
      }
      say("worker \(context.processIndex) drained by \(signal)")
    } main: { server in
      if let port = server.listeningPort { say("listening \(port)") }
      return try await server.runWorkers()
    }
    say("server exit \(result.exitCode) \(result)")
    exit(result.exitCode)
  } catch {
    say("server error \(error)")
    exit(1)
  }
}

/// One connection on its own thread: blocking reads, one echo per read.
private final class EchoConnection: Sendable {
  let socket: CInt
  let connection: ConnectionDrain.Connection
  let delay: Int
  /// What each reply starts with.
  let tag: [UInt8]
  /// Whether `socket` is still open: the drain's close handler must not shut down a reused number.
  private let open = Locked(true)

  init(socket: CInt, connection: ConnectionDrain.Connection, delay: Int, tag: [UInt8]) {
    self.socket = socket
    self.connection = connection
    self.delay = delay
    self.tag = tag
  }

  func start() {
    _ = fcntl(socket, F_SETFL, fcntl(socket, F_GETFL) & ~O_NONBLOCK)
    connection.setCloseHandler { [self] in
      open.withLock { if $0 { _ = shutdown(socket, CInt(SHUT_RDWR)) } }
    }
    let context = Unmanaged.passRetained(self).toOpaque()
    var thread = pthread_t()
    let status = pthread_create(&thread, nil, { pointer in
      Unmanaged<EchoConnection>.fromOpaque(pointer!).takeRetainedValue().serve()
      return nil
    }, context)
    if status == 0 {
      pthread_detach(thread)
    } else {
      Unmanaged<EchoConnection>.fromOpaque(context).release()
      finish()
    }
  }

  private func serve() {
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
      let count = read(socket, &buffer, buffer.count)
      if count < 0 && errno == EINTR { continue }
      if count <= 0 { break }
      connection.requestStarted()
      say("request \(count)")
      if delay > 0 { usleep(useconds_t(delay * 1000)) }
      if tag.isEmpty {
        _ = write(socket, buffer, count)
      } else {
        let reply = tag + buffer[0..<count]
        _ = write(socket, reply, reply.count)
      }
      connection.requestFinished()
    }
    finish()
  }

  private func finish() {
    open.withLock { open in
      open = false
      close(socket)
    }
    connection.closed()
  }
}
