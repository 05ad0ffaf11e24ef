#if os(Linux)
import AsyncTools
import CAsyncToolsShims
import Glibc

extension ChildProcess {
  /// Starts a copy of this program at a registered entry point: aiotools' `afork`, without `fork()`.
  ///
  /// `fork()` is unusable once the Swift runtime runs threads (the child's tasks never run), so
  /// this re-executes `/proc/self/exe` with the entry point's name and arguments in its
  /// environment; the copy's ``bootstrap()`` call at the top of `main` runs the entry point. It
  /// returns once the child reported it is ready (its entry point is about to run, with the
  /// parent-death signal set), as aiotools' `afork` does.
  ///
  /// ```swift
  /// try ChildProcess.register(entry: "sum") { arguments in Int32(arguments.count) }
  /// await ChildProcess.bootstrap()
  /// let child = try await ChildProcess.fork(entry: "sum", arguments: ["a", "b"])
  /// try await child.wait()  // .exited(2)
  /// ```
  ///
  /// The handshake cannot hang: readiness is raced against the child's exit.
  ///
  /// - Parameters:
  ///   - entry: a name registered with ``register(entry:_:)``.
  ///   - arguments: handed to the entry point (any strings without NUL).
  ///   - environment: the child's environment; `nil` (the default) inherits this process's.
  ///   - fileDescriptors: descriptors to pass, *child descriptor* ← *parent descriptor*, as for
  ///     ``spawn(executable:arguments:environment:workingDirectory:fileDescriptors:options:)``.
  ///   - options: parent-death signal, process group, descriptor closing, pidfd use.
  /// - Throws: ``ProcessError/unknownEntryPoint(_:)`` when this process registered entry points
  ///   but not `entry` (checked before starting anything) or when the child does not know it;
  ///   ``ProcessError/diedBeforeReady(_:)`` when the child dies before it is ready;
  ///   `CancellationError` when the calling task is cancelled during the handshake (the child is
  ///   then killed with SIGKILL and reaped); `AsyncToolsError` `.invalidArgument` for bad arguments.
  public static func fork(
    entry: String,
    arguments: [String] = [],
    environment: [String: String]? = nil,
    fileDescriptors: [Int32: Int32] = [:],
    options: Options = Options()
  ) async throws -> ChildProcess {
    guard !entry.isEmpty else { throw AsyncToolsError.invalidArgument("entry point name must not be empty") }
    let known = EntryPointRegistry.shared.withLock { $0.entries.isEmpty || $0.entries[entry] != nil }
    guard known else { throw ProcessError.unknownEntryPoint(entry) }
    return try await spawn(
      executable: selfExecutable, entry: entry, arguments: arguments, environment: environment,
      fileDescriptors: fileDescriptors, options: options)
  }

  /// Starts another program built with AsyncToolsProcess at one of its entry points, with the same
  /// readiness handshake as ``fork(entry:arguments:environment:fileDescriptors:options:)``.
  ///
  /// Use it when the program to run is not this one, for example a test helper executable that
  /// calls ``register(entry:_:)`` and ``bootstrap()`` in its `main`. A program that does not call
  /// `bootstrap()` is reported as ``ProcessError/diedBeforeReady(_:)`` once it exits.
  ///
  /// - Parameters: as for ``fork(entry:arguments:environment:fileDescriptors:options:)``, plus
  ///   `executable` (a path) and `workingDirectory`.
  public static func spawn(
    executable: String,
    entry: String,
    arguments: [String] = [],
    environment: [String: String]? = nil,
    workingDirectory: String? = nil,
    fileDescriptors: [Int32: Int32] = [:],
    options: Options = Options()
  ) async throws -> ChildProcess {
    try options.validate()
    guard !entry.isEmpty else { throw AsyncToolsError.invalidArgument("entry point name must not be empty") }
    try SpawnRequest.validate(fileDescriptors: fileDescriptors)
    // Handshake variables from the caller's environment (or ours, if we are an entry point that
    // forks again) must not shadow the ones added below.
    var variables = try (environment.map(environmentStrings) ?? currentEnvironment()).filter { variable in
      !ChildEnvironment.all.contains { variable.hasPrefix($0 + "=") }
    }

    var pipeFDs: [Int32] = [-1, -1]
    guard asynctools_pipe2(&pipeFDs, O_CLOEXEC | O_NONBLOCK) == 0 else {
      throw ProcessError.systemCallFailed("pipe2", errno: errno)
    }
    let (readEnd, writeEnd) = (pipeFDs[0], pipeFDs[1])
    defer { close(readEnd) }
    // The child's end goes right above every descriptor the caller passes.
    let readyFD = max(2, fileDescriptors.keys.max() ?? 2) + 1
    var descriptors = fileDescriptors
    descriptors[readyFD] = writeEnd

    variables.append("\(ChildEnvironment.entry)=\(entry)")
    variables.append("\(ChildEnvironment.arguments)=\(ChildEnvironment.encode(arguments))")
    variables.append("\(ChildEnvironment.readyFD)=\(readyFD)")
    if let signal = options.parentDeathSignal {
      variables.append("\(ChildEnvironment.parentPID)=\(getpid())")
      variables.append("\(ChildEnvironment.deathSignal)=\(signal)")
    }
    let request = SpawnRequest(
      executable: executable,
      // argv[0]: this program's own for a fork, so the child reads like its parent in `ps`.
      arguments: [executable == selfExecutable ? (CommandLine.arguments.first ?? executable) : executable],
      environment: variables,
      workingDirectory: workingDirectory,
      fileDescriptors: descriptors,
      closeOtherDescriptors: options.closeOtherDescriptors,
      processGroup: options.processGroup,
      blockedSignals: options.blockedSignals)
    do {
      try request.validateStrings()
      if arguments.contains(where: { $0.utf8.contains(0) }) {
        throw AsyncToolsError.invalidArgument("arguments must not contain NUL characters")
      }
    } catch {
      close(writeEnd)
      throw error
    }
    let child: ChildProcess
    do {
      child = try await launch(request, usePidfd: options.usePidfd)
      close(writeEnd)  // only the child holds it now: its exit makes the pipe read end of file
    } catch {
      close(writeEnd)
      throw error
    }
    try await awaitReadiness(of: child, entry: entry, pipe: readEnd)
    return child
  }

  /// The running program, even if its file was replaced or deleted since it started.
  static let selfExecutable = "/proc/self/exe"

  private enum HandshakeEvent: Sendable {
    case readable
    case exited
  }

  /// Races the readiness pipe against the child's exit, so a child that dies before writing its
  /// byte (or that leaked the pipe to a grandchild) cannot hang the parent.
  private static func awaitReadiness(of child: ChildProcess, entry: String, pipe: Int32) async throws {
    let monitor = try ProcessMonitor.shared()
    while true {
      let event: HandshakeEvent
      do {
        event = try await withThrowingTaskGroup(of: HandshakeEvent.self) { group in
          group.addTask {
            try await monitor.waitReadable(pipe)
            return .readable
          }
          group.addTask {
            _ = try await child.wait()
            return .exited
          }
          defer { group.cancelAll() }
          return try await group.next()!
        }
      } catch {
        // Cancelled during the handshake (or a statusUnavailable from the wait): do not leave a
        // half-started child behind.
        _ = try? child.send(signal: SIGKILL)
        _ = await child.waitUncancellable()
        throw error
      }

      var byte: UInt8 = 0
      let count = read(pipe, &byte, 1)
      if count == 1 && byte == ChildEnvironment.readyByte { return }
      if count == 1 && byte == ChildEnvironment.unknownEntryByte {
        _ = await child.waitUncancellable()
        throw ProcessError.unknownEntryPoint(entry)
      }
      if count < 0 && (errno == EAGAIN || errno == EINTR) && event == .readable {
        continue  // a spurious wake-up: wait again
      }
      // End of file (the child closed its end, normally by dying), an unexpected byte, or an exit
      // with nothing written. SIGKILL does not change the status of a child that is already exiting;
      // it stops one that closed the pipe and lives on, so the wait below cannot hang.
      _ = try? child.send(signal: SIGKILL)
      let outcome = await child.waitUncancellable()
      throw ProcessError.diedBeforeReady(try outcome.get())
    }
  }
}
#endif
