import AsyncTools
import AsyncToolsServer
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix

/// Hummingbird's HTTP/1.1 channel served on the connections one worker accepts from the server's
/// shared listening socket, with the drain on stop.
///
/// Hummingbird's `Application` binds its own socket; a prefork worker must serve the one socket the
/// main process bound (or systemd passed). So each worker accepts through
/// `WorkerContext.acceptedConnections()` and hands every connection to Hummingbird's
/// `HTTP1Channel` (the same pipeline and request loop `Application` uses) on its own one-thread
/// event loop. Per request, the path is Hummingbird and NIO only.
///
/// On stop: accepting stops (the kernel's queue stays with the other workers, or with the fresh
/// worker of a rolling restart), every open connection is asked to finish — idle keep-alive
/// connections close at once, a request in flight gets its response first — and connections still
/// open after `drainTimeout` are closed.
struct SharedSocketHTTP: Sendable {
  /// The built router: what answers each request.
  let router: RouterResponder<BasicRequestContext>
  let drainTimeout: Duration
  let idleTimeout: TimeAmount
  let logger: Logger

  /// The worker body.
  func serve(_ context: WorkerContext) async throws {
    guard let connections = context.acceptedConnections() else {
      throw ServerError(code: .bindFailed, message: "the HTTP worker needs a listening socket")
    }
    let logger = self.logger
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let http = HTTP1Channel(responder: Self.responder(router, logger: logger), configuration: .init(idleTimeout: idleTimeout))
    let bootstrap = ClientBootstrap(group: group).channelOption(.socketOption(.tcp_nodelay), value: 1)
    let open = OpenChannels()

    let stopper = Task {
      let signal = await context.stopSignal()
      logger.info("worker \(context.processIndex) stopping on \(signal): draining \(open.count) connection(s)")
      connections.stopAccepting()
    }
    await withDiscardingTaskGroup { tasks in
      for await socket in connections {
        do {
          let value = try await bootstrap.withConnectedSocket(socket) { http.setup(channel: $0, logger: logger) }
          open.insert(value.channel)
          tasks.addTask {
            await http.handle(value: value, logger: logger)
            open.remove(value.channel)
          }
        } catch {
          logger.debug("could not set up a connection: \(error)")
        }
      }
      // Accepting has ended (stopped): every connection accepted so far is in `open`.
      open.quiesce()
      if (try? await moveOnAfter(drainTimeout) { try await open.drained() }) == nil {
        logger.notice("worker \(context.processIndex): closing \(open.count) connection(s) still open after \(drainTimeout)")
        open.closeAll()
      }
    }
    await stopper.value
    try await group.shutdownGracefully()
  }

  /// What `Application.run()` does per request: a request context, the router, a 500 for an error
  /// the router did not turn into a response.
  static func responder(_ router: RouterResponder<BasicRequestContext>, logger: Logger) -> HTTPChannelHandler.Responder {
    { request, writer, channel in
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
