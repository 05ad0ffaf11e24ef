#if os(Linux)
import AsyncTools
import CAsyncToolsShims
import Glibc
import Synchronization

/// The environment a parent uses to tell a re-executed child which entry point to run.
enum ChildEnvironment {
  static let entry = "ASYNCTOOLS_ENTRY"
  static let arguments = "ASYNCTOOLS_ARGS"
  static let readyFD = "ASYNCTOOLS_READY_FD"
  static let parentPID = "ASYNCTOOLS_PARENT_PID"
  static let deathSignal = "ASYNCTOOLS_DEATH_SIGNAL"
  static let all = [entry, arguments, readyFD, parentPID, deathSignal]

  /// Handshake bytes written to the readiness pipe.
  static let readyByte: UInt8 = 0x52  // "R": the entry point is about to run
  static let unknownEntryByte: UInt8 = 0x55  // "U": no such entry point
  /// The exit code of a child asked for an entry point it does not have.
  static let unknownEntryExitCode: Int32 = 127
  /// The exit code of a child whose handshake environment is malformed.
  static let malformedExitCode: Int32 = 126

  /// `count:hex,hex,…` — hex of each argument's UTF-8, so any string survives the environment.
  static func encode(_ arguments: [String]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var bytes: [UInt8] = Array("\(arguments.count):".utf8)
    for (index, argument) in arguments.enumerated() {
      if index > 0 { bytes.append(UInt8(ascii: ",")) }
      for byte in argument.utf8 {
        bytes.append(digits[Int(byte >> 4)])
        bytes.append(digits[Int(byte & 0xF)])
      }
    }
    return String(decoding: bytes, as: UTF8.self)
  }

  static func decode(_ encoded: String) -> [String]? {
    let utf8 = Array(encoded.utf8)
    guard let colon = utf8.firstIndex(of: UInt8(ascii: ":")),
      let count = Int(String(decoding: utf8[..<colon], as: UTF8.self)), count >= 0
    else { return nil }
    if count == 0 { return colon == utf8.count - 1 ? [] : nil }
    let fields = utf8[(colon + 1)...].split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
    guard fields.count == count else { return nil }
    var result: [String] = []
    for field in fields {
      guard field.count % 2 == 0 else { return nil }
      var bytes: [UInt8] = []
      var index = field.startIndex
      while index < field.endIndex {
        guard let high = hexValue(field[index]), let low = hexValue(field[index + 1]) else { return nil }
        bytes.append(high << 4 | low)
        index += 2
      }
      result.append(String(decoding: bytes, as: UTF8.self))
    }
    return result
  }

  private static func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    default: nil
    }
  }
}

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
  /// In a normal process it returns at once. In a child started by
  /// ``fork(entry:arguments:environment:fileDescriptors:options:)`` it never returns:
  /// 1. it removes the `ASYNCTOOLS_*` variables from the environment (so the child's own children
  ///    do not mistake themselves for entry points);
  /// 2. it sets the parent-death signal, if requested, and checks the parent is still alive;
  /// 3. it reports readiness to the parent (or that the entry point is unknown, exit code 127);
  /// 4. it runs the entry point and exits with its code (1 if it throws).
  public static func bootstrap() async {
    let name = EntryPointRegistry.shared.withLock { registry -> String? in
      registry.bootstrapped = true
      return getenv(ChildEnvironment.entry).map { String(cString: $0) }
    }
    guard let name else { return }
    let encodedArguments = getenv(ChildEnvironment.arguments).map { String(cString: $0) }
    let readyFD = getenv(ChildEnvironment.readyFD).flatMap { Int32(String(cString: $0)) }
    let parentPID = getenv(ChildEnvironment.parentPID).flatMap { Int32(String(cString: $0)) }
    let deathSignal = getenv(ChildEnvironment.deathSignal).flatMap { Int32(String(cString: $0)) }
    for variable in ChildEnvironment.all { unsetenv(variable) }

    guard let readyFD, let encodedArguments, let arguments = ChildEnvironment.decode(encodedArguments) else {
      printError("malformed \(ChildEnvironment.all.joined(separator: "/")) environment for entry point \"\(name)\"")
      exit(ChildEnvironment.malformedExitCode)
    }
    // The descriptor must not leak into this child's own children.
    _ = fcntl(readyFD, F_SETFD, FD_CLOEXEC)

    if let deathSignal {
      _ = asynctools_set_parent_death_signal(deathSignal)
      // The parent may have died before prctl: then the signal will never come, so deliver it now.
      if let parentPID, getppid() != parentPID {
        kill(getpid(), deathSignal)
        exit(ChildEnvironment.malformedExitCode)
      }
    }

    let body = EntryPointRegistry.shared.withLock { registry -> EntryPointRegistry.Body? in
      registry.currentEntryPoint = name
      return registry.entries[name]
    }
    guard let body else {
      writeByte(ChildEnvironment.unknownEntryByte, to: readyFD)
      printError("no entry point named \"\(name)\" is registered")
      exit(ChildEnvironment.unknownEntryExitCode)
    }
    writeByte(ChildEnvironment.readyByte, to: readyFD)
    close(readyFD)

    let code: Int32
    do {
      code = try await body(arguments)
    } catch {
      printError("entry point \"\(name)\" failed: \(error)")
      code = 1
    }
    exit(code)
  }

  private static func writeByte(_ byte: UInt8, to fd: Int32) {
    var byte = byte
    while write(fd, &byte, 1) < 0 && errno == EINTR {}
  }

  private static func printError(_ message: String) {
    let program = CommandLine.arguments.first ?? "child"
    var bytes = Array("\(program): \(message)\n".utf8)[...]
    while !bytes.isEmpty {
      let written = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
      if written < 0 && errno == EINTR { continue }
      if written <= 0 { return }
      bytes = bytes.dropFirst(written)
    }
  }
}
#endif
