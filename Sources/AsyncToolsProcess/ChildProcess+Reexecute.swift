#if os(Linux)
import AsyncTools
import CAsyncToolsShims
import Glibc

extension ChildProcess {
  /// The parent side of re-execution, shared by ``fork(entry:arguments:environment:fileDescriptors:options:)``
  /// and AsyncToolsServer's worker processes: starts `executable` with the handshake of
  /// ``ReexecutionEnvironment`` in its environment and a readiness pipe right above the passed
  /// descriptors, and returns at once with the child and its ``Readiness`` (not awaited here).
  ///
  /// - Parameters:
  ///   - argv: the whole argument vector, `argv[0]` included.
  ///   - target: the entry point or role the child is asked to become.
  ///   - arguments: handed to the child through the handshake (any strings without NUL).
  ///   - options: ``Options/parentDeathSignal`` is armed by the child before its `main` runs.
  ///   - viaForkServer: start the child through `executable`'s fork server when ``ForkServer`` can
  ///     (else, and when it cannot, `executable` is re-executed).
  package static func reexecute(
    executable: String,
    argv: [String],
    target: ReexecutionEnvironment.Target,
    arguments: [String],
    environment: [String: String]?,
    workingDirectory: String? = nil,
    fileDescriptors: [Int32: Int32],
    options: Options,
    viaForkServer: Bool = false
  ) async throws -> (ChildProcess, Readiness) {
    try options.validate()
    try SpawnRequest.validate(fileDescriptors: fileDescriptors)
    if arguments.contains(where: { $0.utf8.contains(0) }) {
      throw AsyncToolsError.invalidArgument("arguments must not contain NUL characters")
    }
    // Handshake variables from the caller's environment (or ours, if we are an entry point that
    // forks again) must not shadow the ones added below.
    var variables = ReexecutionEnvironment.removingHandshake(
      from: try environment.map(environmentStrings) ?? currentEnvironment())

    var pipeFDs: [Int32] = [-1, -1]
    guard asynctools_pipe2(&pipeFDs, O_CLOEXEC | O_NONBLOCK) == 0 else {
      throw ProcessError.systemCallFailed("pipe2", errno: errno)
    }
    let (readEnd, writeEnd) = (pipeFDs[0], pipeFDs[1])
    // Once started only the child holds it: its exit is end of file. (Closed once, here or below.)
    var writeEndOpen = true
    defer { if writeEndOpen { close(writeEnd) } }
    // The child's end goes right above every descriptor the caller passes.
    let readyFD = max(2, fileDescriptors.keys.max() ?? 2) + 1
    var descriptors = fileDescriptors
    descriptors[readyFD] = writeEnd

    let handshake = ReexecutionEnvironment(
      target: target, arguments: arguments, readyFD: readyFD,
      parentDeath: options.parentDeathSignal.map { .init(signal: $0, parent: getpid()) })
    variables += handshake.variables
    let request = SpawnRequest(
      executable: executable, arguments: argv, environment: variables, workingDirectory: workingDirectory,
      fileDescriptors: descriptors, closeOtherDescriptors: options.closeOtherDescriptors,
      processGroup: options.processGroup, blockedSignals: options.blockedSignals)
    let child: ChildProcess
    do {
      try request.validateStrings()
      let useServer = viaForkServer && options.useForkServer && options.closeOtherDescriptors && workingDirectory == nil
      let outcome: ForkServer.Outcome =
        useServer ? try await ForkServer.fork(request, readyFD: readyFD, usePidfd: options.usePidfd) : .unavailable
      switch outcome {
      case .forked(let forked):
        child = forked
      case .unavailable:
        child = try await launch(request, usePidfd: options.usePidfd)
      case .lost:
        // The server died during the request: a child it made announces itself on the pipe.
        close(writeEnd)
        writeEndOpen = false
        guard let recovered = try await ForkServer.recover(readEnd: readEnd, usePidfd: options.usePidfd) else {
          close(readEnd)  // no child was made: start over (a new server, or re-execution)
          return try await reexecute(
            executable: executable, argv: argv, target: target, arguments: arguments, environment: environment,
            workingDirectory: workingDirectory, fileDescriptors: fileDescriptors, options: options,
            viaForkServer: viaForkServer)
        }
        child = recovered
      }
    } catch {
      close(readEnd)
      throw error
    }
    return (child, Readiness(fd: readEnd, child: child))
  }

  /// `/proc/self/exe`: the running program, even if its file was replaced or deleted since it started.
  package static let selfExecutable = "/proc/self/exe"

  /// The path this program was started from, resolved before `main` ran, if the file there still
  /// exists; else ``selfExecutable``. Re-executing it after the program was rebuilt in place starts
  /// the new build (what a rolling restart wants), where `/proc/self/exe` keeps the old one.
  package static var startupExecutable: String {
    guard let path = asynctools_startup_executable_path().map({ String(cString: $0) }),
      access(path, X_OK) == 0
    else { return selfExecutable }
    return path
  }

  /// A re-executed child's readiness: the first byte it writes to the readiness pipe, raced
  /// against its exit, so a child that dies before writing (or leaked the pipe to a grandchild and
  /// died) cannot hang the parent, and against an optional timeout, so one that hangs cannot either.
  ///
  /// Holds the parent's end of the pipe and closes it when released.
  package final class Readiness: Sendable {
    package enum Outcome: Sendable, Hashable {
      /// The child wrote its ready byte.
      case ready
      /// The child does not know the entry point it was asked for.
      case unknownEntry
      /// The child exited, closed the pipe or wrote garbage without becoming ready.
      case notReady
      /// The timeout passed first; the child is still running.
      case timedOut
    }

    private let fd: Int32
    private let child: ChildProcess

    fileprivate init(fd: Int32, child: ChildProcess) {
      self.fd = fd
      self.child = child
    }

    deinit { close(fd) }

    /// Waits for the child's first byte, its exit, or `timeout` (`nil`: no limit). Does not signal
    /// the child whatever happens.
    ///
    /// - Throws: `CancellationError` when the calling task is cancelled;
    ///   ``ProcessError/statusUnavailable(pid:)`` if someone else reaped the child.
    package func wait(timeout: Duration?) async throws -> Outcome {
      let child = self.child
      let monitor = try ProcessMonitor.shared()
      let deadline = timeout.map { ContinuousClock.now.advanced(by: $0) }
      let fd = self.fd
      while true {
        let event = try await monitor.waitReadable(fd, orExitOf: child, until: deadline)
        var byte: UInt8 = 0
        let count = read(fd, &byte, 1)
        if count == 1 && byte == ForkServer.pidByte {
          // A child of the fork server said who it is (its pid follows in the same write): not readiness.
          var pid: Int32 = 0
          guard read(fd, &pid, 4) == 4 else { return .notReady }
          continue
        }
        if count == 1 && byte == ReexecutionEnvironment.readyByte { return .ready }
        if count == 1 && byte == ReexecutionEnvironment.unknownEntryByte { return .unknownEntry }
        if count < 0 && (errno == EAGAIN || errno == EINTR) {
          if event == .timedOut { return .timedOut }
          if event == .readable { continue }  // a spurious wake-up: wait again
        }
        return .notReady
      }
    }
  }
}
#endif
