#if os(Linux)
import AsyncTools
import CAsyncToolsShims
import Glibc
import Testing

@testable import AsyncToolsProcess

/// The readiness handshake's timeout, and parent death for a child that is not ready yet (issue
/// #16, item 2): a hung child is reported, killed and reaped; a forked child never outlives its
/// parent, whatever point of its life it is at.
@Suite struct ReadinessTests {
  /// Starts the helper program at `entry`, made to hang before `bootstrap()` (so before it can be
  /// ready); it writes its pid to `pipe` first.
  private func startHangingChild(_ pipe: Pipe, options: ChildProcess.Options) async throws -> ChildProcess {
    var environment = ChildProcess.inheritedEnvironment
    environment["ASYNCTOOLS_TEST_STARTUP_FAILURE"] = "hang"
    environment["ASYNCTOOLS_TEST_PID_FD"] = "3"
    return try await startTestChild(
      "exit", ["0"], environment: environment, fileDescriptors: [3: pipe.writeEnd], options: options)
  }

  @Test func aChildNotReadyWithinTheTimeoutIsKilledReapedAndReported() async throws {
    try await withWatchdog(seconds: 60) {
      // The child writes its pid, then hangs. On a loaded machine it may not get as far as the pid
      // before a short timeout kills it: then try again with a longer one (the outcome must be the
      // same every time; only the reaping check needs the pid).
      var timeout = Duration.milliseconds(300)
      for _ in 0..<6 {
        let pipe = try Pipe()
        defer { pipe.closeReadEnd() }
        let start = ContinuousClock.now
        let error = await #expect(throws: ProcessError.self) {
          _ = try await startHangingChild(pipe, options: .init(readinessTimeout: timeout))
        }
        let elapsed = ContinuousClock.now - start
        pipe.closeWriteEnd()
        #expect(error == .readinessTimedOut(timeout))
        #expect(error?.description.contains("not ready within \(timeout)") == true, "\(String(describing: error))")
        #expect(elapsed >= timeout)
        // By the time fork threw, the child was killed and reaped.
        let line = try await pipe.readLine()
        guard let pid = Int32(line.dropLast()) else {
          timeout *= 2
          continue
        }
        #expect(!isUnreapedChild(pid))
        #expect(kill(pid, 0) == -1 && errno == ESRCH, "the timed-out child \(pid) must be gone")
        return
      }
      Issue.record("the child never got as far as writing its pid before the timeout")
    }
  }

  @Test func noTimeoutWaitsAndAReadyChildStillStarts() async throws {
    try await withWatchdog {
      let child = try await startTestChild("exit", ["4"], options: .init(readinessTimeout: nil))
      #expect(try await child.wait() == .exited(4))
    }
  }

  @Test func theDefaultTimeoutIsThirtySeconds() {
    #expect(ChildProcess.Options().readinessTimeout == .seconds(30))
    #expect(ChildProcess.Options.defaultReadinessTimeout == .seconds(30))
  }

  @Test(arguments: [Duration.zero, .milliseconds(-1), .seconds(Int64.max)])
  func aTimeoutOutOfRangeIsAnInvalidArgument(timeout: Duration) async {
    let error = await #expect(throws: AsyncToolsError.self) {
      _ = try await startTestChild("exit", ["0"], options: .init(readinessTimeout: timeout))
    }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains("readinessTimeout") == true)
  }

  @Test(arguments: [SIGKILL, SIGTERM])
  func aChildHangingBeforeReadinessDiesWithItsSIGKILLedParent(deathSignal: Int32) async throws {
    try await withWatchdog {
      let pipe = try Pipe()
      defer { pipe.closeReadEnd() }
      // The intermediate process forks a grandchild that hangs before `bootstrap()` (no readiness
      // timeout), so the intermediate is stuck in its handshake; the grandchild reports its pid.
      let intermediate = try await startTestChild(
        "fork-hanging-grandchild", ["\(deathSignal)"], fileDescriptors: [3: pipe.writeEnd])
      pipe.closeWriteEnd()
      let line = try await pipe.readLine()
      let grandchild = try #require(Int32(line.dropLast()), "grandchild pid, got \(line.debugDescription)")
      let pidfd = asynctools_pidfd_open(grandchild, 0)
      try #require(pidfd >= 0, "pidfd_open(\(grandchild)): errno \(errno)")
      defer { close(pidfd) }

      try intermediate.send(signal: SIGKILL)
      #expect(try await intermediate.wait() == .signaled(SIGKILL, coreDumped: false))
      // Readable once the grandchild has exited; the watchdog bounds the wait (an orphan would
      // hang here forever).
      try await ProcessMonitor.shared().waitReadable(pidfd)
    }
  }

  @Test func theParentDeathVariablesAreGoneBeforeMainRuns() async throws {
    try await withWatchdog {
      for name in ["ASYNCTOOLS_PARENT_PID", "ASYNCTOOLS_DEATH_SIGNAL"] {
        let pipe = try Pipe()
        defer { pipe.closeReadEnd() }
        let child = try await startTestChild(
          "getenv", ["3", name], fileDescriptors: [3: pipe.writeEnd], options: .init(parentDeathSignal: SIGTERM))
        pipe.closeWriteEnd()
        #expect(try await pipe.read() == "<unset>", "\(name)")
        #expect(try await child.wait() == .exited(0))
      }
    }
  }
}

/// The one codec of re-execution: targets, arguments and descriptors survive; anything else is a
/// malformed handshake, never a crash.
@Suite struct ReexecutionEnvironmentTests {
  private func decode(_ variables: [String]) -> Result<ReexecutionEnvironment, ReexecutionEnvironment.MalformedHandshake>? {
    func value(_ name: String) -> String? {
      variables.first { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
    }
    return ReexecutionEnvironment.decode(
      entry: value("ASYNCTOOLS_ENTRY"), role: value("ASYNCTOOLS_ROLE"), arguments: value("ASYNCTOOLS_ARGS"),
      readyFD: value("ASYNCTOOLS_READY_FD"), parentDeath: nil)
  }

  @Test(arguments: [
    ReexecutionEnvironment.Target.entryPoint("worker"), .role("asynctools-server-worker"), .entryPoint("a b=c"),
  ])
  func aHandshakeSurvivesItsEncoding(target: ReexecutionEnvironment.Target) throws {
    let handshake = ReexecutionEnvironment(target: target, arguments: ["", "x,y", "ü"], readyFD: 7, parentDeath: nil)
    #expect(try decode(handshake.variables)?.get() == handshake)
  }

  @Test func theParentDeathSignalIsEncodedForTheLoadTimeConstructor() {
    let handshake = ReexecutionEnvironment(
      target: .entryPoint("e"), arguments: [], readyFD: 3, parentDeath: .init(signal: SIGKILL, parent: 1234))
    #expect(handshake.variables.contains("ASYNCTOOLS_PARENT_PID=1234"))
    #expect(handshake.variables.contains("ASYNCTOOLS_DEATH_SIGNAL=\(SIGKILL)"))
  }

  @Test func noTargetMeansNotReexecuted() {
    #expect(decode(["ASYNCTOOLS_ARGS=0:", "ASYNCTOOLS_READY_FD=3"]) == nil)
  }

  @Test(arguments: [
    ["ASYNCTOOLS_ENTRY=e", "ASYNCTOOLS_ROLE=r", "ASYNCTOOLS_ARGS=0:", "ASYNCTOOLS_READY_FD=3"],
    ["ASYNCTOOLS_ENTRY=", "ASYNCTOOLS_ARGS=0:", "ASYNCTOOLS_READY_FD=3"],
    ["ASYNCTOOLS_ENTRY=e", "ASYNCTOOLS_READY_FD=3"],
    ["ASYNCTOOLS_ENTRY=e", "ASYNCTOOLS_ARGS=2:61", "ASYNCTOOLS_READY_FD=3"],
    ["ASYNCTOOLS_ROLE=r", "ASYNCTOOLS_ARGS=0:"],
    ["ASYNCTOOLS_ROLE=r", "ASYNCTOOLS_ARGS=0:", "ASYNCTOOLS_READY_FD=-1"],
    ["ASYNCTOOLS_ROLE=r", "ASYNCTOOLS_ARGS=0:", "ASYNCTOOLS_READY_FD=three"],
  ])
  func aMalformedHandshakeIsReportedNotTrusted(variables: [String]) {
    guard case .failure(let malformed)? = decode(variables) else {
      Issue.record("\(variables) should be malformed")
      return
    }
    #expect(malformed.description.hasPrefix("malformed re-execution environment"))
  }

  @Test func theHandshakeVariablesAreRemovedFromAGivenEnvironment() {
    let environment = ["PATH=/bin", "ASYNCTOOLS_ENTRY=x", "ASYNCTOOLS_ROLE=y", "ASYNCTOOLS_PARENT_PID=1", "HOME=/"]
    #expect(ReexecutionEnvironment.removingHandshake(from: environment) == ["PATH=/bin", "HOME=/"])
  }
}
#endif
