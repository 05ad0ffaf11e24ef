#if os(Linux)
import AsyncTools
import CAsyncToolsShims
import Glibc
import Synchronization

extension ChildProcess {
  /// Starts an external program and returns as soon as it is running.
  ///
  /// ```swift
  /// let child = try await ChildProcess.spawn(executable: "/bin/sh", arguments: ["-c", "exit 7"])
  /// let status = try await child.wait()  // .exited(7)
  /// ```
  ///
  /// The child starts with every signal disposition at its default (an ignored SIGPIPE or SIGINT in
  /// this process does not leak into it) and no blocked signal except ``Options/blockedSignals``.
  ///
  /// - Parameters:
  ///   - executable: a path, or a bare name (no `/`) looked up in `PATH`.
  ///   - arguments: `argv[1...]`; `argv[0]` is `executable`.
  ///   - environment: the child's whole environment; `nil` (the default) inherits this process's.
  ///   - workingDirectory: where the child starts; `nil` (the default) inherits this process's.
  ///   - fileDescriptors: descriptors to pass, as *child descriptor* ← *parent descriptor*:
  ///     `[1: pipeWriteEnd]` redirects the child's standard output, `[3: listeningSocket]` hands it a
  ///     socket as fd 3. The parent's descriptors are left untouched. Standard input, output and
  ///     error are inherited unless mapped.
  ///   - options: process group, descriptor closing, pidfd use. ``Options/parentDeathSignal`` must be
  ///     `nil`: an external program cannot set it for itself (use an entry point instead).
  /// - Throws: ``ProcessError/spawnFailed(executable:errno:)`` naming the path when it cannot start
  ///   (for example `ENOENT`); `AsyncToolsError` `.invalidArgument` for a negative or closed
  ///   descriptor, a string containing NUL, or a parent-death signal.
  public static func spawn(
    executable: String,
    arguments: [String] = [],
    environment: [String: String]? = nil,
    workingDirectory: String? = nil,
    fileDescriptors: [Int32: Int32] = [:],
    options: Options = Options()
  ) async throws -> ChildProcess {
    try options.validate()
    if options.parentDeathSignal != nil {
      throw AsyncToolsError.invalidArgument(
        "parentDeathSignal is not available for an external executable (\(executable)): posix_spawn cannot set "
          + "it in the child; start an entry point with ChildProcess.fork or spawn(executable:entry:) instead")
    }
    try SpawnRequest.validate(fileDescriptors: fileDescriptors)
    let request = SpawnRequest(
      executable: executable,
      arguments: [executable] + arguments,
      environment: try environment.map(environmentStrings),
      workingDirectory: workingDirectory,
      fileDescriptors: fileDescriptors,
      closeOtherDescriptors: options.closeOtherDescriptors,
      processGroup: options.processGroup,
      blockedSignals: options.blockedSignals)
    try request.validateStrings()
    return try await launch(request, usePidfd: options.usePidfd)
  }

  /// Whether this kernel has pidfds with `waitid(P_PIDFD)` (Linux 5.4 and later), probed once.
  public static var isPidfdAvailable: Bool { pidfdProbe }

  private static let pidfdProbe: Bool = {
    let pidfd = asynctools_pidfd_open(getpid(), 0)
    guard pidfd >= 0 else { return false }  // ENOSYS before 5.3 (or EPERM under a seccomp filter)
    defer { close(pidfd) }
    // This process is not its own child: ECHILD proves P_PIDFD is understood; EINVAL means < 5.4.
    var siPid: pid_t = 0
    var siCode: Int32 = 0
    var siStatus: Int32 = 0
    return asynctools_waitid_pidfd(pidfd, WEXITED | WNOHANG, &siPid, &siCode, &siStatus) == 0 || errno == ECHILD
  }()

  /// Spawns on the monitor thread and starts watching the child.
  static func launch(_ request: SpawnRequest, usePidfd: Bool) async throws -> ChildProcess {
    let monitor = try ProcessMonitor.shared()
    let wantPidfd = usePidfd && isPidfdAvailable
    let (pid, pidfd) = try await monitor.perform { request.run(openPidfd: wantPidfd) }.get()
    return try adopt(pid: pid, pidfd: pidfd, monitor: monitor)
  }

  /// Starts watching a child of this process that was just started (by `posix_spawn` or by the fork
  /// server), through `pidfd` if it is valid, else on a dedicated thread.
  static func adopt(pid: Int32, pidfd: Int32, monitor: ProcessMonitor) throws -> ChildProcess {
    let child = ChildProcess(pid: pid, pidfd: pidfd)
    if pidfd >= 0 {
      do {
        try monitor.watch(child, pidfd: pidfd)
        return child
      } catch {
        // Could not watch the pidfd (ENOMEM, …): fall back to a thread; `send` still uses the pidfd.
      }
    }
    let result = startDetachedThread(name: "asynctools-wait") { child.waitOnDedicatedThread() }
    guard result == 0 else {
      // Nobody could ever reap it: do not leave a zombie behind.
      kill(pid, SIGKILL)
      var status: Int32 = 0
      waitpid(pid, &status, 0)
      throw ProcessError.systemCallFailed("pthread_create", errno: result)
    }
    return child
  }

  static func environmentStrings(_ environment: [String: String]) throws(AsyncToolsError) -> [String] {
    var strings: [String] = []
    strings.reserveCapacity(environment.count)
    for (name, value) in environment.sorted(by: { $0.key < $1.key }) {
      guard !name.isEmpty, !name.contains("=") else {
        throw .invalidArgument("environment variable names must be non-empty and contain no '=', got \"\(name)\"")
      }
      strings.append("\(name)=\(value)")
    }
    return strings
  }

  /// This process's environment, to extend and pass as `environment`
  /// (`var environment = ChildProcess.inheritedEnvironment; environment["MODE"] = "test"`).
  public static var inheritedEnvironment: [String: String] {
    var result: [String: String] = [:]
    for entry in currentEnvironment() {
      guard let equals = entry.firstIndex(of: "=") else { continue }
      result[String(entry[..<equals])] = String(entry[entry.index(after: equals)...])
    }
    return result
  }

  /// This process's environment as "NAME=value" strings.
  package static func currentEnvironment() -> [String] {
    var strings: [String] = []
    var pointer = environ
    while let entry = pointer.pointee {
      strings.append(String(cString: entry))
      pointer += 1
    }
    return strings
  }
}

extension SpawnRequest {
  func validateStrings() throws(AsyncToolsError) {
    let all = [executable] + arguments + (environment ?? []) + (workingDirectory.map { [$0] } ?? [])
    if let bad = all.first(where: { $0.utf8.contains(0) }) {
      throw .invalidArgument(
        "arguments, environment and paths must not contain NUL characters: \(bad.debugDescription)")
    }
  }
}
#endif
