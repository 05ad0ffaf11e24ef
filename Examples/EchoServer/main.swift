// The echo server of aiotools' README, on AsyncToolsServer and SwiftNIO:
//
//     swift run echo-server                      # 2 worker processes on 127.0.0.1:8888
//     swift run echo-server --workers 4 --threads --port 9000
//
// The main process binds one listening socket and shares it with every worker; each worker accepts
// from it and serves its connections on its own NIO event loop. The echo path is plain NIO (a
// ChannelInboundHandler): nothing of AsyncTools sits between a connection and the handler.
// Ctrl-C (SIGINT) or SIGTERM stops it cleanly.
import ArgumentParser
import AsyncToolsServer
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct EchoServerCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "echo-server", abstract: "A TCP echo server with prefork (or threaded) workers.")

  @Option(help: "The address to listen on.") var host = "127.0.0.1"
  @Option(help: "The port to listen on (0: any free port).") var port = 8888
  @Option(help: "How many workers.") var workers = 2
  @Flag(help: "Run workers as tasks in one process instead of worker processes.") var threads = false
  @Option(help: "Seconds the workers get to stop before they are killed.") var waitTimeout: Double = 10
}

/// Echoes every byte back: the NIO example handler, the whole hot path.
final class EchoHandler: ChannelInboundHandler, Sendable {
  typealias InboundIn = ByteBuffer
  typealias OutboundOut = ByteBuffer

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    context.write(data, promise: nil)
  }

  func channelReadComplete(context: ChannelHandlerContext) {
    context.flush()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    context.close(promise: nil)
  }
}

/// One worker: a one-thread NIO event loop group serving the connections this worker accepts from
/// the shared listening socket, until the server stops it.
@Sendable func echoWorker(_ context: WorkerContext) async throws {
  let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
  let bootstrap = ClientBootstrap(group: group)
    .channelOption(.socketOption(.tcp_nodelay), value: 1)
    .channelInitializer { channel in
      channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(EchoHandler()) }
    }
  let connections = context.acceptedConnections()!
  // Accepting is the only AsyncTools code per connection; each connection is then plain NIO.
  let acceptor = Task {
    for await socket in connections { _ = bootstrap.withConnectedSocket(socket) }
  }
  _ = await context.stopSignal()
  acceptor.cancel()  // stops accepting (and closes this worker's copy of the listening socket)
  await acceptor.value
  // Closes the connections still open, then the event loop.
  try await group.shutdownGracefully()
}

let options = EchoServerCommand.parseOrExit()
var configuration = ServerConfiguration(
  mode: options.threads ? .threads : .processes, numWorkers: options.workers,
  listen: .init(host: options.host, port: options.port))
configuration.waitTimeout = .milliseconds(Int(options.waitTimeout * 1000))

do {
  let result = try await startServer(configuration: configuration, worker: echoWorker) { server in
    let mode = options.threads ? "threads" : "processes"
    print(
      "echo-server listening on \(ServerConfiguration.ListenAddress(host: options.host, port: server.listeningPort ?? 0))"
        + " with \(options.workers) worker \(mode)")
    fflush(nil)  // the tests (and scripts) read this line through a pipe
    return try await server.runWorkers()
  }
  print("echo-server \(result)")
  exit(result.exitCode)
} catch {
  let message = "echo-server: \((error as? ServerError)?.message ?? "\(error)")\n"
  _ = message.withCString { write(2, $0, strlen($0)) }
  exit(1)
}
