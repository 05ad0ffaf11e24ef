import CAsyncToolsShims
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The connections a worker accepts from the shared listening socket: an `AsyncSequence` of
/// connected, non-blocking socket descriptors, each owned by the consumer (hand it to SwiftNIO's
/// `ClientBootstrap.withConnectedSocket(_:)`, or close it).
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
/// the iteration ends), or when the iteration ends (the consuming task is cancelled, or the iterator
/// is dropped: connections accepted but not yet consumed are then closed unserved). Iterate it once.
public final class AcceptedConnections: AsyncSequence, Sendable {
  public typealias Element = CInt
  public typealias Failure = Never

  private let listeningSocket: CInt
  /// The pipe that wakes the accepting thread (-1 before iteration starts). Both ends stay open
  /// until `deinit` (the thread holds `self` while it runs), so a late `stopAccepting()` never
  /// writes to a closed or reused descriptor, nor to a pipe without reader. Atomics, not a lock:
  /// nothing else is shared.
  private let wakeRead = Atomic<CInt>(-1)
  private let wakeWrite = Atomic<CInt>(-1)
  private let stopRequested = Atomic<Bool>(false)

  /// Accepts from `listeningSocket` (for example ``WorkerContext/listeningSocket``), which it owns.
  public init(listeningSocket: CInt) {
    self.listeningSocket = listeningSocket
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
    let (listenFD, wakeRead, wakeWrite) = (listeningSocket, pipeFDs[0], pipeFDs[1])
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
    _ = fcntl(listenFD, F_SETFL, fcntl(listenFD, F_GETFL) | O_NONBLOCK)
    let started = Self.startAcceptThread {
      var fds = [
        pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
      ]
      accepting: while true {
        let ready = poll(&fds, 2, -1)
        if ready < 0 {
          if errno == EINTR { continue }
          break
        }
        if fds[1].revents != 0 { break }
        if fds[0].revents & Int16(POLLNVAL) != 0 { break }
        while true {
          // (accept4 is not visible to Swift through Glibc: two fcntls instead.)
          let connection = accept(listenFD, nil, nil)
          if connection >= 0 {
            _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
            _ = fcntl(connection, F_SETFL, fcntl(connection, F_GETFL) | O_NONBLOCK)
            if case .terminated = continuation.yield(connection) {
              close(connection)
              break accepting
            }
            continue
          }
          // EAGAIN: another worker took it (or the queue is empty); anything else (EMFILE, a
          // connection reset before it was accepted, …) must not end the worker: poll again.
          break
        }
      }
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

extension WorkerContext {
  /// The connections accepted from ``listeningSocket`` by this worker (see
  /// ``AcceptedConnections``), or `nil` without a listening socket. Call it once: the sequence
  /// takes ownership of the socket.
  public func acceptedConnections() -> AcceptedConnections? {
    listeningSocket.map { AcceptedConnections(listeningSocket: $0) }
  }
}
