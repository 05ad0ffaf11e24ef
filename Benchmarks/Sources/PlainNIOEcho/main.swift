// plain-nio-echo: the baseline of the echo-server benchmark — what a Swift user would write
// without AsyncTools. One process, one ServerBootstrap, `--threads` event loop threads (1 to
// compare with one worker, 2 with two), the same EchoHandler and TCP_NODELAY as
// Examples/EchoServer.
//
//     plain-nio-echo [--port 0] [--threads 1]
//
// Prints "plain-nio-echo listening on 127.0.0.1:PORT" once it accepts connections. SIGTERM or
// SIGINT closes the listening socket and the event loops, then exits with status 0.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix

/// Echoes every byte back (the same handler as Examples/EchoServer).
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

func fail(_ message: String) -> Never {
  let line = "plain-nio-echo: \(message)\n"
  _ = line.withCString { write(2, $0, strlen($0)) }
  exit(2)
}

var port = 0
var threads = 1
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
  guard let value = arguments.popFirst().flatMap({ Int($0) }) else { fail("\(argument) needs a number") }
  switch argument {
  case "--port": port = value
  case "--threads": threads = value
  default: fail("unknown argument \(argument)")
  }
}
guard (0...65535).contains(port), (1...64).contains(threads) else { fail("--port 0...65535, --threads 1...64") }

// Stop signals are taken synchronously by a thread of our own (sigwait), so NIO's threads never
// see them: block them before NIO starts any thread.
var stopSignals = sigset_t()
sigemptyset(&stopSignals)
sigaddset(&stopSignals, SIGTERM)
sigaddset(&stopSignals, SIGINT)
pthread_sigmask(SIG_BLOCK, &stopSignals, nil)

let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
let channel: Channel
do {
  channel = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 511)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
      channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(EchoHandler()) }
    }
    .bind(host: "127.0.0.1", port: port).wait()
} catch {
  fail("cannot listen on 127.0.0.1:\(port): \(error)")
}
print("plain-nio-echo listening on 127.0.0.1:\(channel.localAddress?.port ?? 0) with \(threads) event loop thread(s)")
fflush(nil)  // the driver reads this line through a pipe

var signal: Int32 = 0
sigwait(&stopSignals, &signal)
try? channel.close().wait()
try? group.syncShutdownGracefully()
exit(0)
