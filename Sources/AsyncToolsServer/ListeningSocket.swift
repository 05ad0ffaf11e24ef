import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one listening socket the main process binds before any worker starts and shares with all
/// of them.
///
/// Why one inherited socket rather than one `SO_REUSEPORT` socket per worker (aiotools' way): the
/// kernel keeps a single accept queue for a shared socket, so when a worker leaves (a rolling
/// restart, a crash) the connections waiting in the backlog are taken by the other workers. With
/// `SO_REUSEPORT` each worker owns its queue, and connections hashed to a closing worker's queue
/// are reset. It also makes a port already in use a clear error in the main process before any
/// worker starts, instead of N workers failing one by one, and no other program can join the
/// port group by accident (Kitura/BlueSocket #94).
final class ListeningSocket: Sendable {
  let fd: CInt
  let port: Int

  /// Binds and listens; the descriptor is close-on-exec (workers receive it explicitly).
  init(_ address: ServerConfiguration.ListenAddress) throws(ServerError) {
    var hints = addrinfo()
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
    hints.ai_family = AF_UNSPEC
    #if canImport(Glibc)
    hints.ai_socktype = CInt(SOCK_STREAM.rawValue)
    #else
    hints.ai_socktype = SOCK_STREAM
    #endif
    var list: UnsafeMutablePointer<addrinfo>?
    let status = getaddrinfo(address.host, String(address.port), &hints, &list)
    guard status == 0, let first = list else {
      let reason = String(cString: gai_strerror(status))
      throw ServerError(code: .bindFailed, message: "cannot listen on \(address): \(reason)")
    }
    defer { freeaddrinfo(list) }

    let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, 0)
    guard fd >= 0 else { throw Self.error(address, errno) }
    var one: CInt = 1
    // Lets a restarted server bind while connections of the previous one sit in TIME_WAIT; it does
    // not let two live listeners share the port (that is SO_REUSEPORT).
    _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    if bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0
      || listen(fd, CInt(clamping: address.backlog)) != 0
    {
      let code = errno
      close(fd)
      throw Self.error(address, code)
    }
    self.fd = fd
    self.port = Self.localPort(fd) ?? address.port
    self.adopted = false  // prod
    self.sharedWithPreviousMain = Atomic(false)
  }

  /// Adopts a socket that is already listening (socket activation); it becomes close-on-exec.
  /// `port` is 0 when the socket is not TCP. (prod: SystemdSocketActivation.swift)
  init(adopting fd: CInt) {
    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    self.fd = fd
    self.port = Self.localPort(fd) ?? 0
    self.adopted = true
    self.sharedWithPreviousMain = Atomic(false)
  }

  /// Takes the socket the previous main process passed in a binary upgrade (MainProcessUpgrade.swift):
  /// `adopted` as it was there. It stays the previous main process's too until ``takeOver()``.
  init(upgradeInherited fd: CInt, adopted: Bool) {
    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    self.fd = fd
    self.port = Self.localPort(fd) ?? 0
    self.adopted = adopted
    self.sharedWithPreviousMain = Atomic(true)
  }

  /// Whether the previous main process of a binary upgrade still serves on this socket: until this
  /// process takes over, stopping must not stop the socket under it (a new main process that fails
  /// must leave the old one serving).
  private let sharedWithPreviousMain: Atomic<Bool>

  /// This process took over from the previous main process: stopping stops the socket again.
  func takeOver() { sharedWithPreviousMain.store(false, ordering: .releasing) }

  /// Whether the socket was passed in (systemd, an inherited descriptor) rather than bound here.
  /// Such a socket is shared with whoever passed it — systemd keeps listening on it to start the
  /// next instance of the service — so the server only closes its descriptors, and must never
  /// `shutdown(2)` it: that would stop the socket for systemd too. (prod)
  let adopted: Bool

  deinit { close(fd) }

  /// Stops listening, in every process at once: `shutdown` acts on the socket, which the workers'
  /// descriptors (inherited or `dup`ed) share with this one. The kernel then refuses new
  /// connections (`ECONNREFUSED`) and resets the ones still queued, where a socket merely left
  /// open in the main process would let them hang in the backlog; each worker's accept loop sees
  /// the socket is no longer listening and ends. Idempotent.
  ///
  /// Not on an ``adopted`` socket: systemd keeps it to start the next instance of the service, so
  /// connections arriving during the stop wait in its queue for that instance instead. (prod)
  func stopListening() {
    guard !adopted else { return }  // prod: socket activation
    // prod: a new main process that has not taken over stops only its own workers.
    guard !sharedWithPreviousMain.load(ordering: .acquiring) else { return }
    _ = shutdown(fd, CInt(SHUT_RDWR))
  }

  /// A close-on-exec duplicate, owned by the caller.
  func duplicate() -> CInt { fcntl(fd, F_DUPFD_CLOEXEC, 0) }

  private static func error(_ address: ServerConfiguration.ListenAddress, _ code: CInt) -> ServerError {
    let reason = String(cString: strerror(code))
    if code == EADDRINUSE {
      return ServerError(code: .addressInUse, message: "cannot listen on \(address): \(reason)")
    }
    return ServerError(code: .bindFailed, message: "cannot listen on \(address): \(reason)")
  }

  private static func localPort(_ fd: CInt) -> Int? {
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let ok = withUnsafeMutablePointer(to: &storage) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
    }
    guard ok else { return nil }
    switch CInt(storage.ss_family) {
    case AF_INET:
      return withUnsafePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
      }
    case AF_INET6:
      return withUnsafePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
      }
    default:
      return nil
    }
  }
}
