#if os(Linux)
import AsyncTools
import CAsyncToolsShims
import Glibc
import Synchronization

/// The process-wide table of entry points.
struct EntryPointRegistry {
  typealias Body = @Sendable ([String]) async throws -> Int32
  var entries: [String: Body] = [:]
  var bootstrapped = false
  var currentEntryPoint: String?

  static let shared = Locked(EntryPointRegistry())

  mutating func register(_ name: String, _ body: @escaping Body) throws(AsyncToolsError) {
    guard !name.isEmpty else { throw .invalidArgument("entry point name must not be empty") }
    guard !bootstrapped else {
      throw AsyncToolsError(
        code: .invalidState,
        message: "entry point \"\(name)\" registered after ChildProcess.bootstrap(); register entry points first")
    }
    guard entries[name] == nil else {
      throw .invalidArgument("an entry point named \"\(name)\" is already registered")
    }
    entries[name] = body
  }
}

extension ChildProcess {
  /// Registers an entry point that ``fork(entry:arguments:environment:fileDescriptors:options:)``
  /// can start in a re-executed copy of this program.
  ///
  /// Register every entry point at the top of `main`, **before** ``bootstrap()``: the child runs
  /// `main` again from the start, and must have registered the same names by the time
  /// `bootstrap()` looks its entry point up.
  ///
  /// ```swift
  /// try ChildProcess.register(entry: "worker") { arguments in
  ///   try await runWorker(index: Int(arguments[0])!)
  ///   return 0
  /// }
  /// await ChildProcess.bootstrap()
  /// ```
  ///
  /// The body runs in the child with the arguments given to `fork`; its return value is the
  /// child's exit code (the kernel keeps `code & 0xFF`). If it throws, the error is printed to
  /// standard error and the child exits with code 1 (aiotools' convention for an uncaught error).
  /// The body may be synchronous or `async`: the child is a fresh process with a working Swift
  /// runtime.
  ///
  /// - Throws: `AsyncToolsError` `.invalidArgument` for an empty name or a name already registered;
  ///   `.invalidState` after ``bootstrap()`` was called (a child would not see the entry point).
  public static func register(
    entry name: String,
    _ body: @escaping @Sendable (_ arguments: [String]) async throws -> Int32
  ) throws(AsyncToolsError) {
    try EntryPointRegistry.shared.withLock { (registry) throws(AsyncToolsError) in try registry.register(name, body) }
  }

  /// The entry point this process was started at, or `nil` in a normal (parent) process.
  public static var currentEntryPoint: String? {
    EntryPointRegistry.shared.withLock { $0.currentEntryPoint }
  }

  /// Turns a re-executed copy of this program into the requested child; call it once, at the top of
  /// `main`, after registering entry points.
  ///
  /// In a normal process it returns at once (also in a copy re-executed for a role that library
  /// code claims later, such as an AsyncToolsServer worker). In a child started by
  /// ``fork(entry:arguments:environment:fileDescriptors:options:)`` it never returns:
  /// 1. it removes the `ASYNCTOOLS_*` variables from the environment (so the child's own children
  ///    do not mistake themselves for entry points);
  /// 2. it checks the parent is still alive (the parent-death signal, if requested, was armed
  ///    before `main` ran);
  /// 3. it reports readiness to the parent (or that the entry point is unknown, exit code 127);
  /// 4. it runs the entry point and exits with its code (1 if it throws).
  public static func bootstrap() async {
    EntryPointRegistry.shared.withLock { $0.bootstrapped = true }
    guard let child = ReexecutedChild.claimEntryPoint(), case .entryPoint(let name) = child.target else { return }
    let body = EntryPointRegistry.shared.withLock { registry -> EntryPointRegistry.Body? in
      registry.currentEntryPoint = name
      return registry.entries[name]
    }
    guard let body else {
      child.reportUnknownEntry()
      ReexecutedChild.printError("no entry point named \"\(name)\" is registered")
      exit(ReexecutionEnvironment.unknownEntryExitCode)
    }
    child.reportReady()

    let code: Int32
    do {
      code = try await body(child.arguments)
    } catch {
      ReexecutedChild.printError("entry point \"\(name)\" failed: \(error)")
      code = 1
    }
    exit(code)
  }
}
#endif
