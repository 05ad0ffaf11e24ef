import AsyncToolsTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Debian's `systemd-socket-activate` (package `systemd`), which the socket-activation tests run the
/// server under; `nil` when it is not installed. CI installs it (.ci/run), and there a missing tool
/// fails the tests instead of skipping them.
enum SystemdTools {
  static let socketActivate: String? =
    ["/usr/bin/systemd-socket-activate", "/bin/systemd-socket-activate", "/usr/local/bin/systemd-socket-activate"]
    .first { access($0, X_OK) == 0 }

  /// Whether the tests that need `systemd-socket-activate` run: when it is installed, and always in
  /// CI (`CI` set), where its absence must fail them.
  static var canActivate: Bool { socketActivate != nil || getenv("CI") != nil }
}

/// A port on 127.0.0.1 that was free a moment ago (for tools that cannot bind port 0 themselves).
func freeLoopbackPort() -> Int? {
  let fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { return nil }
  defer { close(fd) }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  var length = socklen_t(MemoryLayout<sockaddr_in>.size)
  let ok = withUnsafeMutablePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
  }
  return ok ? Int(UInt16(bigEndian: address.sin_port)) : nil
}

/// Connects to 127.0.0.1:`port`, sends `line` and a newline, and returns everything received until
/// the server closes the connection (blocking, at most `seconds` per read: call it from `onThread`).
func lineRoundTrip(port: Int, line: String, seconds: Int = 20) -> String? {
  let fd = connectLoopback(port: port)
  guard fd >= 0 else { return nil }
  defer { close(fd) }
  var timeout = timeval(tv_sec: seconds, tv_usec: 0)
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
  let bytes = Array((line + "\n").utf8)
  guard write(fd, bytes, bytes.count) == bytes.count else { return nil }
  var received: [UInt8] = []
  var buffer = [UInt8](repeating: 0, count: 1024)
  while true {
    let count = read(fd, &buffer, buffer.count)
    if count <= 0 { break }
    received += buffer[0..<count]
  }
  return String(decoding: received, as: UTF8.self)
}

/// A Unix datagram socket standing in for systemd's notify socket: bound to a fresh abstract name
/// (`@…`, what ``path`` returns for `NOTIFY_SOCKET`) or to a file path; a thread records each
/// datagram it receives into ``received`` until ``close()``.
final class NotifySocketStandIn: Sendable {
  let path: String
  let received = Probe()
  private let fd: CInt
  private let file: String?

  init(abstract: Bool) throws {
    let name = "asynctools-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let path = abstract ? "@\(name)" : "/tmp/\(name).sock"
    let fd = socket(AF_UNIX, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw LaunchedProcess.LaunchError(message: "socket failed: errno \(errno)") }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    var bytes = Array(path.utf8)
    if abstract { bytes[0] = 0 }
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + (abstract ? 0 : 1))
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    guard bound == 0 else {
      Glibc.close(fd)
      throw LaunchedProcess.LaunchError(message: "cannot bind the notify stand-in \(path): errno \(errno)")
    }
    // A bounded receive, so the reading thread notices `close()` within 100 ms.
    var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    self.path = path
    self.fd = fd
    self.file = abstract ? nil : path
    let received = self.received
    startThread { [closed = self.closed] in
      var buffer = [UInt8](repeating: 0, count: 4096)
      while !closed.withLock({ $0 }) {
        let count = recv(fd, &buffer, buffer.count, 0)
        if count > 0 { received.record(String(decoding: buffer[0..<count], as: UTF8.self)) }
      }
      Glibc.close(fd)
    }
  }

  private let closed = PThreadLocked(false)

  /// The datagrams received so far, watchdog pings left out.
  var messages: [String] { received.events.filter { $0 != "WATCHDOG=1" } }

  /// Stops the reading thread, which then closes the socket; removes a file socket.
  func close() {
    closed.withLock { $0 = true }
    if let file { unlink(file) }
  }
}
