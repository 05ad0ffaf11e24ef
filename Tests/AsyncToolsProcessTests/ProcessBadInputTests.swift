#if os(Linux)
import AsyncTools
import Glibc
import Testing

@testable import AsyncToolsProcess

/// Rows of the bad-input table in RELIABILITY.md for processes that the other process suites do not pin.
@Suite struct ProcessBadInputTests {
  @Test func spawningAnEntryPointWithAnEmptyNameIsAnInvalidArgument() async {
    let error = await #expect(throws: AsyncToolsError.self) {
      _ = try await ChildProcess.spawn(executable: "/bin/true", entry: "")
    }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains("entry point") == true)
  }

  @Test func anEmptyExecutablePathIsASpawnFailureNotACrash() async {
    let error = await #expect(throws: ProcessError.self) {
      _ = try await ChildProcess.spawn(executable: "")
    }
    guard case .spawnFailed(let executable, _)? = error else {
      Issue.record("expected spawnFailed, got \(String(describing: error))")
      return
    }
    #expect(executable == "")
  }

  @Test func aNonExecutableFileIsASpawnFailureNamingIt() async {
    let error = await #expect(throws: ProcessError.self) {
      _ = try await ChildProcess.spawn(executable: "/etc/hostname")
    }
    guard case .spawnFailed(let executable, let code)? = error else {
      Issue.record("expected spawnFailed, got \(String(describing: error))")
      return
    }
    #expect(executable == "/etc/hostname")
    #expect(code == EACCES || code == ENOEXEC, "errno \(code)")
  }

  @Test func waitingAgainAfterTheExitReturnsTheSameStatusAndSignalsAreNoOps() async throws {
    let child = try await ChildProcess.spawn(executable: "/bin/sh", arguments: ["-c", "exit 3"])
    let first = try await child.wait()
    let second = try await child.wait()
    #expect(first == second)
    #expect(first == .exited(3))
    #expect(try child.send(signal: SIGTERM) == false)
  }
}
#endif
