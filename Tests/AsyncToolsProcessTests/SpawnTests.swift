#if os(Linux)
import AsyncTools
import Glibc
import Testing

@testable import AsyncToolsProcess

/// Starting external programs with `posix_spawn`.
@Suite struct SpawnTests {
  @Test func missingExecutableThrowsAnErrorNamingThePath() async throws {
    try await withWatchdog {
      let error = await #expect(throws: ProcessError.self) {
        _ = try await ChildProcess.spawn(executable: "/nonexistent/asynctools-missing")
      }
      #expect(error == .spawnFailed(executable: "/nonexistent/asynctools-missing", errno: ENOENT))
      #expect(error?.description.contains("/nonexistent/asynctools-missing") == true)
    }
  }

  @Test func bareNameIsLookedUpInPath() async throws {
    try await withWatchdog {
      let child = try await ChildProcess.spawn(executable: "sh", arguments: ["-c", "exit 4"])
      #expect(try await child.wait() == .exited(4))
    }
  }

  @Test func argumentsEnvironmentAndStandardOutputReachTheChild() async throws {
    try await withWatchdog {
      let pipe = try Pipe()
      defer { pipe.closeReadEnd() }
      let child = try await ChildProcess.spawn(
        executable: "/bin/sh", arguments: ["-c", "printf '%s|%s' \"$GREETING\" \"$1\"", "sh", "a b"],
        environment: ["GREETING": "héllo wörld", "PATH": "/usr/bin:/bin"],
        fileDescriptors: [1: pipe.writeEnd])
      pipe.closeWriteEnd()
      #expect(try await pipe.read() == "héllo wörld|a b")
      #expect(try await child.wait() == .exited(0))
    }
  }

  @Test func workingDirectoryIsApplied() async throws {
    try await withWatchdog {
      let pipe = try Pipe()
      defer { pipe.closeReadEnd() }
      let child = try await ChildProcess.spawn(
        executable: "/bin/pwd", workingDirectory: "/usr/bin", fileDescriptors: [1: pipe.writeEnd])
      pipe.closeWriteEnd()
      #expect(try await pipe.read() == "/usr/bin\n")
      #expect(try await child.wait() == .exited(0))
    }
  }

  @Test func missingWorkingDirectoryThrowsAnErrorNamingTheDirectory() async throws {
    try await withWatchdog {
      let error = await #expect(throws: ProcessError.self) {
        _ = try await ChildProcess.spawn(executable: "/bin/pwd", workingDirectory: "/nonexistent/asynctools-dir")
      }
      #expect(error == .workingDirectoryUnavailable("/nonexistent/asynctools-dir", errno: ENOENT))
    }
  }

  @Test func ownProcessGroupMakesTheChildAGroupLeader() async throws {
    try await withWatchdog {
      let own = try await ChildProcess.spawn(
        executable: "/bin/sleep", arguments: ["100"], options: .init(processGroup: .own))
      let inherited = try await ChildProcess.spawn(executable: "/bin/sleep", arguments: ["100"])
      #expect(getpgid(own.pid) == own.pid)
      #expect(getpgid(inherited.pid) == getpgrp())
      await killAndReap(own)
      await killAndReap(inherited)
    }
  }

  @Test func childStartsWithDefaultSignalDispositions() async throws {
    // An ignored disposition survives exec unless spawn resets it: ignore SIGXCPU here (nothing in
    // the tests uses it), and check the child still dies of it.
    try await withWatchdog {
      let previous = signal(SIGXCPU, SIG_IGN)
      defer { signal(SIGXCPU, previous) }
      let child = try await ChildProcess.spawn(executable: "/bin/sleep", arguments: ["100"])
      try child.send(signal: SIGXCPU)
      let status = try await child.wait()
      guard case .signaled(SIGXCPU, _) = status else {
        Issue.record("expected death by SIGXCPU, got \(status)")
        return
      }
    }
  }

  @Test func blockedSignalStaysPendingInsteadOfKillingTheChild() async throws {
    try await withWatchdog {
      let child = try await ChildProcess.spawn(
        executable: "/bin/sleep", arguments: ["100"], options: .init(blockedSignals: [SIGTERM, SIGUSR1]))
      let bit = { (signal: Int32) -> UInt64 in 1 << UInt64(signal - 1) }
      let blocked = try #require(signalMask(of: child.pid, field: "SigBlk"))
      #expect(blocked == bit(SIGTERM) | bit(SIGUSR1))
      try child.send(signal: SIGTERM)
      let pending = try #require(signalMask(of: child.pid, field: "ShdPnd"))
      #expect(pending & bit(SIGTERM) != 0, "SIGTERM must be pending, not delivered")
      try child.send(signal: SIGKILL)
      #expect(try await child.wait() == .signaled(SIGKILL, coreDumped: false))
    }
  }

  @Test func unblockedChildHasAnEmptySignalMask() async throws {
    try await withWatchdog {
      let child = try await ChildProcess.spawn(executable: "/bin/sleep", arguments: ["100"])
      #expect(signalMask(of: child.pid, field: "SigBlk") == 0)
      await killAndReap(child)
    }
  }

  @Test(arguments: [Int32(0), 65, -1])
  func outOfRangeBlockedSignalIsAnInvalidArgument(signal: Int32) async throws {
    let error = await #expect(throws: AsyncToolsError.self) {
      _ = try await ChildProcess.spawn(executable: "/bin/true", options: .init(blockedSignals: [SIGTERM, signal]))
    }
    #expect(error?.code == .invalidArgument)
  }

  @Test func swappedDescriptorMappingsDoNotClobberEachOther() async throws {
    // child fd A ← parent fd B and child fd B ← parent fd A: a naive dup2 sequence would lose one.
    try await withWatchdog {
      let first = try Pipe()
      let second = try Pipe()
      defer {
        first.closeReadEnd()
        second.closeReadEnd()
      }
      let (a, b) = (first.writeEnd, second.writeEnd)
      for (fd, text) in [(a, "one"), (b, "two")] {
        let child = try await startTestChild("write-fd", ["\(fd)", text], fileDescriptors: [a: b, b: a])
        #expect(try await child.wait() == .exited(0))
      }
      first.closeWriteEnd()
      second.closeWriteEnd()
      #expect(try await first.read() == "two")
      #expect(try await second.read() == "one")
    }
  }

  @Test(arguments: [true, false])
  func otherDescriptorsAreClosedUnlessAskedOtherwise(closeOtherDescriptors: Bool) async throws {
    try await withWatchdog {
      // A descriptor opened without O_CLOEXEC, as careless code elsewhere in a program might.
      var fds: [Int32] = [-1, -1]
      try #require(pipe(&fds) == 0)
      defer {
        close(fds[0])
        close(fds[1])
      }
      let child = try await startTestChild(
        "is-fd-open", ["\(fds[1])"], options: .init(closeOtherDescriptors: closeOtherDescriptors))
      #expect(try await child.wait() == .exited(closeOtherDescriptors ? 0 : 1))
    }
  }

  @Test func parentDeathSignalIsRejectedForExternalExecutables() async throws {
    let error = await #expect(throws: AsyncToolsError.self) {
      _ = try await ChildProcess.spawn(executable: "/bin/true", options: .init(parentDeathSignal: SIGTERM))
    }
    #expect(error?.code == .invalidArgument)
  }

  @Test func outOfRangeParentDeathSignalIsAnInvalidArgument() async throws {
    for signal in [0, 65, -1] as [Int32] {
      let error = await #expect(throws: AsyncToolsError.self) {
        _ = try await startTestChild("exit", ["0"], options: .init(parentDeathSignal: signal))
      }
      #expect(error?.code == .invalidArgument)
    }
  }

  @Test func negativeDescriptorIsAnInvalidArgument() async throws {
    for mapping in [[-1: 1], [3: -2]] as [[Int32: Int32]] {
      let error = await #expect(throws: AsyncToolsError.self) {
        _ = try await ChildProcess.spawn(executable: "/bin/true", fileDescriptors: mapping)
      }
      #expect(error?.code == .invalidArgument)
    }
  }

  @Test func closedParentDescriptorIsAnInvalidArgument() async throws {
    let error = await #expect(throws: AsyncToolsError.self) {
      _ = try await ChildProcess.spawn(executable: "/bin/true", fileDescriptors: [3: 987_654])
    }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains("987654") == true)
  }

  @Test func nulInAnArgumentIsAnInvalidArgument() async throws {
    let error = await #expect(throws: AsyncToolsError.self) {
      _ = try await ChildProcess.spawn(executable: "/bin/true", arguments: ["a\0b"])
    }
    #expect(error?.code == .invalidArgument)
  }

  @Test func malformedEnvironmentNameIsAnInvalidArgument() async throws {
    for name in ["", "A=B"] {
      let error = await #expect(throws: AsyncToolsError.self) {
        _ = try await ChildProcess.spawn(executable: "/bin/true", environment: [name: "x"])
      }
      #expect(error?.code == .invalidArgument)
    }
  }
}
#endif
