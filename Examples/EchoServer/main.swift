// The echo server of aiotools' README, on AsyncToolsServer and SwiftNIO:
//
//     swift run echo-server                      # 2 worker processes on 127.0.0.1:8888
//     swift run echo-server --workers 4 --threads --port 9000
//
// The main process binds one listening socket and shares it with every worker; each worker accepts
// from it and serves its connections on its own NIO event loop. The echo path is plain NIO (a
// ChannelInboundHandler): nothing of AsyncTools sits between a connection and the handler.
// Ctrl-C (SIGINT) or SIGTERM stops it cleanly; SIGHUP replaces the workers one at a time without
// refusing a connection. `echo-server --help` lists the flags, signals, exit statuses and the
// worker-failure policy (EchoServerCommand.swift).
import ArgumentParser
import AsyncTools
import AsyncToolsServer
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

/// Counts this worker's open connections, so a stopping worker can let them finish.
final class OpenConnections: Sendable {
  private let state = Mutex<(count: Int, waiters: [CheckedContinuation<Void, Never>])>((0, []))

  /// Counts a connection from the moment it is accepted (before NIO has set it up) until its
  /// channel closes, or NIO fails to adopt it.
  func track(_ channel: EventLoopFuture<Channel>) {
    state.withLock { $0.count += 1 }
    channel.whenComplete { result in
      switch result {
      case .success(let channel): channel.closeFuture.whenComplete { _ in self.closed() }
      case .failure: self.closed()
      }
    }
  }

  private func closed() {
    let waiters = state.withLock { state in
      state.count -= 1
      guard state.count == 0 else { return [CheckedContinuation<Void, Never>]() }
      defer { state.waiters = [] }
      return state.waiters
    }
    for waiter in waiters { waiter.resume() }
  }

  /// Returns once no connection is open.
  func drained() async {
    await withCheckedContinuation { continuation in
      let now = state.withLock { state in
        if state.count == 0 { return true }
        state.waiters.append(continuation)
        return false
      }
      if now { continuation.resume() }
    }
  }
}

/// One worker: a one-thread NIO event loop group serving the connections this worker accepts from
/// the shared listening socket, until the server stops it. Then it stops accepting (the kernel's
/// queue stays with the other workers), lets its open connections finish for up to a second, and
/// closes the rest: a rolling restart drops nothing.
@Sendable func echoWorker(_ context: WorkerContext) async throws {
  let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
  let open = OpenConnections()
  let bootstrap = ClientBootstrap(group: group)
    .channelOption(.socketOption(.tcp_nodelay), value: 1)
    .channelInitializer { channel in
      channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(EchoHandler()) }
    }
  let connections = context.acceptedConnections()!
  // Accepting is the only AsyncTools code per connection; each connection is then plain NIO.
  let acceptor = Task {
    for await socket in connections { open.track(bootstrap.withConnectedSocket(socket)) }
  }
  _ = await context.stopSignal()
  connections.stopAccepting()
  await acceptor.value  // every connection accepted so far is now NIO's
  _ = try? await moveOnAfter(.seconds(1)) { await open.drained() }
  // Closes the connections still open, then the event loop.
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
