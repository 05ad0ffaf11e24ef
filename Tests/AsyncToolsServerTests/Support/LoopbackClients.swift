import AsyncToolsTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Opens a TCP connection to 127.0.0.1:`port` (blocking; a 5 s receive timeout); returns the
/// descriptor, or the negated `errno` of a failed `connect` (`-ECONNREFUSED`).
func connectLoopback(port: Int) -> CInt {
  let fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { return -errno }
  var timeout = timeval(tv_sec: 5, tv_usec: 0)
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  address.sin_port = UInt16(port).bigEndian
  let connected = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
  }
  guard connected == 0 else {
    let code = errno
    close(fd)
    return -code
  }
  return fd
}

/// A listening socket on 127.0.0.1 (any free port) and its port.
func listenOnLoopback() -> (CInt, Int)? {
  let fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { return nil }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  var length = socklen_t(MemoryLayout<sockaddr_in>.size)
  let ok = withUnsafeMutablePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
      bind(fd, $0, length) == 0 && listen(fd, 64) == 0 && getsockname(fd, $0, &length) == 0
    }
  }
  guard ok else {
    close(fd)
    return nil
  }
  return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

/// What an idle client sees next: `"eof"` when the server closed the connection, `"reset"`,
/// `"timeout"` after the 5 s receive timeout, or the bytes received.
func nextRead(_ fd: CInt) -> String {
  var buffer = [UInt8](repeating: 0, count: 256)
  while true {
    let count = read(fd, &buffer, buffer.count)
    if count == 0 { return "eof" }
    if count > 0 { return String(decoding: buffer[0..<count], as: UTF8.self) }
    if errno == EINTR { continue }
    return errno == ECONNRESET ? "reset" : errno == EAGAIN ? "timeout" : "errno \(errno)"
  }
}

/// Sends `message` on `fd`; whether all of it was written.
func send(_ message: String, on fd: CInt) -> Bool {
  let bytes = Array(message.utf8)
  return write(fd, bytes, bytes.count) == bytes.count
}

/// The open descriptors of `pid` (from /proc), or -1 when it cannot be read.
func openDescriptorCount(_ pid: pid_t) -> Int {
  guard let directory = opendir("/proc/\(pid)/fd") else { return -1 }
  defer { closedir(directory) }
  var count = 0
  while readdir(directory) != nil { count += 1 }
  return count - 2  // "." and ".."
}

/// The CPU time (user + system) `pid` has used so far, in clock ticks.
func cpuTicks(_ pid: pid_t) -> Int? {
  guard let stat = readFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
  let fields = stat[stat.index(after: close)...].split(separator: " ")
  // After "(comm)": state is field 0, utime field 11, stime field 12.
  guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
  return user + system
}

/// Client descriptors closed exactly once (tests run in parallel in one process: closing a number
/// twice could close another test's socket).
final class ClientSockets: Sendable {
  private let fds: PThreadLocked<[CInt]>
  init(_ fds: [CInt]) { self.fds = PThreadLocked(fds.filter { $0 >= 0 }) }
  func closeAll() {
    let fds = self.fds.withLock { fds in
      defer { fds = [] }
      return fds
    }
    for fd in fds { close(fd) }
  }
}
