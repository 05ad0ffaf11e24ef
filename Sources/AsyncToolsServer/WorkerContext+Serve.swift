import UnixSignals

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension WorkerContext {
  /// Serves this worker's share of the listening socket until the server stops the worker, then
  /// drains: the recommended body of a worker that serves connections.
  ///
  /// 1. Accepts connections (``acceptedConnections()``) and hands each to `serve` with its
  ///    ``ConnectionDrain/Connection`` in `drain`. `serve` runs on the accepting task: hand the
  ///    socket over (to SwiftNIO, a thread) and return.
  /// 2. Marks the worker ready (``stopSignal()``) and waits for the stop.
  /// 3. Stops accepting. On a server stop the socket has already stopped listening in every
  ///    process (new connections are refused); in a rolling restart the other workers keep
  ///    accepting from the shared queue.
  /// 4. Drains (``ConnectionDrain/drain()``): idle connections close at once, busy ones once
  ///    their request is answered; when the server cancels the worker (after
  ///    ``ServerConfiguration/gracefulShutdownTimeout``) the rest are closed.
  /// 5. Returns the stop signal: tear down what `serve` used (an event loop group) after it.
  ///
  /// - Throws: ``ServerError`` `.notListening` without a listening socket.
  @discardableResult
  public func serveConnections(
    drain: ConnectionDrain = ConnectionDrain(),
    _ serve: @escaping @Sendable (_ socket: CInt, _ connection: ConnectionDrain.Connection) -> Void
  ) async throws -> UnixSignal {
    let connections = try acceptedConnections()
    let acceptor = Task {
      // The drain learns of each close; the accept balancing counts it.
      for await socket in connections { serve(socket, drain.open { connections.connectionClosed() }) }
    }
    let signal = await stopSignal()
    connections.stopAccepting()
    await acceptor.value  // every connection accepted so far is now registered with the drain
    await drain.drain()
    return signal
  }
}
