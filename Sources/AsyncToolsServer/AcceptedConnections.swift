import CAsyncToolsShims
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The connections a worker accepts from the shared listening socket: an `AsyncSequence` of
/// connected, non-blocking socket descriptors, each owned by the consumer (hand it to SwiftNIO's
/// `ClientBootstrap.withConnectedSocket(_:)`, or close it). Most workers use it through
/// ``WorkerContext/serveConnections(drain:_:)``, which also drains the connections on stop.
///
/// Why not adopt the shared socket with `ServerBootstrap.withBoundSocket(_:)` in every worker:
/// every worker's event loop is woken for each new connection, one wins the `accept`, and the
/// others find nothing — which SwiftNIO's debug builds treat as impossible (`assert(readResult ==
/// .some)` in `BaseSocketChannel.readable0`) and crash on. Here a dedicated thread per worker
/// `poll`s the socket and accepts; the losers of that race simply poll again. Only accepting goes
/// through this sequence: the connection itself is plain NIO, so the per-request path has no
/// AsyncTools code in it.
///
/// The sequence takes ownership of the listening descriptor and closes it when accepting ends:
/// after ``stopAccepting()`` (graceful: the connections accepted so far are still delivered, then
/// the iteration ends); when the socket stops listening (the server's stop shuts it down in every
/// process); or when the iteration ends (the consuming task is cancelled, or the iterator is
/// dropped: connections accepted but not yet consumed are then closed unserved). Iterate it once.
///
/// When `accept` fails for lack of resources (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`: the
/// connection stays in the kernel's queue), the thread backs off — 10 ms, doubling up to 500 ms,
/// back to none after the next success — instead of spinning on a socket that stays readable, and
/// logs one warning per minute at most (SwiftNIO's `AcceptBackoffHandler` does the same).
///
/// Obtained from ``WorkerContext/acceptedConnections()``, it balances the connections across the
/// server's workers as ``ServerConfiguration/acceptBalancing`` says: with
/// ``ServerConfiguration/AcceptBalancing/leastConnections`` it leaves a queued connection to a
/// worker with fewer open connections. Report each connection's end with ``connectionClosed()``
/// (``WorkerContext/serveConnections(drain:_:)`` does it for you); otherwise the worker counts
/// every connection it ever accepted as open.
public final class AcceptedConnections: AsyncSequence, Sendable {
  public typealias Element = CInt
  public typealias Failure = Never

  private let listeningSocket: CInt
  private let logger: Logger
  /// This worker's entry on the server's accept board; `nil`: accept without balancing.
  private let balance: AcceptBalance?
  /// The pipe that wakes the accepting thread (-1 before iteration starts). Both ends stay open
  /// until `deinit` (the thread holds `self` while it runs), so a late `stopAccepting()` never
  /// writes to a closed or reused descriptor, nor to a pipe without reader. Atomics, not a lock:
  /// nothing else is shared.
  private let wakeRead = Atomic<CInt>(-1)
  private let wakeWrite = Atomic<CInt>(-1)
  private let stopRequested = Atomic<Bool>(false)

  /// Accepts from `listeningSocket` (for example ``WorkerContext/listeningSocket``), which it
  /// owns from then on; `logger` receives the warning about exhausted descriptors.
  ///
  /// - Throws: ``ServerError`` `.notListening` when `listeningSocket` is not a listening socket
  ///   (the descriptor then stays the caller's).
  public convenience init(
    listeningSocket: CInt, logger: Logger = Logger(label: "AsyncToolsServer")
  ) throws(ServerError) {
    try self.init(listeningSocket: listeningSocket, logger: logger, balance: nil)
  }

  /// Accepts from `listeningSocket`, balancing through `balance` when it is not `nil`.
  init(listeningSocket: CInt, logger: Logger, balance: AcceptBalance?) throws(ServerError) {
    var listening: CInt = 0
    var length = socklen_t(MemoryLayout<CInt>.size)
    guard getsockopt(listeningSocket, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0, listening != 0 else {
      let reason = listening == 0 && errno == 0 ? "not listening" : String(cString: strerror(errno))
      throw ServerError(
        code: .notListening, message: "descriptor \(listeningSocket) is not a listening socket (\(reason))")
    }
    self.listeningSocket = listeningSocket
    self.logger = logger
    self.balance = balance
  }

  /// Reports that a connection this sequence delivered has closed, so the worker's count of open
  /// connections — what ``ServerConfiguration/AcceptBalancing/leastConnections`` balances — stays
  /// true. Call it once per connection, from any thread;
  /// ``WorkerContext/serveConnections(drain:_:)`` calls it when the drain learns of the close.
  public func connectionClosed() {
    balance?.closed()
  }

  /// Stops accepting: the connections accepted so far are delivered, then the iteration ends and
  /// the listening descriptor is closed. Connections still in the kernel's queue stay there for
  /// the other workers. Safe to call from any thread, any number of times.
  public func stopAccepting() {
    stopRequested.store(true, ordering: .sequentiallyConsistent)
    let fd = wakeWrite.load(ordering: .sequentiallyConsistent)
    var byte: UInt8 = 0
    if fd >= 0 { _ = write(fd, &byte, 1) }
  }

  deinit {
    let (read, write) = (wakeRead.load(ordering: .acquiring), wakeWrite.load(ordering: .acquiring))
    if read >= 0 { close(read) }
    if write >= 0 { close(write) }
  }

  public func makeAsyncIterator() -> AsyncStream<CInt>.Iterator {
    let (stream, continuation) = AsyncStream.makeStream(of: CInt.self)
    var pipeFDs: [CInt] = [-1, -1]
    guard pipe(&pipeFDs) == 0 else {
      close(listeningSocket)
      continuation.finish()
      return stream.makeAsyncIterator()
    }
    let (wakeRead, wakeWrite) = (pipeFDs[0], pipeFDs[1])
    _ = fcntl(wakeRead, F_SETFD, FD_CLOEXEC)
    _ = fcntl(wakeWrite, F_SETFD, FD_CLOEXEC)
    _ = fcntl(wakeWrite, F_SETFL, O_NONBLOCK)  // a full pipe already wakes the thread
    self.wakeRead.store(wakeRead, ordering: .sequentiallyConsistent)
    self.wakeWrite.store(wakeWrite, ordering: .sequentiallyConsistent)
    if stopRequested.load(ordering: .sequentiallyConsistent) { stopAccepting() }
    // Ending the iteration wakes the thread, which then closes every descriptor it owns.
    continuation.onTermination = { [self] _ in stopAccepting() }
    // Non-blocking on the shared open file description (so in every worker): a worker that loses
    // the race for a connection gets EAGAIN instead of blocking in accept.
    let listenFD = listeningSocket
    _ = fcntl(listenFD, F_SETFL, fcntl(listenFD, F_GETFL) | O_NONBLOCK)
    let (logger, balance) = (self.logger, self.balance)
    let started = Self.startAcceptThread {
      var loop = AcceptLoop(
        listenFD: listenFD, wakeFD: wakeRead, logger: logger, balance: balance, continuation: continuation)
      balance?.setAccepting(true)
      loop.run()
      balance?.setAccepting(false)  // draining now: not a peer to leave connections to
      continuation.finish()
      close(listenFD)
      withExtendedLifetime(self) {}  // the pipe closes in deinit, after this thread
    }
    if !started {
      continuation.onTermination = nil
      continuation.finish()
      close(listenFD)
    }
    return stream.makeAsyncIterator()
  }

  private final class Body: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
  }

  private static func startAcceptThread(_ body: @escaping @Sendable () -> Void) -> Bool {
    let context = Unmanaged.passRetained(Body(body)).toOpaque()
    #if canImport(Glibc)
    var thread = pthread_t()
    #else
    var thread: pthread_t?
    #endif
    let status = pthread_create(&thread, nil, { pointer in
      let body = Unmanaged<Body>.fromOpaque(pointer!).takeRetainedValue()
      _ = asynctools_set_thread_name("server-accept")  // what `top -H` and debuggers show
      body.run()
      return nil
    }, context)
    guard status == 0 else {
      Unmanaged<Body>.fromOpaque(context).release()
      return false
    }
    #if canImport(Glibc)
    pthread_detach(thread)
    #else
    if let thread { pthread_detach(thread) }
    #endif
    return true
  }
}

/// The accepting thread's loop: poll the listening socket and the wake pipe, accept what is
/// queued (leaving it to a less loaded peer while balancing), back off while descriptors are
/// exhausted. Runs on its own thread only.
struct AcceptLoop: Sendable {
  let listenFD: CInt
  let wakeFD: CInt
  let logger: Logger
  let balance: AcceptBalance?
  let continuation: AsyncStream<CInt>.Continuation
  /// The current back-off after a resource error, or `nil` while accepting normally.
  private var backoff: Duration?
  /// Since when a queued connection has been left to a peer with fewer open connections, or `nil`.
  private var deferredSince: ContinuousClock.Instant?
  private var lastWarning: ContinuousClock.Instant?
  private var suppressedWarnings = 0

  static let firstBackoff = Duration.milliseconds(10)
  static let maxBackoff = Duration.milliseconds(500)
  static let warningInterval = Duration.seconds(60)
  /// While a connection is left to a peer: how often to look whether the peer took it, and how
  /// long at most to leave it (a stopped or starved peer must not hold connections up).
  static let deferralCheck = Duration.milliseconds(1)
  static let maxDeferral = Duration.milliseconds(10)

  init(
    listenFD: CInt, wakeFD: CInt, logger: Logger, balance: AcceptBalance?,
    continuation: AsyncStream<CInt>.Continuation
  ) {
    self.listenFD = listenFD
    self.wakeFD = wakeFD
    self.logger = logger
    self.balance = balance
    self.continuation = continuation
  }

  private enum Step { case poll, stop }

  /// Returns when accepting ends: stopped, the socket no longer listens, or nobody consumes.
  mutating func run() {
    var fds = [
      pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0), pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0),
    ]
    while true {
      // While backing off or leaving a connection to a peer, only the wake pipe is watched: the
      // socket stays readable meanwhile.
      let pause = backoff ?? (deferredSince == nil ? nil : Self.deferralCheck)
      let timeout = pause.map { CInt($0 / .milliseconds(1)) } ?? -1
      fds[1].revents = 0
      let ready = poll(&fds, pause == nil ? 2 : 1, timeout)
      if ready < 0 {
        if errno == EINTR { continue }
        return
      }
      if fds[0].revents != 0 { return }
      if fds[1].revents & Int16(POLLNVAL) != 0 { return }
      if case .stop = acceptQueued() { return }
    }
  }

  /// Whether to leave the next queued connection to a peer with fewer open connections: yes while
  /// one exists and the connection is still queued, for at most ``maxDeferral``.
  private mutating func shouldDefer() -> Bool {
    guard let balance, balance.shouldDefer else {
      deferredSince = nil
      return false
    }
    var socket = pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)
    guard poll(&socket, 1, 0) == 1, socket.revents == Int16(POLLIN) else {
      // Nothing queued any more (a peer took it: `accept` finds the queue empty and the loop waits
      // on the socket again), or the socket failed (`accept` reports why).
      deferredSince = nil
      return false
    }
    let now = ContinuousClock.now
    guard let since = deferredSince else {
      deferredSince = now
      return true
    }
    return since.duration(to: now) < Self.maxDeferral
  }

  /// Accepts until the queue is empty (or another worker took the rest).
  private mutating func acceptQueued() -> Step {
    while true {
      if shouldDefer() { return .poll }
      // (accept4 is not visible to Swift through Glibc: two fcntls instead.)
      let connection = accept(listenFD, nil, nil)
      if connection >= 0 {
        backoff = nil
        deferredSince = nil
        _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
        _ = fcntl(connection, F_SETFL, fcntl(connection, F_GETFL) | O_NONBLOCK)
        balance?.opened()  // before the consumer can see it close
        if case .terminated = continuation.yield(connection) {
          balance?.closed()
          close(connection)
          return .stop
        }
        continue
      }
      let code = errno
      switch code {
      case EINTR:
        continue
      case EAGAIN, EWOULDBLOCK, ECONNABORTED, EPROTO, EPERM:
        // The queue is empty, another worker took it, or a connection was reset before it was
        // accepted: poll again.
        deferredSince = nil
        return .poll
      case EMFILE, ENFILE, ENOBUFS, ENOMEM:
        backOff(code)
        return .poll
      default:
        // EINVAL: the socket no longer listens (the server is stopping); EBADF, ENOTSOCK: it is gone.
        return .stop
      }
    }
  }

  private mutating func backOff(_ code: CInt) {
    backoff = backoff.map { min($0 * 2, Self.maxBackoff) } ?? Self.firstBackoff
    let now = ContinuousClock.now
    if let lastWarning, lastWarning.duration(to: now) < Self.warningInterval {
      suppressedWarnings += 1
      return
    }
    let suppressed = suppressedWarnings > 0 ? " (\(suppressedWarnings) more since the last warning)" : ""
    logger.warning(
      """
      cannot accept connections: \(String(cString: strerror(code)))\(suppressed); backing off up to \
      \(Self.maxBackoff) between attempts until resources free up (next warning in a minute at the earliest)
      """)
    lastWarning = now
    suppressedWarnings = 0
  }
}

extension WorkerContext {
  /// The connections accepted from ``listeningSocket`` by this worker (see
  /// ``AcceptedConnections``). Call it once: the sequence takes ownership of the socket.
  ///
  /// - Throws: ``ServerError`` `.notListening` when the server has no listening socket
  ///   (``ServerConfiguration/listen`` is `nil`) or the descriptor is not one.
  public func acceptedConnections() throws(ServerError) -> AcceptedConnections {
    guard let listeningSocket else {
      throw ServerError(
        code: .notListening, message: "this server has no listening socket: set ServerConfiguration.listen")
    }
    return try AcceptedConnections(listeningSocket: listeningSocket, logger: logger, balance: balance)
  }
}
