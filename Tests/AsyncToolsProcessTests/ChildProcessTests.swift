#if os(Linux)
import AsyncTools
import Glibc
import Synchronization
import Testing

@testable import AsyncToolsProcess

/// Waiting, signalling and reaping, through the pidfd path and the fallback (`usePidfd: false`).
@Suite struct ChildProcessTests {
  @Test(arguments: pidfdModes)
  func exitCodesAreReported(usePidfd: Bool) async throws {
    try await withWatchdog {
      for (returned, expected) in [(0, 0), (7, 7), (300, 44)] as [(Int32, Int32)] {
        let child = try await startTestChild("exit", ["\(returned)"], options: .init(usePidfd: usePidfd))
        #expect(child.usesPidfd == (usePidfd && ChildProcess.isPidfdAvailable))
        let status = try await child.wait()
        #expect(status == .exited(expected), "entry point returned \(returned)")
        #expect(status.returnCode == expected)
      }
    }
  }

  @Test(arguments: pidfdModes)
  func deathBySignalIsReported(usePidfd: Bool) async throws {
    try await withWatchdog {
      for signal in [SIGKILL, SIGTERM, SIGSEGV] {
        let child = try await startTestChild("raise", ["\(signal)"], options: .init(usePidfd: usePidfd))
        let status = try await child.wait()
        // The core flag is whatever the kernel reported (it depends on `ulimit -c`).
        guard case .signaled(let received, _) = status else {
          Issue.record("signal \(signal): expected death by signal, got \(status)")
          continue
        }
        #expect(received == signal)
        #expect(status.returnCode == -signal)
      }
    }
  }

  @Test(arguments: pidfdModes)
  func sentSignalReachesTheChildsHandler(usePidfd: Bool) async throws {
    try await withWatchdog {
      let pipe = try Pipe()
      defer { pipe.closeReadEnd() }
      let child = try await startTestChild(
        "sigterm-101", fileDescriptors: [3: pipe.writeEnd], options: .init(usePidfd: usePidfd))
      pipe.closeWriteEnd()
      #expect(try await pipe.readLine() == "installed\n")
      #expect(try child.send(signal: SIGTERM))
      #expect(try await child.wait() == .exited(101))
    }
  }

  @Test(arguments: pidfdModes)
  func sendingToAnExitedChildIsANoOp(usePidfd: Bool) async throws {
    try await withWatchdog {
      let child = try await startTestChild("exit", ["0"], options: .init(usePidfd: usePidfd))
      #expect(try await child.wait() == .exited(0))
      #expect(try child.send(signal: SIGTERM) == false)
      #expect(try child.send(signal: SIGKILL) == false)
      #expect(child.exitStatus == .exited(0))
    }
  }

  @Test(arguments: pidfdModes)
  func manyConcurrentWaitersAllGetTheSameStatus(usePidfd: Bool) async throws {
    try await withWatchdog {
      let child = try await startTestChild("sleep", options: .init(usePidfd: usePidfd))
      #expect(child.exitStatus == nil)
      let statuses = try await withThrowingTaskGroup(of: ChildProcess.ExitStatus.self) { group in
        for _ in 0..<50 {
          group.addTask { try await child.wait() }
        }
        try child.send(signal: SIGKILL)
        return try await group.reduce(into: []) { $0.append($1) }
      }
      #expect(statuses.count == 50)
      #expect(statuses.allSatisfy { $0 == .signaled(SIGKILL, coreDumped: false) })
      // A late waiter gets the same answer at once.
      #expect(try await child.wait() == .signaled(SIGKILL, coreDumped: false))
    }
  }

  @Test(arguments: pidfdModes)
  func cancelledWaitThrowsAndLeavesTheChildRunning(usePidfd: Bool) async throws {
    try await withWatchdog {
      let child = try await startTestChild("sleep", options: .init(usePidfd: usePidfd))
      let waiter = Task { try await child.wait() }
      waiter.cancel()
      await #expect(throws: CancellationError.self) { try await waiter.value }
      #expect(try child.send(signal: 0), "the child must still be alive after a cancelled wait")
      #expect(child.exitStatus == nil)
      try child.send(signal: SIGKILL)
      #expect(try await child.wait() == .signaled(SIGKILL, coreDumped: false))
    }
  }

  @Test func invalidSignalNumberIsAnInvalidArgument() async throws {
    try await withWatchdog {
      let child = try await startTestChild("sleep")
      defer { _ = child }
      let error = #expect(throws: AsyncToolsError.self) { try child.send(signal: 1000) }
      #expect(error?.code == .invalidArgument)
      await killAndReap(child)
    }
  }

  @Test func invalidSignalNumberIsAnInvalidArgumentAlsoAfterTheChildExited() async throws {
    try await withWatchdog {
      let child = try await ChildProcess.spawn(executable: "/bin/true")
      _ = try await child.wait()
      for signal: Int32 in [-1, 65, 1000] {
        let error = #expect(throws: AsyncToolsError.self) { try child.send(signal: signal) }
        #expect(error?.code == .invalidArgument, "signal \(signal)")
      }
    }
  }

  @Test(arguments: pidfdModes)
  func twoHundredConcurrentChildrenAreAllReapedWithNoZombieLeft(usePidfd: Bool) async throws {
    // The fallback costs a thread per child: keep its share smaller.
    let count = usePidfd ? 200 : 50
    try await withWatchdog(seconds: 60) {
      let results = try await withThrowingTaskGroup(of: (Int32, Int32, ChildProcess.ExitStatus).self) { group in
        for index in 0..<count {
          group.addTask {
            let code = Int32(index % 256)
            let child = try await ChildProcess.spawn(
              executable: "/bin/sh", arguments: ["-c", "exit \(code)"], options: .init(usePidfd: usePidfd))
            return (child.pid, code, try await child.wait())
          }
        }
        return try await group.reduce(into: []) { $0.append($1) }
      }
      #expect(results.count == count)
      for (pid, code, status) in results {
        #expect(status == .exited(code))
        #expect(!isUnreapedChild(pid), "process \(pid) is a zombie")
      }
    }
  }

  @Test func droppedChildIsReapedAnyway() async throws {
    try await withWatchdog {
      let pipe = try Pipe()
      defer { pipe.closeReadEnd() }
      var pid: Int32 = 0
      do {
        let child = try await startTestChild("write-fd", ["3", "bye"], fileDescriptors: [3: pipe.writeEnd])
        pid = child.pid
      }
      pipe.closeWriteEnd()
      // End of file: the child exited. The monitor reaps it although nobody holds the object.
      // Reaping has no event a test can observe from outside (a pidfd only says "exited"), so this
      // polls for the pid to disappear, with a bound.
      #expect(try await pipe.read() == "bye")
      var reaped = false
      for _ in 0..<2000 where !reaped {
        reaped = !isUnreapedChild(pid) && kill(pid, 0) != 0
        if !reaped { try await Task.sleep(for: .milliseconds(5)) }
      }
      #expect(reaped, "process \(pid) was not reaped")
    }
  }
}
#endif
