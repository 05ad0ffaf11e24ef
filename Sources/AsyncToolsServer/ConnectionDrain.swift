import AsyncTools
import Synchronization
/// A worker's open connections, tracked so that a stop can *drain* them: idle connections are
/// closed at once, a connection with a request in flight when that request has been answered.
///
/// ``WorkerContext/serveConnections(drain:_:)`` opens one ``Connection`` per accepted socket and
/// drains when the server stops the worker; the code serving a connection tells the drain three
/// things through its ``Connection``: how to close it (``Connection/setCloseHandler(_:)``), when a
/// request starts and ends (``Connection/requestStarted()``, ``Connection/requestFinished()``), and
/// when it has closed (``Connection/closed()``, whoever closed it):
///
/// ```swift
/// try await context.serveConnections { socket, connection in
///   let channel = ClientBootstrap(group: group)
///     .channelInitializer { $0.pipeline.addHandler(EchoHandler(connection)) }
///     .withConnectedSocket(socket)
///   channel.whenSuccess { channel in
///     connection.setCloseHandler { channel.close(promise: nil) }
///     channel.closeFuture.whenComplete { _ in connection.closed() }
///   }
///   channel.whenFailure { _ in connection.closed() }
/// }
/// ```
///
/// Why the server cannot simply close every connection on stop: a client mid-request would lose
/// its reply. Why it cannot wait for every connection to end: an idle client (a keep-alive
/// connection, an open `nc`) never ends it, and the stop would hang until the server kills the
/// worker. The drain is bounded by the server's timeouts: ``drain()`` returns early when its task
/// is cancelled — at ``ServerConfiguration/gracefulShutdownTimeout`` — after closing every
/// connection, busy or not.
public final class ConnectionDrain: Sendable {
  private struct Entry {
    /// Its requests in flight and whether one has started: shared with its ``Connection``.
    let requests: RequestCount
    var close: (@Sendable () -> Void)?
    var closeRequested = false
    /// Called once when the connection reports ``Connection/closed()``.
    var onClosed: (@Sendable () -> Void)?
  }

  private struct State {
    var entries: [UInt64: Entry] = [:]
    var nextID: UInt64 = 0
    var draining = false
    /// The grace of connections without a request has passed: close them too.
    var graceOver = false
    /// Cancelled drain: close busy connections too.
    var forced = false
    var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]

    /// Marks `id` for closing when the drain allows it now; returns the handler to call outside
    /// the lock.
    mutating func closeIfDue(_ id: UInt64) -> (@Sendable () -> Void)? {
      guard draining, var entry = entries[id], !entry.closeRequested, let close = entry.close,
        forced || (entry.requests.inFlight == 0 && (entry.requests.wasUsed || graceOver))
      else { return nil }
      entry.closeRequested = true
      entries[id] = entry
      return close
    }

    /// Every handler due now.
    mutating func closeAllDue() -> [@Sendable () -> Void] {
      entries.keys.compactMap { closeIfDue($0) }
    }
  }

  private let state = Locked(State())
  /// `State.draining`, readable without the lock: the per-request path takes the lock only while
  /// draining.
  private let drainingFlag = Atomic(false)
  /// How long a connection that has not started a request yet is kept open by a drain.
  public let firstRequestGrace: Duration

  /// Creates an empty drain.
  ///
  /// - Parameter firstRequestGrace: How long ``drain()`` keeps a connection open that has not
  ///   started a request yet (default 100 ms). A client that has just connected has usually sent
  ///   its first request already, and it may still be in the socket's buffer, not yet read: closing
  ///   at once would lose it. An idle client that sent nothing is closed when the grace ends.
  public init(firstRequestGrace: Duration = .milliseconds(100)) {
    self.firstRequestGrace = firstRequestGrace
  }

  /// How many connections are open (opened and not yet ``Connection/closed()``).
  public var openCount: Int { state.withLock { $0.entries.count } }

  /// Whether ``drain()`` has been called.
  public var isDraining: Bool { state.withLock { $0.draining } }

  /// Registers a new connection. One opened during a drain is closed as soon as it is idle and
  /// has its close handler.
  public func open() -> Connection {
    open(onClosed: nil)
  }

  /// Registers a new connection; `onClosed` runs once when it reports ``Connection/closed()``.
  func open(onClosed: (@Sendable () -> Void)?) -> Connection {
    let requests = RequestCount()
    let id = state.withLock { state in
      defer { state.nextID += 1 }
      state.entries[state.nextID] = Entry(requests: requests, onClosed: onClosed)
      return state.nextID
    }
    return Connection(drain: self, id: id, requests: requests)
  }

  /// Closes every idle connection now (one that has not started a request yet after
  /// ``firstRequestGrace``) and each busy one when its request has finished, and returns when all
  /// of them have reported ``Connection/closed()``.
  ///
  /// When the calling task is cancelled (the server's phase two, after
  /// ``ServerConfiguration/gracefulShutdownTimeout``), closes every connection still open, busy or
  /// not, and returns without waiting for them to report.
  public func drain() async {
    let due = state.withLock { state in
      state.draining = true
      // Before the busy counts are read (closeAllDue): a request that ends concurrently either is
      // seen ended here or sees the flag and closes its connection itself (both sequentially
      // consistent: one of the two sides sees the other's write).
      drainingFlag.store(true, ordering: .sequentiallyConsistent)
      return state.closeAllDue()
    }
    for close in due { close() }
    let unused = state.withLock { state in
      state.entries.values.contains { !$0.requests.wasUsed && !$0.closeRequested }
    }
    if unused {
      try? await Task.sleep(for: firstRequestGrace)
      let due = state.withLock { state in
        state.graceOver = true
        return state.closeAllDue()
      }
      for close in due { close() }
    }
    let id = state.withLock { state in
      defer { state.nextID += 1 }
      return state.nextID
    }
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let done = state.withLock { state in
          if state.entries.isEmpty || state.forced { return true }
          state.waiters[id] = continuation
          return false
        }
        if done { continuation.resume() }
      }
    } onCancel: {
      let (due, waiter) = state.withLock { state in
        state.forced = true
        return (state.closeAllDue(), state.waiters.removeValue(forKey: id))
      }
      for close in due { close() }
      waiter?.resume()
    }
  }

  /// Changes the entry of `id` in place (copying it out and back would retain and release its
  /// closures) and closes the connection if that made it due.
  private func update(_ id: UInt64, _ change: (inout Entry) -> Void) {
    let close = state.withLock { state -> (@Sendable () -> Void)? in
      guard let index = state.entries.index(forKey: id) else { return nil }
      change(&state.entries.values[index])
      return state.draining ? state.closeIfDue(id) : nil
    }
    close?()
  }

  /// A request of `id` has ended: while draining, close the connection if it is now due.
  fileprivate func requestEnded(_ id: UInt64) {
    guard drainingFlag.load(ordering: .sequentiallyConsistent) else { return }
    update(id) { _ in }
  }

  private func remove(_ id: UInt64) {
    let (onClosed, waiters) = state.withLock { state -> ((@Sendable () -> Void)?, [CheckedContinuation<Void, Never>]) in
      let onClosed = state.entries.removeValue(forKey: id)?.onClosed
      guard state.entries.isEmpty else { return (onClosed, []) }
      defer { state.waiters = [:] }
      return (onClosed, Array(state.waiters.values))
    }
    onClosed?()
    for waiter in waiters { waiter.resume() }
  }

  /// One connection of a ``ConnectionDrain``. Every method is safe to call from any thread (an
  /// event loop, a handler), in any order; calls after ``closed()`` do nothing.
  public struct Connection: Sendable {
    private let drain: ConnectionDrain
    private let id: UInt64
    private let requests: RequestCount

    fileprivate init(drain: ConnectionDrain, id: UInt64, requests: RequestCount) {
      self.drain = drain
      self.id = id
      self.requests = requests
    }

    /// How to close this connection (for example `channel.close(promise: nil)`). The drain calls
    /// it at most once, from whichever thread made the connection due — possibly this call, when
    /// the drain has already begun.
    public func setCloseHandler(_ close: @escaping @Sendable () -> Void) {
      drain.update(id) { $0.close = close }
    }

    /// A request has arrived: the connection is busy until the matching ``requestFinished()``.
    /// Requests may overlap (pipelining): the connection is idle when every one has finished.
    public func requestStarted() {
      // Lock-free: a connection with a request in flight is never due, so nothing to close.
      requests.started()
    }

    /// A request has been answered (its reply written). During a drain, the connection closes
    /// when no other request is in flight.
    public func requestFinished() {
      requests.finished()
      drain.requestEnded(id)
    }

    /// The connection has closed, whoever closed it: the drain stops tracking it.
    public func closed() {
      drain.remove(id)
    }
  }
}

/// One connection's requests in flight and whether one has started: atomics, so that a request's
/// start and end cost two atomic operations, not the drain's lock and a dictionary lookup.
final class RequestCount: Sendable {
  private let busy = Atomic(0)
  private let used = Atomic(false)

  var inFlight: Int { busy.load(ordering: .sequentiallyConsistent) }
  var wasUsed: Bool { used.load(ordering: .sequentiallyConsistent) }

  func started() {
    busy.wrappingAdd(1, ordering: .sequentiallyConsistent)
    used.store(true, ordering: .sequentiallyConsistent)
  }

  /// One fewer in flight, never below zero (an unmatched end is ignored).
  func finished() {
    var current = busy.load(ordering: .sequentiallyConsistent)
    while current > 0 {
      let (exchanged, original) = busy.compareExchange(
        expected: current, desired: current - 1, ordering: .sequentiallyConsistent)
      if exchanged { return }
      current = original
    }
  }
}
