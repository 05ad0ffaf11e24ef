import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Process mode re-executes the file the server was *started from* (resolved before `main`), not
/// `/proc/self/exe`: after the program is rebuilt in place, a rolling restart runs the new build
/// (issue #15, item 2).
@Suite("Server re-execution")
struct ServerReexecutionTests {
  /// Copies `source` to `destination` the way a build writes its output: a new file. Done by
  /// `/bin/cp`, never in this process: a descriptor open for writing here would be inherited, for
  /// a moment, by any child another test spawns meanwhile, and exec'ing the file then fails with
  /// ETXTBSY.
  private func copy(_ source: String, to destination: String) async throws {
    let cp = try LaunchedProcess("/bin/cp", [source, destination])
    let code = await cp.exitCode()
    try #require(code == 0, "cp \(source) \(destination): \(cp.stderrText)")
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
    try await withWatchdog { try await copy(built, to: path) }
    let server = try LaunchedProcess(path, ["server", "--workers", "1", "--port", "0"])
    defer { server.killIfRunning() }
    try await withWatchdog(seconds: 60) {
      await server.output.wait { events in
        events.contains { $0.hasSuffix("worker 0 is ready") } && events.contains { $0.hasPrefix("out: worker 0 pid ") }
          || events.contains { $0.hasPrefix("exit: ") }
      }
      let oldBuild = try #require(inode(path))
      // "Rebuild": a new file renamed over the old path, as compilers and linkers do.
      try await copy(built, to: path + ".new")
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
