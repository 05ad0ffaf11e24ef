import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Process mode re-executes the file the server was *started from* (resolved before `main`), not
/// `/proc/self/exe`: after the program is rebuilt in place, a rolling restart runs the new build
/// (issue #15, item 2).
@Suite("Server re-execution")
struct ServerReexecutionTests {
  /// Copies `source` to `destination` (mode 0755) the way a build writes its output: a new file.
  private func copy(_ source: String, to destination: String) throws {
    let input = open(source, O_RDONLY | O_CLOEXEC)
    try #require(input >= 0, "open \(source): errno \(errno)")
    defer { close(input) }
    let output = open(destination, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
    try #require(output >= 0, "open \(destination): errno \(errno)")
    defer { close(output) }
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    while true {
      let count = read(input, &buffer, buffer.count)
      try #require(count >= 0, "read: errno \(errno)")
      if count == 0 { break }
      try #require(write(output, buffer, count) == count, "write: errno \(errno)")
    }
  }

  private func inode(_ path: String) -> UInt64? {
    var info = stat()
    return stat(path, &info) == 0 ? UInt64(info.st_ino) : nil
  }

  @Test func aRollingRestartRunsTheExecutableRebuiltInPlace() async throws {
    var template = Array("/tmp/asynctools-reexec-XXXXXX".utf8CString)
    let directory = try #require(mkdtemp(&template).map { String(cString: $0) })
    let path = "\(directory)/server"
    defer {
      unlink(path)
      unlink(path + ".new")
      rmdir(directory)
    }
    let built = "\(LaunchedProcess.productsDirectory)/AsyncToolsTestChild"
    try copy(built, to: path)
    let server = try LaunchedProcess(path, ["server", "--workers", "1", "--port", "0"])
    defer { server.killIfRunning() }
    try await withWatchdog(seconds: 60) {
      await server.output.wait { events in
        events.contains { $0.hasSuffix("worker 0 is ready") } && events.contains { $0.hasPrefix("out: worker 0 pid ") }
          || events.contains { $0.hasPrefix("exit: ") }
      }
      let oldBuild = try #require(inode(path))
      // "Rebuild": a new file renamed over the old path, as compilers and linkers do.
      try copy(built, to: path + ".new")
      try #require(rename(path + ".new", path) == 0, "rename: errno \(errno)")
      let newBuild = try #require(inode(path))
      #expect(newBuild != oldBuild)

      server.signal(SIGHUP)
      // Standard output and error are read by different threads: wait for both lines.
      await server.output.wait { events in
        events.contains { $0.hasSuffix("rolling restart done") }
          && events.filter { $0.hasPrefix("out: worker 0 pid ") }.count == 2
          || events.contains { $0.hasPrefix("exit: ") }
      }
      let pids = server.stdoutLines.filter { $0.hasPrefix("worker 0 pid ") }.compactMap { pid_t($0.split(separator: " ")[3]) }
      #expect(pids.count == 2, "\(server.stdoutLines)")
      let fresh = try #require(pids.last)
      #expect(inode("/proc/\(fresh)/exe") == newBuild, "the fresh worker must run the rebuilt file")
      #expect(inode("/proc/\(server.pid)/exe") == oldBuild, "the main process still runs the old file")
      server.signal(SIGTERM)
      #expect(await server.exitCode() == 0, "\(server.stderrText)")
    }
  }
}
