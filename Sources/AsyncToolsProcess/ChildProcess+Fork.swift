#if os(Linux)
import AsyncTools
import CAsyncToolsShims
import Glibc

extension ChildProcess {
  /// Starts a copy of this program at a registered entry point: aiotools' `afork`, without `fork()`.
  ///
  /// `fork()` is unusable once the Swift runtime runs threads (the child's tasks never run), so the
  /// child is a fresh copy of the program with the entry point's name and arguments in its
  /// environment; the copy's ``bootstrap()`` call at the top of `main` runs the entry point. The copy
  /// is forked by the program's *fork server* — a copy of the program re-executed once, at the first
  /// fork, that stopped before any library initialiser ran — which skips the dynamic loader for
  /// every child (see ``Options/useForkServer`` and the Processes guide); where that is not possible,
  /// `/proc/self/exe` is re-executed. Either way the child is this process's own child. `fork`
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
  /// The handshake cannot hang: readiness is raced against the child's exit and against
  /// ``Options/readinessTimeout`` (30 seconds by default). A child that neither becomes ready nor
  /// dies in that time is killed with SIGKILL and reaped, and the call throws
  /// ``ProcessError/readinessTimedOut(_:)``.
  ///
  /// With ``Options/parentDeathSignal`` set, the child never outlives this process, at any point
  /// of its life: the signal is armed when the child's executable is loaded, before its Swift
  /// runtime and `main` start, and the child then checks that its parent is still this process
  /// (if it died in between, the child delivers the signal to itself).
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
  ///   ``ProcessError/readinessTimedOut(_:)`` when it is not ready within ``Options/readinessTimeout``;
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
    guard !entry.isEmpty else { throw AsyncToolsError.invalidArgument("entry point name must not be empty") }
    let (child, readiness) = try await reexecute(
      executable: executable,
      // argv[0]: this program's own for a fork, so the child reads like its parent in `ps`.
      argv: [executable == selfExecutable ? (CommandLine.arguments.first ?? executable) : executable],
      target: .entryPoint(entry), arguments: arguments, environment: environment,
      workingDirectory: workingDirectory, fileDescriptors: fileDescriptors, options: options, viaForkServer: true)
    try await awaitReadiness(of: child, readiness, entry: entry, timeout: options.readinessTimeout)
    return child
  }

  /// Waits for the handshake; on any outcome but readiness the child is killed (if still running)
  /// and reaped before the error is thrown, so a failed fork leaves nothing behind.
  private static func awaitReadiness(
    of child: ChildProcess, _ readiness: Readiness, entry: String, timeout: Duration?
  ) async throws {
    let outcome: Readiness.Outcome
    do {
      outcome = try await readiness.wait(timeout: timeout)
    } catch {
      // Cancelled during the handshake (or a statusUnavailable from the wait): do not leave a
      // half-started child behind.
      await killAndReap(child)
      throw error
    }
    switch outcome {
    case .ready:
      return
    case .unknownEntry:
      _ = await child.waitUncancellable()
      throw ProcessError.unknownEntryPoint(entry)
    case .timedOut:
      await killAndReap(child)
      throw ProcessError.readinessTimedOut(timeout ?? .zero)
    case .notReady:
      // SIGKILL does not change the status of a child that is already exiting; it stops one that
      // closed the pipe and lives on, so the wait cannot hang.
      _ = try? child.send(signal: SIGKILL)
      throw ProcessError.diedBeforeReady(try await child.waitUncancellable().get())
    }
  }

  private static func killAndReap(_ child: ChildProcess) async {
    _ = try? child.send(signal: SIGKILL)
    _ = await child.waitUncancellable()
  }
}
#endif
