import AsyncToolsTestSupport
import CAsyncToolsShims
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A program the tests start for real (the built `echo-server` or `AsyncToolsTestChild`), with its
/// standard output and error collected line by line into ``output`` (`out: …` / `err: …`), and its
/// exit recorded there too (`exit: <status>`, negative for a signal). Blocking reads and the reaping
/// `waitpid` run on dedicated threads, never on the cooperative pool.
final class LaunchedProcess: Sendable {
  let pid: pid_t
  let output = Probe()
  private final class ExitBox: Sendable {
    let value = PThreadLocked<Int32?>(nil)
    /// When `waitpid` returned, read on the reaping thread: timing a stop with it does not count the
    /// time the test's own task waits for a cooperative thread (seconds, when CPU-heavy suites run
    /// beside it under a sanitizer).
    let instant = PThreadLocked<ContinuousClock.Instant?>(nil)
  }
  private let exit = ExitBox()

  /// The directory holding the test bundle, where SwiftPM also puts the package's executables.
  static var productsDirectory: String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    let path = String(decoding: buffer[0..<max(0, count)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
  }

  /// Starts `executable` (a product name, looked up beside the test bundle, or an absolute path)
  /// with `arguments`, and `environment` ("NAME=value") added to this process's environment.
  init(_ executable: String, _ arguments: [String], environment extra: [String] = []) throws {
    let path = executable.hasPrefix("/") ? executable : "\(Self.productsDirectory)/\(executable)"
    var outPipe: [CInt] = [-1, -1]
    var errPipe: [CInt] = [-1, -1]
    // Close-on-exec from birth: tests spawn processes in parallel, and a write end leaking into
    // another test's child would delay our end-of-file until that child exits.
    guard asynctools_pipe2(&outPipe, O_CLOEXEC) == 0, asynctools_pipe2(&errPipe, O_CLOEXEC) == 0 else {
      throw LaunchError(message: "pipe failed")
    }

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
    posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
    // Nothing else of this (busy, multi-threaded) test process leaks into the child.
    _ = asynctools_spawn_file_actions_addclosefrom(&actions, 3)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    // Default dispositions and an empty mask: whatever the test runner blocks or ignores.
    var empty = sigset_t()
    sigemptyset(&empty)
    var all = sigset_t()
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setsigdefault(&attributes, &all)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    // Under ThreadSanitizer the launched programs are instrumented too, and CI's
    // halt_on_error=1 would turn a report inside a child (seen: AsyncToolsProcess'
    // ProcessMonitor.perform resuming a continuation from its monitor thread) into a failed server
    // test. The children still print their reports (to the output these tests capture); only the
    // test process's own reports fail the run.
    // The children keep the run's other options, its suppressions above all: a suppressed report
    // would otherwise still be printed there, and TSan's symbolizer would show up as an extra child.
    let inherited = ChildEnvironment.current.first { $0.hasPrefix("TSAN_OPTIONS=") }.map { $0.dropFirst(13) + ":" } ?? ""
    var environment = ChildEnvironment.current.filter { !$0.hasPrefix("TSAN_OPTIONS=") }
    // atexit_sleep_ms=0: TSan otherwise sleeps a second at exit while other threads run (an abandoned
    // thread worker), which the stop-timing tests would measure.
    environment.append("TSAN_OPTIONS=\(inherited)halt_on_error=0:exitcode=0:atexit_sleep_ms=0")
    environment += extra
    let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
    defer { for pointer in envp { free(pointer) } }
    let status = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
    close(outPipe[1])
    close(errPipe[1])
    guard status == 0 else {
      close(outPipe[0])
      close(errPipe[0])
      throw LaunchError(message: "cannot start \(path): \(String(cString: strerror(status)))")
    }
    self.pid = pid
    let output = self.output
    let exit = self.exit
    let (outRead, errRead, childPID) = (outPipe[0], errPipe[0], pid)
    startThread { Self.readLines(outRead, prefix: "out: ", into: output) }
    startThread { Self.readLines(errRead, prefix: "err: ", into: output) }
    startThread {
      var status: CInt = 0
      while waitpid(childPID, &status, 0) < 0 && errno == EINTR {}
      let exitedAt = ContinuousClock.now
      let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : -(status & 0x7f)
      exit.instant.withLock { $0 = exitedAt }
      exit.value.withLock { $0 = code }
      output.record("exit: \(code)")
    }
  }

  struct LaunchError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
  }

  func signal(_ signal: Int32) { kill(pid, signal) }

  /// Kills the process if it is still running (a failed test must not leave it behind).
  func killIfRunning() {
    if exit.value.withLock({ $0 }) == nil { kill(pid, SIGKILL) }
  }

  /// Suspends until a standard-output line satisfies `predicate`, and returns it.
  @discardableResult
  func waitForLine(_ predicate: @escaping @Sendable (String) -> Bool) async -> String {
    await output.wait { events in
      events.contains { $0.hasPrefix("out: ") && predicate(String($0.dropFirst(5))) || $0.hasPrefix("exit: ") }
    }
    return output.events.first { $0.hasPrefix("out: ") && predicate(String($0.dropFirst(5))) }
      .map { String($0.dropFirst(5)) } ?? "<exited before printing it>"
  }

  /// Suspends until the process has exited and its output is read to the end (when every process
  /// holding the pipes — workers included — has closed them); returns the exit status (negative:
  /// killed by that signal).
  func exitCode() async -> Int32 {
    await output.wait { events in
      events.contains { $0.hasPrefix("exit: ") } && events.filter { $0.hasPrefix("eof: ") }.count == 2
    }
    return exit.value.withLock { $0 } ?? -1
  }

  /// When the process exited (nil while it runs): as seen by the reaping thread, see `ExitBox`.
  var exitedAt: ContinuousClock.Instant? { exit.instant.withLock { $0 } }

  var stdoutLines: [String] { output.events.filter { $0.hasPrefix("out: ") }.map { String($0.dropFirst(5)) } }
  var stderrText: String {
    output.events.filter { $0.hasPrefix("err: ") }.map { String($0.dropFirst(5)) }.joined(separator: "\n")
  }

  private static func readLines(_ fd: CInt, prefix: String, into probe: Probe) {
    var pending: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
      let count = read(fd, &buffer, buffer.count)
      if count < 0 && errno == EINTR { continue }
      if count <= 0 { break }
      for byte in buffer[0..<count] {
        if byte == 0x0A {
          probe.record(prefix + String(decoding: pending, as: UTF8.self))
          pending.removeAll()
        } else {
          pending.append(byte)
        }
      }
    }
    if !pending.isEmpty { probe.record(prefix + String(decoding: pending, as: UTF8.self)) }
    probe.record("eof: \(prefix)")
    close(fd)
  }
}

/// Runs `body` on a new detached thread.
func startThread(_ body: @escaping @Sendable () -> Void) {
  final class Box: Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
  }
  let box = Unmanaged.passRetained(Box(body)).toOpaque()
  var thread = pthread_t()
  let status = pthread_create(&thread, nil, { pointer in
    let box = Unmanaged<Box>.fromOpaque(pointer!).takeRetainedValue()
    box.body()
    return nil
  }, box)
  precondition(status == 0, "pthread_create failed: \(status)")
  pthread_detach(thread)
}

/// Whether process `pid` still exists (a zombie counts: it has not been reaped).
func processExists(_ pid: pid_t) -> Bool {
  kill(pid, 0) == 0 || errno == EPERM
}

/// The direct children of `pid`, from /proc (what a reaped-and-gone worker must not appear in),
/// except a sanitizer's symbolizer.
func childrenOf(_ pid: pid_t) -> [pid_t] {
  guard let directory = opendir("/proc") else { return [] }
  defer { closedir(directory) }
  var children: [pid_t] = []
  while let entry = readdir(directory) {
    let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    guard let child = pid_t(name), let stat = readFile("/proc/\(child)/stat") else { continue }
    // "pid (comm) state ppid …": comm may contain spaces, so parse after the last ')'.
    guard let close = stat.lastIndex(of: ")") else { continue }
    // Not a worker: the symbolizer a sanitizer runtime starts to print (or suppress) a report.
    if stat[..<close].hasSuffix("symbolizer") { continue }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    if fields.count > 1, pid_t(fields[1]) == pid { children.append(child) }
  }
  return children
}

func readFile(_ path: String) -> String? {
  let fd = open(path, O_RDONLY)
  guard fd >= 0 else { return nil }
  defer { close(fd) }
  var bytes: [UInt8] = []
  var buffer = [UInt8](repeating: 0, count: 4096)
  while true {
    let count = read(fd, &buffer, buffer.count)
    if count <= 0 { break }
    bytes += buffer[0..<count]
  }
  return String(decoding: bytes, as: UTF8.self)
}

/// Connects to 127.0.0.1:`port`, sends `message`, and returns what comes back (blocking: call it
/// from `onThread`).
func echoRoundTrip(port: Int, message: String) -> String? {
  let fd = connectLoopback(port: port)
  guard fd >= 0 else { return nil }
  defer { close(fd) }
  let bytes = Array(message.utf8)
  guard write(fd, bytes, bytes.count) == bytes.count else { return nil }
  var received: [UInt8] = []
  var buffer = [UInt8](repeating: 0, count: 1024)
  while received.count < bytes.count {
    let count = read(fd, &buffer, buffer.count)
    if count <= 0 { break }
    received += buffer[0..<count]
  }
  return String(decoding: received, as: UTF8.self)
}

/// Runs a blocking `body` on a new thread and returns its result without blocking the pool.
func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
  await withCheckedContinuation { continuation in
    startThread { continuation.resume(returning: body()) }
  }
}

enum ChildEnvironment {
  static var current: [String] {
    var strings: [String] = []
    var pointer = environ
    while let entry = pointer.pointee {
      strings.append(String(cString: entry))
      pointer += 1
    }
    return strings
  }
}
