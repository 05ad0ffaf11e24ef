// Entry points for Tests/AsyncToolsProcessTests. Each one is tiny and reports through its exit
// status or through a descriptor the test passes, so the test can check it without timing guesses.
#if os(Linux)
import AsyncToolsProcess
import Glibc

struct TestChildError: Error, CustomStringConvertible {
  var description: String { "the entry point threw on purpose" }
}

/// Lets a test make this program fail *before* `bootstrap()`, i.e. before it can report readiness.
func simulateStartupFailureIfAsked() {
  guard let how = getenv("ASYNCTOOLS_TEST_STARTUP_FAILURE").map({ String(cString: $0) }) else { return }
  switch how {
  case "kill": kill(getpid(), SIGKILL)
  case "hang":
    // Says who it is on the descriptor the test named, so the test can watch it.
    if let fd = getenv("ASYNCTOOLS_TEST_PID_FD").flatMap({ Int32(String(cString: $0)) }) {
      writeAll("\(getpid())\n", to: fd)
    }
    while true { pause() }
  case "close-and-live":
    // Close the readiness pipe without dying: the parent must not wait forever.
    if let fd = getenv("ASYNCTOOLS_READY_FD").flatMap({ Int32(String(cString: $0)) }) { close(fd) }
    while true { pause() }
  default: exit(3)
  }
}

private func writeAll(_ text: String, to fd: Int32) {
  var bytes = Array(text.utf8)[...]
  while !bytes.isEmpty {
    let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    if written < 0 {
      if errno == EINTR { continue }
      return
    }
    bytes = bytes.dropFirst(written)
  }
}

private func sleepForever() -> Never {
  while true { pause() }
}

func registerProcessTestEntries() {
  func entry(_ name: String, _ body: @escaping @Sendable ([String]) async throws -> Int32) {
    do { try ChildProcess.register(entry: name, body) } catch { fatalError("\(error)") }
  }
  // Exits with the code given as the first argument.
  entry("exit") { arguments in Int32(arguments[0])! }
  // An async body: suspends once, then exits with 5.
  entry("async-exit") { _ in
    try await Task.sleep(for: .milliseconds(1))
    return 5
  }
  entry("throw") { _ in throw TestChildError() }
  // Dies by the given signal, with its default disposition (even under a sanitizer's handler).
  entry("raise") { arguments in
    let signal = Int32(arguments[0])!
    Glibc.signal(signal, SIG_DFL)
    kill(getpid(), signal)
    sleepForever()
  }
  // Waits for signals with default dispositions.
  entry("sleep") { _ in sleepForever() }
  // Says on fd 3 when SIGTERM arrives ("died by SIGTERM"), after saying "armed" once its handler is installed.
  entry("report-sigterm") { _ in
    Glibc.signal(SIGTERM) { _ in
      let message: StaticString = "died by SIGTERM\n"
      _ = write(3, message.utf8Start, message.utf8CodeUnitCount)
      _exit(0)
    }
    writeAll("armed\n", to: 3)
    sleepForever()
  }
  // Installs a SIGTERM handler that exits with 101, then says so on fd 3.
  entry("sigterm-101") { _ in
    Glibc.signal(SIGTERM) { _ in _exit(101) }
    writeAll("installed\n", to: 3)
    sleepForever()
  }
  // Writes arguments[1] to descriptor arguments[0].
  entry("write-fd") { arguments in
    writeAll(arguments[1], to: Int32(arguments[0])!)
    return 0
  }
  // Writes its other arguments to descriptor arguments[0], each followed by a NUL byte.
  entry("echo-arguments") { arguments in
    let fd = Int32(arguments[0])!
    for argument in arguments.dropFirst() { writeAll(argument + "\0", to: fd) }
    return 0
  }
  // Exits 1 if descriptor arguments[0] is open, 0 if it is closed.
  entry("is-fd-open") { arguments in fcntl(Int32(arguments[0])!, F_GETFD) >= 0 ? 1 : 0 }
  // Writes the value of environment variable arguments[1] (or "<unset>") to descriptor arguments[0].
  entry("getenv") { arguments in
    let value = getenv(arguments[1]).map { String(cString: $0) } ?? "<unset>"
    writeAll(value, to: Int32(arguments[0])!)
    return 0
  }
  // Writes the descriptors open in this process with what they refer to ("3 pipe:[123]", one per line, from
  // /proc/self/fd, without the one reading the directory) to descriptor arguments[0].
  entry("list-fds") { arguments in
    let fd = Int32(arguments[0])!
    guard let directory = opendir("/proc/self/fd") else { return 2 }
    var lines: [String] = []
    while let item = readdir(directory) {
      let name = withUnsafeBytes(of: item.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
      guard let number = Int32(name), number != dirfd(directory) else { continue }
      var target = [CChar](repeating: 0, count: 4096)
      let length = readlink("/proc/self/fd/\(number)", &target, target.count - 1)
      let text = length > 0 ? String(decoding: target[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
      lines.append("\(number) \(text)")
    }
    closedir(directory)
    writeAll(lines.joined(separator: "\n"), to: fd)
    return 0
  }
  // Writes the working directory to descriptor arguments[0].
  entry("getcwd") { arguments in
    var buffer = [CChar](repeating: 0, count: 4096)
    guard getcwd(&buffer, buffer.count) != nil else { return 2 }
    let directory = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    writeAll(directory, to: Int32(arguments[0])!)
    return 0
  }
  // Writes this process's parent pid to descriptor arguments[0].
  entry("getppid") { arguments in
    writeAll("\(getppid())", to: Int32(arguments[0])!)
    return 0
  }
  // Forks a grandchild that hangs before it is ready (before `bootstrap()`), with parent-death
  // signal arguments[0] and no readiness timeout; the grandchild writes its pid to fd 3 (this
  // process's fd 3, passed on). The fork never returns: the test kills this process meanwhile.
  entry("fork-hanging-grandchild") { arguments in
    var environment = ChildProcess.inheritedEnvironment
    environment["ASYNCTOOLS_TEST_STARTUP_FAILURE"] = "hang"
    environment["ASYNCTOOLS_TEST_PID_FD"] = "3"
    _ = try await ChildProcess.fork(
      entry: "sleep", environment: environment, fileDescriptors: [3: 3],
      options: .init(parentDeathSignal: Int32(arguments[0])!, readinessTimeout: nil))
    return 99
  }
  // Forks a grandchild ("report-sigterm", sharing fd 3) with parent-death signal arguments[0], writes its pid to
  // fd 3, then sleeps: the test kills this process and checks the grandchild dies too, and by which signal.
  entry("spawn-grandchild") { arguments in
    let signal = Int32(arguments[0])!
    let grandchild = try await ChildProcess.fork(
      entry: "report-sigterm", fileDescriptors: [3: 3], options: .init(parentDeathSignal: signal))
    writeAll("\(grandchild.pid)\n", to: 3)
    // The fork server that made it (if any): it must not outlive this process either.
    if let server = ForkServer.serverProcess(for: ChildProcess.selfExecutable) {
      writeAll("server \(server.pid)\n", to: 3)
    }
    sleepForever()
  }
}
#endif
