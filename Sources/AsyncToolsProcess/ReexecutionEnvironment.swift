#if os(Linux)
import AsyncTools
import CAsyncToolsShims
import Glibc

/// The one codec of re-execution: the environment a parent gives a re-executed copy of a program
/// built with AsyncToolsProcess to tell it what to become, and its decoding in the copy.
///
/// Used by ``ChildProcess/fork(entry:arguments:environment:fileDescriptors:options:)`` (an entry
/// point, run by ``ChildProcess/bootstrap()``) and by AsyncToolsServer's worker processes (a *role*,
/// claimed by library code that runs later in `main`, such as `startServer`).
package struct ReexecutionEnvironment: Sendable, Hashable {
  /// What the copy becomes.
  package enum Target: Sendable, Hashable {
    /// A registered entry point, run by `bootstrap()`.
    case entryPoint(String)
    /// A role that library code claims with ``ReexecutedChild/claim(role:)``; `bootstrap()` leaves
    /// it alone.
    case role(String)
  }

  package var target: Target
  package var arguments: [String]
  /// The copy's end of the readiness pipe.
  package var readyFD: Int32
  /// The parent-death signal; armed before `main` by the shim's constructor.
  package var parentDeath: ParentDeath?

  /// A parent-death signal and the parent whose death sends it.
  package struct ParentDeath: Sendable, Hashable {
    package var signal: Int32
    package var parent: Int32

    package init(signal: Int32, parent: Int32) {
      self.signal = signal
      self.parent = parent
    }
  }

  package init(target: Target, arguments: [String], readyFD: Int32, parentDeath: ParentDeath?) {
    self.target = target
    self.arguments = arguments
    self.readyFD = readyFD
    self.parentDeath = parentDeath
  }

  // MARK: Names and bytes

  static let entryVariable = "ASYNCTOOLS_ENTRY"
  static let roleVariable = ASYNCTOOLS_ENV_ROLE
  static let argumentsVariable = "ASYNCTOOLS_ARGS"
  static let readyFDVariable = "ASYNCTOOLS_READY_FD"
  static let parentPIDVariable = ASYNCTOOLS_ENV_PARENT_PID
  static let deathSignalVariable = ASYNCTOOLS_ENV_DEATH_SIGNAL
  /// Every variable of the handshake: removed from a child's environment before the parent adds its
  /// own, and from the copy's environment once decoded.
  package static let allVariables = [
    entryVariable, roleVariable, argumentsVariable, readyFDVariable, parentPIDVariable, deathSignalVariable,
    ASYNCTOOLS_ENV_FORK_SERVER,
  ]

  /// Handshake bytes written to the readiness pipe.
  static let readyByte: UInt8 = 0x52  // "R": ready (an entry point is about to run; a role says when)
  static let unknownEntryByte: UInt8 = 0x55  // "U": no such entry point
  /// The exit code of a child asked for an entry point it does not have.
  static let unknownEntryExitCode: Int32 = 127
  /// The exit code of a child whose handshake environment is malformed.
  static let malformedExitCode: Int32 = 126

  // MARK: Encoding

  /// The variables to add to the child's environment, as `NAME=value`.
  package var variables: [String] {
    var result: [String] = []
    switch target {
    case .entryPoint(let name): result.append("\(Self.entryVariable)=\(name)")
    case .role(let name): result.append("\(Self.roleVariable)=\(name)")
    }
    result.append("\(Self.argumentsVariable)=\(Self.encode(arguments))")
    result.append("\(Self.readyFDVariable)=\(readyFD)")
    if let parentDeath {
      result.append("\(Self.parentPIDVariable)=\(parentDeath.parent)")
      result.append("\(Self.deathSignalVariable)=\(parentDeath.signal)")
    }
    return result
  }

  /// `environment` without any handshake variable, so none shadows the ones a parent adds.
  package static func removingHandshake(from environment: [String]) -> [String] {
    environment.filter { variable in !allVariables.contains { variable.hasPrefix($0 + "=") } }
  }

  /// Reads the handshake from this process's environment. `nil`: this process is not a re-executed
  /// copy. `.failure` names what is malformed.
  package static func current() -> Result<ReexecutionEnvironment, MalformedHandshake>? {
    func value(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
    var expectedParent: pid_t = 0
    let deathSignal = asynctools_armed_parent_death_signal(&expectedParent)
    return decode(
      entry: value(entryVariable), role: value(roleVariable), arguments: value(argumentsVariable),
      readyFD: value(readyFDVariable),
      parentDeath: deathSignal > 0 ? ParentDeath(signal: deathSignal, parent: expectedParent) : nil)
  }

  /// Removes every handshake variable from this process's environment.
  package static func clearCurrent() {
    for variable in allVariables { unsetenv(variable) }
  }

  /// The validated decoding; `nil` when neither an entry point nor a role is named.
  static func decode(
    entry: String?, role: String?, arguments: String?, readyFD: String?, parentDeath: ParentDeath?
  ) -> Result<ReexecutionEnvironment, MalformedHandshake>? {
    let target: Target
    switch (entry, role) {
    case (nil, nil): return nil
    case (let entry?, nil): target = .entryPoint(entry)
    case (nil, let role?): target = .role(role)
    case (let entry?, _): return .failure(MalformedHandshake(target: entry, problem: "both an entry point and a role"))
    }
    let name: String
    switch target {
    case .entryPoint(let value), .role(let value): name = value
    }
    guard !name.isEmpty else { return .failure(MalformedHandshake(target: name, problem: "an empty name")) }
    guard let arguments, let decoded = decode(arguments) else {
      return .failure(MalformedHandshake(target: name, problem: "missing or malformed \(argumentsVariable)"))
    }
    guard let readyFD, let fd = Int32(readyFD), fd >= 0 else {
      return .failure(MalformedHandshake(target: name, problem: "missing or malformed \(readyFDVariable)"))
    }
    return .success(ReexecutionEnvironment(target: target, arguments: decoded, readyFD: fd, parentDeath: parentDeath))
  }

  /// A handshake environment that cannot be decoded.
  package struct MalformedHandshake: Error, Sendable, Hashable, CustomStringConvertible {
    package var target: String
    package var problem: String
    package var description: String { "malformed re-execution environment for \"\(target)\": \(problem)" }
  }

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

  /// The arguments, or `nil` if `encoded` is not exactly what ``encode(_:)`` produces.
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
#endif
