import AsyncTools
import AsyncToolsServer
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix

/// Hummingbird's HTTP/1.1 channel served on the connections one worker accepts from the server's
/// shared listening socket, drained on stop by AsyncToolsServer's `ConnectionDrain`.
///
/// Hummingbird's `Application` binds its own socket; a prefork worker must serve the one socket the
/// main process bound (or systemd passed). So each worker accepts through
/// `WorkerContext.serveConnections(drain:_:)` and hands every connection to Hummingbird's
/// `HTTP1Channel` (the pipeline and request loop `Application` uses) on its own one-thread event
/// loop. Per request, the path is Hummingbird and NIO, plus two counter updates for the drain.
///
/// On stop the library drains: accepting stops, idle keep-alive connections close at once, a
/// request in flight gets its response first, and after the server's `gracefulShutdownTimeout`
/// the connections still open are closed.
struct SharedSocketHTTP: Sendable {
  /// The built router: what answers each request.
  let router: RouterResponder<BasicRequestContext>
  let idleTimeout: TimeAmount
  let logger: Logger

  /// The worker body.
  func serve(_ context: WorkerContext) async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let (router, logger, configuration) = (router, logger, HTTP1Channel.Configuration(idleTimeout: idleTimeout))
    let signal = try await context.serveConnections { socket, connection in
      // One HTTP1Channel per connection, so its responder can tell the drain when a request is
      // in flight.
      let http = HTTP1Channel(responder: Self.responder(router, logger: logger, connection: connection), configuration: configuration)
      Task {
        do {
          let value = try await ClientBootstrap(group: group).channelOption(.socketOption(.tcp_nodelay), value: 1)
            .withConnectedSocket(socket) { http.setup(channel: $0, logger: logger) }
          connection.setCloseHandler { value.channel.close(promise: nil) }
          await http.handle(value: value, logger: logger)
        } catch {
          logger.debug("could not set up a connection: \(error)")
        }
        connection.closed()
      }
    }
    logger.info("worker \(context.processIndex) stopped by \(signal), its connections drained")
    try await group.shutdownGracefully()
  }

  /// What `Application.run()` does per request — a request context, the router, a 500 for an error
  /// the router did not turn into a response — between the drain's request marks.
  static func responder(
    _ router: RouterResponder<BasicRequestContext>, logger: Logger, connection: ConnectionDrain.Connection
  ) -> HTTPChannelHandler.Responder {
    { request, writer, channel in
      connection.requestStarted()
      defer { connection.requestFinished() }
      let context = BasicRequestContext(source: .init(channel: channel, logger: logger))
      let response: Response
      do {
        response = try await router.respond(to: request, context: context)
      } catch {
        response = Response(status: .internalServerError)
      }
      try await writer.write(response: response.head, body: response.body)
    }
  }
}
