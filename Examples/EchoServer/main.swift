// The echo server of aiotools' README, on AsyncToolsServer and SwiftNIO:
//
//     swift run echo-server                      # 2 worker processes on 127.0.0.1:8888
//     swift run echo-server --workers 4 --mode threads --port 9000
//
// The main process binds one listening socket and shares it with every worker; each worker accepts
// from it and serves its connections on its own NIO event loop. The echo path is plain NIO (a
// ChannelInboundHandler): nothing of AsyncTools sits between a connection and the handler.
// Ctrl-C (SIGINT) or SIGTERM stops it cleanly; SIGHUP replaces the workers one at a time without
// refusing a connection; SIGUSR2 hands the server over to a new main process started from the
// (rebuilt) executable, without closing the port. `echo-server --help` lists the flags, signals,
// exit statuses and the worker-failure policy (EchoServerCommand.swift).
import ArgumentParser
import AsyncTools
import AsyncToolsServer
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Echoes every byte back: the NIO example handler, the whole hot path. It tells the worker's
/// connection drain when a request (bytes read) is in flight and when its reply is written, so a
/// stopping worker closes an idle connection at once and a busy one right after its reply.
final class EchoHandler: ChannelInboundHandler, Sendable {
  typealias InboundIn = ByteBuffer
  typealias OutboundOut = ByteBuffer

  let connection: ConnectionDrain.Connection

  init(_ connection: ConnectionDrain.Connection) { self.connection = connection }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    connection.requestStarted()
    let promise = context.eventLoop.makePromise(of: Void.self)
    promise.futureResult.whenComplete { [connection] _ in connection.requestFinished() }
    context.write(data, promise: promise)
  }

  func channelReadComplete(context: ChannelHandlerContext) {
    context.flush()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    context.close(promise: nil)
  }
}

/// One worker: a one-thread NIO event loop group serving the connections this worker accepts from
/// the shared listening socket, until the server stops it; then the library's drain
/// (`serveConnections`): stop accepting (a server stop has already made the port refuse new
/// connections; in a rolling restart the other workers keep accepting), close idle connections at
/// once and busy ones after their reply, all of them at the graceful shutdown timeout.
@Sendable func echoWorker(_ context: WorkerContext) async throws {
  let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
  try await context.serveConnections { socket, connection in
    // Accepting is the only AsyncTools code per connection; each connection is then plain NIO.
    let channel = ClientBootstrap(group: group)
      .channelOption(.socketOption(.tcp_nodelay), value: 1)
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(EchoHandler(connection)) }
      }
      .withConnectedSocket(socket)
    channel.whenComplete { result in
      switch result {
      case .success(let channel):
        connection.setCloseHandler { channel.close(promise: nil) }
        channel.closeFuture.whenComplete { _ in connection.closed() }
      case .failure:
        connection.closed()
      }
    }
  }
  try await group.shutdownGracefully()
}

let options = EchoServerCommand.parseOrExit()
let configuration: ServerConfiguration
do {
  configuration = try options.serverConfiguration()
} catch {
  EchoServerCommand.exit(withError: error)
}

do {
  let result = try await startServer(configuration: configuration, worker: echoWorker) { server in
    let address = ServerConfiguration.ListenAddress(host: options.server.host, port: server.listeningPort ?? 0)
    print("echo-server listening on \(address) with \(configuration.numWorkers) worker \(configuration.mode)")
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
