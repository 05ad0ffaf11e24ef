#if os(Linux)
import Glibc

/// A failure to start, hand-shake with or reap a child process.
///
/// Invalid arguments (a negative file descriptor, a signal number out of range, …) are reported as
/// `AsyncToolsError` with code `.invalidArgument` instead.
public enum ProcessError: Error, Sendable, Hashable, CustomStringConvertible {
  /// `posix_spawn` failed, for example with `ENOENT` when `executable` does not exist or `EACCES`
  /// when it is not executable.
  case spawnFailed(executable: String, errno: Int32)
  /// The child could not change to its working directory (missing, not a directory, no permission).
  case workingDirectoryUnavailable(String, errno: Int32)
  /// A child started with an entry point died before it reported being ready (it crashed during
  /// start-up, was killed, or its `main` does not call ``ChildProcess/bootstrap()``).
  case diedBeforeReady(ChildProcess.ExitStatus)
  /// A child started with an entry point did not report that it is ready within
  /// ``ChildProcess/Options/readinessTimeout`` (this duration); it was killed with SIGKILL and reaped.
  case readinessTimedOut(Duration)
  /// The child (or, for ``ChildProcess/fork(entry:arguments:environment:fileDescriptors:options:)``,
  /// this process) has no entry point registered under this name.
  case unknownEntryPoint(String)
  /// The child was reaped by someone else (a `waitpid(-1)` or `P_ALL` loop elsewhere in the process),
  /// so its status cannot be known. aiotools reports 255 in this case.
  case statusUnavailable(pid: Int32)
  /// A system call failed unexpectedly.
  case systemCallFailed(String, errno: Int32)

  /// A sentence naming the problem, with the path, entry point or errno involved.
  public var description: String {
    switch self {
    case .spawnFailed(let executable, let code):
      "cannot start \(executable): \(Self.errorString(code))"
    case .workingDirectoryUnavailable(let path, let code):
      "cannot start a child in working directory \(path): \(Self.errorString(code))"
    case .diedBeforeReady(let status):
      "child process died before it was ready: \(status)"
    case .readinessTimedOut(let timeout):
      "child process was not ready within \(timeout); it was killed"
    case .unknownEntryPoint(let name):
      "no entry point named \"\(name)\" is registered (entry points must be registered before bootstrap())"
    case .statusUnavailable(let pid):
      "the exit status of process \(pid) is unavailable: it was reaped elsewhere"
    case .systemCallFailed(let call, let code):
      "\(call) failed: \(Self.errorString(code))"
    }
  }

  static func errorString(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return "\(String(cString: text)) (errno \(code))"
  }
}
#endif
