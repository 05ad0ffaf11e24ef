#if os(Linux)
import CAsyncToolsShims
import Glibc
import Testing

@testable import AsyncToolsProcess

/// The fork server with real processes: children come from it and are this process's own, what they
/// inherit is what a re-executed child inherits, and a dead or stuck server is replaced.
///
/// Serialized: some tests kill or stop the test helper's server, which the other tests here count on.
@Suite(.serialized) struct ForkServerTests {
  /// How many children the fork servers of this process have made so far.
  var forked: Int { ForkServer.forkedCount.load(ordering: .relaxed) }

  /// Whether the running `child` was forked by a fork server of this process: its initial environment
  /// (`/proc/<pid>/environ`, what the kernel got at exec) is the server's, where a re-executed child's is
  /// its own. (Its memory layout would tell too, but sanitizers turn address-space randomisation off.)
  func isForked(_ child: ChildProcess) -> Bool {
    guard let file = fopen("/proc/\(child.pid)/environ", "r") else { return false }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
      let count = fread(&chunk, 1, chunk.count, file)
      if count <= 0 { break }
      bytes += chunk[..<count]
    }
    let marker = "\(ASYNCTOOLS_ENV_FORK_SERVER)=3:\(getpid())"
    return bytes.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == marker }
  }

  /// The running server of the test helper, started if needed by one fork.
  func server() async throws -> ChildProcess {
    let child = try await startTestChild("exit", ["0"])
    #expect(try await child.wait() == .exited(0))
    return try #require(ForkServer.serverProcess(for: testChildPath))
  }

  @Test func childrenAreForkedByTheServerAndAreThisProcesssOwn() async throws {
    try await withWatchdog {
      _ = try await server()
      let pipe = try Pipe()
      defer { pipe.closeReadEnd() }
      let child = try await startTestChild("getppid", ["3"], fileDescriptors: [3: pipe.writeEnd])
      pipe.closeWriteEnd()
      #expect(try await pipe.read() == "\(getpid())")  // CLONE_PARENT: our child, not the server's
      #expect(try await child.wait() == .exited(0))
      #expect(!isUnreapedChild(child.pid))

      let sleeper = try await startTestChild("sleep")
      #expect(isForked(sleeper))
      await killAndReap(sleeper)
    }
  }

  @Test func withoutTheForkServerTheProgramIsReexecuted() async throws {
    try await withWatchdog {
      _ = try await server()
      for options in [ChildProcess.Options(useForkServer: false), .init(closeOtherDescriptors: false)] {
        let sleeper = try await startTestChild("sleep", options: options)
        #expect(!isForked(sleeper))
        await killAndReap(sleeper)
      }
    }
  }

  @Test(arguments: pidfdModes)
  func manyForksAtOnceEachGetTheirOwnChild(usePidfd: Bool) async throws {
    try await withWatchdog {
      let before = forked
      let codes = try await withThrowingTaskGroup(of: (Int32, ChildProcess.ExitStatus).self) { group in
        for code: Int32 in 1...24 {
          group.addTask {
            let child = try await startTestChild("exit", ["\(code)"], options: .init(usePidfd: usePidfd))
            return (code, try await child.wait())
          }
        }
        return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
      }
      #expect(codes.count == 24)
      for (code, status) in codes { #expect(status == .exited(code)) }
      #expect(forked >= before + 24)
    }
  }

  @Test func theChildHasExactlyTheDescriptorsAReexecutedChildHas() async throws {
    try await withWatchdog {
      // A descriptor this process opened without close-on-exec: neither child may get it.
      // (High, so that it cannot coincide with one the child's runtime opens for itself.)
      let stray = fcntl(2, F_DUPFD, 300)
      try #require(stray >= 300)
      defer { close(stray) }
      var found: [[Int32: String]] = []
      for useForkServer in [true, false] {
        let pipe = try Pipe()
        defer { pipe.closeReadEnd() }
        let passed = try Pipe()
        defer { passed.closeReadEnd() }
        let child = try await startTestChild(
          "list-fds", ["3"], fileDescriptors: [3: pipe.writeEnd, 9: passed.writeEnd],
          options: .init(useForkServer: useForkServer))
        pipe.closeWriteEnd()
        passed.closeWriteEnd()
        let listing = try await pipe.read()
        #expect(try await child.wait() == .exited(0))
        // Above 2, what could leak: pipes, sockets (the server's), paths (its working-directory descriptor).
        // Not the runtime's own event descriptors (anon_inode) or a file a runtime thread reads for a moment.
        var descriptors: [Int32: String] = [:]
        for line in listing.split(separator: "\n") {
          let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
          guard parts.count == 2, let fd = Int32(parts[0]), fd > 2 else { continue }
          let target = parts[1]
          if target.hasPrefix("anon_inode:") || target.hasPrefix("/sys/") || target.hasPrefix("/proc/") { continue }
          descriptors[fd] = target.hasPrefix("pipe:") ? "pipe" : target
        }
        found.append(descriptors)
      }
      #expect(found[0] == [3: "pipe", 9: "pipe"], "through the fork server: \(found[0])")
      #expect(found[1] == [3: "pipe", 9: "pipe"], "re-executed: \(found[1])")
    }
  }

  @Test func environmentAndWorkingDirectoryAreThisProcesssAtTheTimeOfTheFork() async throws {
    try await withWatchdog {
      _ = try await server()
      // Changed after the server started: the child must see the new value and directory.
      let name = "ASYNCTOOLS_FORK_SERVER_TEST_\(getpid())"
      setenv(name, "changed later", 1)
      defer { unsetenv(name) }
      let pipe = try Pipe()
      defer { pipe.closeReadEnd() }
      let child = try await startTestChild("getenv", ["3", name], fileDescriptors: [3: pipe.writeEnd])
      pipe.closeWriteEnd()
      #expect(try await pipe.read() == "changed later")
      #expect(try await child.wait() == .exited(0))

      var buffer = [CChar](repeating: 0, count: 4096)
      try #require(getcwd(&buffer, buffer.count) != nil)
      let previous = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
      try #require(chdir("/tmp") == 0)
      let cwdPipe = try Pipe()
      defer { cwdPipe.closeReadEnd() }
      let cwdChild: ChildProcess
      do {
        cwdChild = try await startTestChild("getcwd", ["3"], fileDescriptors: [3: cwdPipe.writeEnd])
        _ = chdir(previous)
      } catch {
        _ = chdir(previous)
        throw error
      }
      cwdPipe.closeWriteEnd()
      #expect(try await cwdPipe.read() == "/tmp")
      #expect(try await cwdChild.wait() == .exited(0))
    }
  }

  @Test func aServerKilledBetweenForksIsReplacedAndItsChildrenLiveOn() async throws {
    try await withWatchdog {
      let old = try await server()
      // A child of that server, with a parent-death signal: its parent is this process, not the server.
      let survivor = try await startTestChild("sleep", options: .init(parentDeathSignal: SIGKILL))
      try old.send(signal: SIGKILL)
      #expect(try await old.wait() == .signaled(SIGKILL, coreDumped: false))  // reaped by us: no zombie
      #expect(try survivor.send(signal: 0))  // still running

      let child = try await startTestChild("sleep")
      let replacement = try #require(ForkServer.serverProcess(for: testChildPath))
      #expect(replacement.pid != old.pid)
      #expect(isForked(child))  // through a new server, not re-executed
      await killAndReap(child)

      try survivor.send(signal: SIGTERM)
      #expect(try await survivor.wait() == .signaled(SIGTERM, coreDumped: false))
    }
  }

  @Test func aServerThatStopsAnsweringIsKilledAndTheForkStillSucceeds() async throws {
    try await withWatchdog {
      let stuck = try await server()
      try stuck.send(signal: SIGSTOP)  // it never reads the next request
      let timeout = ForkServer.replyTimeoutMilliseconds.exchange(200, ordering: .relaxed)
      defer { ForkServer.replyTimeoutMilliseconds.store(timeout, ordering: .relaxed) }
      let child = try await startTestChild("sleep")
      #expect(try await stuck.wait() == .signaled(SIGKILL, coreDumped: false))
      let replacement = try #require(ForkServer.serverProcess(for: testChildPath))
      #expect(replacement.pid != stuck.pid)
      #expect(isForked(child))
      await killAndReap(child)
    }
  }

  @Test func aChildMadeByAServerThatDiedBeforeItsReplyIsAdoptedNotDuplicated() async throws {
    try await withWatchdog {
      let dying = try await server()
      ForkServer.exitAfterForkForTesting.withLock { $0[testChildPath] = 1 }
      let pipe = try Pipe()
      defer { pipe.closeReadEnd() }
      // The child writes "<pid>" once: a second child (a retry that forgot the first) would write twice.
      let child = try await startTestChild("getppid", ["3"], fileDescriptors: [3: pipe.writeEnd])
      pipe.closeWriteEnd()
      #expect(try await dying.wait() == .exited(0))
      #expect(try await pipe.read() == "\(getpid())")
      #expect(try await child.wait() == .exited(0))
      #expect(!isUnreapedChild(child.pid))
    }
  }

  /// Runs `body` with the path of a private copy of the test helper (its own fork server) and a function
  /// that installs a new copy there, renamed into place as a rebuild does.
  func withCopyOfTheTestHelper(_ body: (String, () throws -> Void) async throws -> Void) async throws {
    var template = Array("/tmp/asynctools-fork-server-XXXXXX".utf8CString)
    let directory = try #require(mkdtemp(&template).map { String(cString: $0) })
    let program = "\(directory)/child"
    defer {
      unlink(program)
      rmdir(directory)
    }
    func install() throws {
      try #require(system("cp '\(testChildPath)' '\(program).new' && mv '\(program).new' '\(program)'") == 0)
    }
    try install()
    try await body(program, install)
  }

  @Test func aServerThatDiesDuringEveryRequestEndsInReexecutionNotALoop() async throws {
    try await withWatchdog {
      try await withCopyOfTheTestHelper { program, _ in
        ForkServer.exitAfterForkForTesting.withLock { $0[program] = 100 }
        defer { ForkServer.exitAfterForkForTesting.withLock { $0[program] = nil } }
        // Each of the first three forks loses its server (and adopts the child it made); then re-execution.
        for round in 0..<5 {
          let child = try await ChildProcess.spawn(executable: program, entry: "sleep")
          #expect(isForked(child) == (round < ForkServer.maximumLosses), "round \(round)")
          await killAndReap(child)
        }
        #expect(ForkServer.serverProcess(for: program) == nil)
      }
    }
  }

  @Test func aProgramReplacedOnDiskGetsANewServer() async throws {
    try await withWatchdog {
      try await withCopyOfTheTestHelper { program, install in
        let first = try await ChildProcess.spawn(executable: program, entry: "sleep")
        let oldServer = try #require(ForkServer.serverProcess(for: program))
        #expect(isForked(first))
        try install()
        let second = try await ChildProcess.spawn(executable: program, entry: "sleep")
        let newServer = try #require(ForkServer.serverProcess(for: program))
        #expect(newServer.pid != oldServer.pid)
        #expect(isForked(second))
        #expect(try await oldServer.wait() == .exited(0))  // told to go (its socket closed), and reaped
        await killAndReap(first)
        await killAndReap(second)
      }
    }
  }

  @Test(arguments: [("3:1", ChildProcess.ExitStatus.exited(125), "names another parent process"),
                    ("three", .exited(126), "malformed")])
  func aStrayForkServerVariableIsReportedNotObeyedSilently(
    value: String, expected: ChildProcess.ExitStatus, message: String
  ) async throws {
    try await withWatchdog {
      let pipe = try Pipe()
      defer { pipe.closeReadEnd() }
      var environment = ChildProcess.inheritedEnvironment
      environment[ASYNCTOOLS_ENV_FORK_SERVER] = value
      let child = try await ChildProcess.spawn(
        executable: testChildPath, environment: environment, fileDescriptors: [2: pipe.writeEnd])
      pipe.closeWriteEnd()
      let output = try await pipe.read()
      #expect(output.contains("ASYNCTOOLS_FORK_SERVER") && output.contains(message), "\(output)")
      #expect(try await child.wait() == expected)
    }
  }

  @Test func aProgramThatCannotServeFallsBackToReexecution() async throws {
    try await withWatchdog {
      // /bin/true exits at once instead of greeting: its forks are re-executions (and it dies before ready).
      let error = await #expect(throws: ProcessError.self) {
        _ = try await ChildProcess.spawn(executable: "/bin/true", entry: "anything")
      }
      #expect(error == .diedBeforeReady(.exited(0)))
      #expect(ForkServer.serverProcess(for: "/bin/true") == nil)
    }
  }
}
#endif
