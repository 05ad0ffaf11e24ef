#if os(Linux)
import AsyncTools
import CAsyncToolsShims
import Glibc
import Testing

@testable import AsyncToolsProcess

/// Fork by re-execution: entry points, the readiness handshake, parent death.
///
/// The test runner's `main` is not ours, so these tests start the helper program
/// `AsyncToolsTestChild` (Tests/TestChild) with `spawn(executable:entry:)`; that program's own
/// `ChildProcess.fork` is exercised by `parentKilledWithSIGKILLTakesItsChildrenWithIt`.
@Suite struct ForkTests {
  @Test func entryPointThatThrowsExitsWithOne() async throws {
    try await withWatchdog {
      let child = try await startTestChild("throw")
      #expect(try await child.wait() == .exited(1))
    }
  }

  @Test func asyncEntryPointRuns() async throws {
    try await withWatchdog {
      let child = try await startTestChild("async-exit")
      #expect(try await child.wait() == .exited(5))
    }
  }

  @Test func argumentsArriveIntact() async throws {
    try await withWatchdog {
      let pipe = try Pipe()
      defer { pipe.closeReadEnd() }
      let arguments = [
        "", "plain", "with space", "a,b", "3:", "=x=", "héllo 🚀", String(repeating: "z", count: 5000), "",
      ]
      let child = try await startTestChild(
        "echo-arguments", ["3"] + arguments, fileDescriptors: [3: pipe.writeEnd])
      pipe.closeWriteEnd()
      let output = try await pipe.read()
      #expect(output == arguments.map { $0 + "\0" }.joined())
      #expect(try await child.wait() == .exited(0))
    }
  }

  @Test func passedDescriptorIsWritableInTheChild() async throws {
    try await withWatchdog {
      let pipe = try Pipe()
      defer { pipe.closeReadEnd() }
      let child = try await startTestChild("write-fd", ["7", "through fd 7"], fileDescriptors: [7: pipe.writeEnd])
      pipe.closeWriteEnd()
      #expect(try await pipe.read() == "through fd 7")
      #expect(try await child.wait() == .exited(0))
    }
  }

  @Test func childSeesItsEnvironmentWithoutTheHandshakeVariables() async throws {
    try await withWatchdog {
      let cases = [("ASYNCTOOLS_TEST_VALUE", "42"), ("ASYNCTOOLS_ENTRY", "<unset>"), ("ASYNCTOOLS_ARGS", "<unset>")]
      for (name, expected) in cases {
        let pipe = try Pipe()
        defer { pipe.closeReadEnd() }
        var environment = ChildProcess.inheritedEnvironment
        environment["ASYNCTOOLS_TEST_VALUE"] = "42"
        let child = try await startTestChild(
          "getenv", ["3", name], environment: environment, fileDescriptors: [3: pipe.writeEnd])
        pipe.closeWriteEnd()
        #expect(try await pipe.read() == expected, "\(name)")
        #expect(try await child.wait() == .exited(0))
      }
    }
  }

  @Test func handshakeVariablesInTheGivenEnvironmentDoNotShadowTheRealOnes() async throws {
    try await withWatchdog {
      var environment = ChildProcess.inheritedEnvironment
      environment["ASYNCTOOLS_ENTRY"] = "no-such-entry"
      environment["ASYNCTOOLS_READY_FD"] = "99"
      let child = try await startTestChild("exit", ["6"], environment: environment)
      #expect(try await child.wait() == .exited(6))
    }
  }

  /// Drives the child side of `bootstrap()` by hand: the helper program started as an external
  /// executable with handshake variables the test writes itself.
  func bootstrapByHand(_ variables: [String: String]) async throws -> (ChildProcess.ExitStatus, String) {
    let pipe = try Pipe()
    defer { pipe.closeReadEnd() }
    var environment = ChildProcess.inheritedEnvironment
    environment.merge(variables) { $1 }
    environment["ASYNCTOOLS_READY_FD"] = "3"
    let child = try await ChildProcess.spawn(
      executable: testChildPath, environment: environment, fileDescriptors: [3: pipe.writeEnd])
    pipe.closeWriteEnd()
    let handshake = try await pipe.read()
    return (try await child.wait(), handshake)
  }

  @Test func childWhoseParentDiedBeforePrctlRaisesTheDeathSignalItself() async throws {
    // The parent pid in the handshake is not the real parent: exactly what the child sees when its
    // parent died between the spawn and the child's prctl (it was re-parented).
    try await withWatchdog {
      let (status, handshake) = try await self.bootstrapByHand([
        "ASYNCTOOLS_ENTRY": "sleep", "ASYNCTOOLS_ARGS": "0:",
        "ASYNCTOOLS_PARENT_PID": "\(getpid() + 100_000)", "ASYNCTOOLS_DEATH_SIGNAL": "\(SIGTERM)",
      ])
      #expect(status == .signaled(SIGTERM, coreDumped: false))
      #expect(handshake == "", "the child must not report readiness")
    }
  }

  @Test func malformedHandshakeEnvironmentExitsWith126BeforeReadiness() async throws {
    try await withWatchdog {
      let (status, handshake) = try await self.bootstrapByHand([
        "ASYNCTOOLS_ENTRY": "exit", "ASYNCTOOLS_ARGS": "2:zz",
      ])
      #expect(status == .exited(126))
      #expect(handshake == "")
    }
  }

  @Test func unknownEntryPointIsAnErrorInTheParent() async throws {
    try await withWatchdog {
      let error = await #expect(throws: ProcessError.self) {
        _ = try await startTestChild("no-such-entry")
      }
      #expect(error == .unknownEntryPoint("no-such-entry"))
    }
  }

  @Test func forkChecksTheParentsOwnRegistryFirst() async throws {
    // This test process registers an entry point, so `fork` knows its table and refuses an unknown
    // name before starting anything (it would re-execute the test runner otherwise).
    _ = try? ChildProcess.register(entry: "tests.registered-in-parent") { _ in 0 }
    let error = await #expect(throws: ProcessError.self) {
      _ = try await ChildProcess.fork(entry: "tests.not-registered")
    }
    #expect(error == .unknownEntryPoint("tests.not-registered"))
  }

  @Test(arguments: [("exit", ChildProcess.ExitStatus.exited(3)), ("kill", .signaled(SIGKILL, coreDumped: false))])
  func childThatDiesBeforeItIsReadyIsReported(how: String, expected: ChildProcess.ExitStatus) async throws {
    try await withWatchdog {
      var environment = ChildProcess.inheritedEnvironment
      environment["ASYNCTOOLS_TEST_STARTUP_FAILURE"] = how
      let error = await #expect(throws: ProcessError.self) {
        _ = try await startTestChild("exit", ["0"], environment: environment)
      }
      #expect(error == .diedBeforeReady(expected))
    }
  }

  @Test func childThatClosesTheReadinessPipeAndLivesOnIsKilledNotAwaitedForever() async throws {
    try await withWatchdog {
      var environment = ChildProcess.inheritedEnvironment
      environment["ASYNCTOOLS_TEST_STARTUP_FAILURE"] = "close-and-live"
      let error = await #expect(throws: ProcessError.self) {
        _ = try await startTestChild("exit", ["0"], environment: environment)
      }
      #expect(error == .diedBeforeReady(.signaled(SIGKILL, coreDumped: false)))
    }
  }

  @Test func programWithoutBootstrapIsReportedAsDiedBeforeReady() async throws {
    try await withWatchdog {
      let error = await #expect(throws: ProcessError.self) {
        _ = try await ChildProcess.spawn(executable: "/bin/true", entry: "anything")
      }
      #expect(error == .diedBeforeReady(.exited(0)))
    }
  }

  @Test func cancellingTheHandshakeKillsTheChildAndThrows() async throws {
    try await withWatchdog {
      var environment = ChildProcess.inheritedEnvironment
      environment["ASYNCTOOLS_TEST_STARTUP_FAILURE"] = "hang"
      let start = Task { try await startTestChild("exit", ["0"], environment: environment) }
      // Whether cancellation lands before or during the handshake, the half-started child is killed
      // and reaped, and the call throws (the child never becomes ready, so it cannot succeed).
      start.cancel()
      await #expect(throws: CancellationError.self) { _ = try await start.value }
    }
  }

  @Test(arguments: [SIGKILL, SIGTERM])
  func parentKilledWithSIGKILLTakesItsChildrenWithIt(deathSignal: Int32) async throws {
    try await withWatchdog {
      let pipe = try Pipe()
      defer { pipe.closeReadEnd() }
      // The intermediate process forks a grandchild (its own `ChildProcess.fork`) with the
      // parent-death signal, reports the grandchild's pid, and sleeps.
      let intermediate = try await startTestChild(
        "spawn-grandchild", ["\(deathSignal)"], fileDescriptors: [3: pipe.writeEnd])
      pipe.closeWriteEnd()
      // Three lines in any order: the grandchild's pid and the pid of the fork server that made it (from the
      // intermediate), and "armed" (from the grandchild).
      let start = try await pipe.read(until: { $0.filter { $0 == UInt8(ascii: "\n") }.count >= 3 })
      let lines = start.split(separator: "\n").map(String.init)
      #expect(lines.contains("armed"), "output: \(start.debugDescription)")
      let grandchild = try #require(
        lines.compactMap { Int32($0) }.first, "grandchild pid, got \(start.debugDescription)")
      let server = try #require(
        lines.compactMap { $0.hasPrefix("server ") ? Int32($0.dropFirst(7)) : nil }.first,
        "fork server pid, got \(start.debugDescription)")
      let pidfd = asynctools_pidfd_open(grandchild, 0)
      try #require(pidfd >= 0, "pidfd_open(\(grandchild)): errno \(errno)")
      defer { close(pidfd) }
      let serverPidfd = asynctools_pidfd_open(server, 0)
      try #require(serverPidfd >= 0, "pidfd_open(\(server)): errno \(errno)")
      defer { close(serverPidfd) }

      try intermediate.send(signal: SIGKILL)
      #expect(try await intermediate.wait() == .signaled(SIGKILL, coreDumped: false))
      // The grandchild died by the parent-death signal it was given: SIGTERM reaches its handler (which says so),
      // SIGKILL cannot be handled, so it says nothing. Every writer is gone at the end, so the read ends.
      let rest = try await pipe.read()
      let expected = deathSignal == SIGTERM ? "died by SIGTERM\n" : ""
      #expect(rest == expected, "after the parent died: \(rest.debugDescription)")
      // The grandchild's pidfd becomes readable when it exits, and so does the fork server's (its parent-death
      // signal); the watchdog bounds the wait.
      try await ProcessMonitor.shared().waitReadable(pidfd)
      try await ProcessMonitor.shared().waitReadable(serverPidfd)
    }
  }
}
#endif
