extension ServerConfiguration {
  /// How the workers share the connections queued on the one listening socket.
  ///
  /// Every worker accepts from the same socket, so the kernel keeps a single accept queue: a
  /// connection waiting in it is never lost when a worker exits or restarts — another worker
  /// accepts it. Which worker takes a connection is what this decides.
  public enum AcceptBalancing: Sendable, Hashable, CustomStringConvertible {
    /// Each worker takes a queued connection only while no other accepting worker has fewer open
    /// connections (default). The workers publish their counts in a small table shared by the main
    /// process (an anonymous shared-memory file passed to each worker); a worker carrying more
    /// than a peer leaves the connection queued for it, and takes it after all if it is still
    /// queued 10 ms later (a peer that is stopped or starved does not hold connections up for
    /// longer). On loopback with 32 connections to 2 workers the counts end 16/16 or 17/15.
    ///
    /// A connection counts from its `accept` until ``ConnectionDrain/Connection/closed()``
    /// (``WorkerContext/serveConnections(drain:_:)``) or ``AcceptedConnections/connectionClosed()``
    /// (code that iterates ``AcceptedConnections`` itself) reports its end.
    case leastConnections
    /// Whichever worker the kernel wakes first accepts everything queued (the behaviour before
    /// balancing): on a machine with few cores one worker often takes nearly every connection of
    /// a burst (31 of 32 measured), and the others idle.
    case kernel

    public var description: String {
      switch self {
      case .leastConnections: "least connections"
      case .kernel: "kernel"
      }
    }
  }
}
