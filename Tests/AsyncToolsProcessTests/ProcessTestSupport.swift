#if os(Linux)
import CAsyncToolsShims
import Glibc
import Testing

@testable import AsyncToolsProcess

/// Where the test helper program lands: next to the test bundle, in the same build folder
/// (`.build/<triple>/debug/` or `.build-tsan/<triple>/debug/`).
let testChildPath: String = {
  var buffer = [CChar](repeating: 0, count: 4096)
  let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
  precondition(length > 0, "cannot read /proc/self/exe")
  let executable = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
  let directory = executable[..<(executable.lastIndex(of: "/") ?? executable.startIndex)]
  return "\(directory)/AsyncToolsTestChild"
}()

struct WatchdogTimeout: Error, CustomStringConvertible {
  var seconds: Int
  var description: String { "the test did not finish within \(seconds) s (real time)" }
}

/// Runs `body` with a real-time bound: a hang fails the test instead of the whole run. Everything in
/// the body that waits (child exits, pipe reads) is cancellable, so the bound really ends it.
func withWatchdog<T: Sendable>(
  seconds: Int = 20,
  _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
  try await withThrowingTaskGroup(of: T?.self) { group in
    group.addTask { try await body() }
    group.addTask {
      try await Task.sleep(for: .seconds(seconds))
      return nil
    }
    defer { group.cancelAll() }
    guard let first = try await group.next(), let value = first else {
      throw WatchdogTimeout(seconds: seconds)
    }
    return value
  }
}

/// A pipe whose read end (non-blocking, close-on-exec) the test reads asynchronously and whose
/// write end (close-on-exec) is handed to a child with `fileDescriptors`.
struct Pipe: Sendable {
  let readEnd: Int32
  let writeEnd: Int32

  init() throws {
    var fds: [Int32] = [-1, -1]
    guard asynctools_pipe2(&fds, O_CLOEXEC) == 0 else { throw ProcessError.systemCallFailed("pipe2", errno: errno) }
    readEnd = fds[0]
    writeEnd = fds[1]
    _ = fcntl(readEnd, F_SETFL, fcntl(readEnd, F_GETFL) | O_NONBLOCK)
  }

  func closeWriteEnd() { close(writeEnd) }
  func closeReadEnd() { close(readEnd) }

  /// Reads until `done` says the bytes are complete, or until end of file. Never blocks a thread.
  func read(until done: ([UInt8]) -> Bool = { _ in false }) async throws -> String {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while !done(bytes) {
      let count = chunk.withUnsafeMutableBytes { Glibc.read(readEnd, $0.baseAddress, $0.count) }
      if count > 0 {
        bytes += chunk[..<count]
      } else if count == 0 {
        break
      } else if errno == EAGAIN || errno == EINTR {
        try await ProcessMonitor.shared().waitReadable(readEnd)
      } else {
        throw ProcessError.systemCallFailed("read", errno: errno)
      }
    }
    return String(decoding: bytes, as: UTF8.self)
  }

  func readLine() async throws -> String {
    try await read(until: { $0.contains(UInt8(ascii: "\n")) })
  }
}

/// `true` if `pid` is a zombie child of this process (exited, never reaped).
func isUnreapedChild(_ pid: Int32) -> Bool {
  guard let file = fopen("/proc/\(pid)/stat", "r") else { return false }
  defer { fclose(file) }
  var buffer = [CChar](repeating: 0, count: 1024)
  guard fgets(&buffer, Int32(buffer.count), file) != nil else { return false }
  let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  // "pid (comm) state ppid …": comm may contain spaces, so split after the last ')'.
  guard let close = line.lastIndex(of: ")") else { return false }
  let fields = line[line.index(after: close)...].split(separator: " ")
  guard fields.count >= 2 else { return false }
  return fields[0] == "Z" && Int32(fields[1]) == getpid()
}

/// A signal mask line of `/proc/<pid>/status` ("SigBlk", "ShdPnd", …) as a bit set (bit n-1 for signal n).
func signalMask(of pid: Int32, field: String) -> UInt64? {
  guard let file = fopen("/proc/\(pid)/status", "r") else { return nil }
  defer { fclose(file) }
  var buffer = [CChar](repeating: 0, count: 512)
  while fgets(&buffer, Int32(buffer.count), file) != nil {
    let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    guard line.hasPrefix(field + ":") else { continue }
    let value = line.dropFirst(field.count + 1).trimmingPrefix(while: { $0 == "\t" || $0 == " " })
    return UInt64(value.prefix { $0.isHexDigit }, radix: 16)
  }
  return nil
}

/// Kills and reaps a child a test no longer needs (after a failed expectation, for instance).
func killAndReap(_ child: ChildProcess) async {
  _ = try? child.send(signal: SIGKILL)
  _ = await child.waitUncancellable()
}

/// Starts the test helper program at `entry`.
func startTestChild(
  _ entry: String,
  _ arguments: [String] = [],
  environment: [String: String]? = nil,
  fileDescriptors: [Int32: Int32] = [:],
  options: ChildProcess.Options = .init()
) async throws -> ChildProcess {
  try await ChildProcess.spawn(
    executable: testChildPath, entry: entry, arguments: arguments, environment: environment,
    fileDescriptors: fileDescriptors, options: options)
}

/// Both watching modes, for tests that must pass through the pidfd path and the fallback alike.
let pidfdModes = [true, false]
#endif
