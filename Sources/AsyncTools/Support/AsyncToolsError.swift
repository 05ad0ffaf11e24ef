/// A misuse of an AsyncTools API, reported instead of a crash, a hang or a silent no-op.
///
/// Every entry point that validates its arguments or its state throws an `AsyncToolsError` whose
/// ``code`` can be matched and whose ``message`` names the problem, for example
/// `AsyncToolsError(code: .invalidArgument, message: "interval must be positive, got 0 seconds")`.
public struct AsyncToolsError: Error, Hashable, Sendable, CustomStringConvertible {
  /// What kind of misuse happened.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    fileprivate enum Base: Hashable, Sendable {
      case invalidArgument
      case closed
      case shuttingDown
      case alreadyEntered
      case invalidState
    }
    fileprivate var base: Base

    /// An argument is out of its documented range (a zero or negative interval, a size of 0,
    /// zero workers, an empty list where one element is required, …).
    public static let invalidArgument = Code(base: .invalidArgument)
    /// The object was already closed and cannot be used again (an exit stack after it unwound, …).
    public static let closed = Code(base: .closed)
    /// The object is shutting down and accepts no new work.
    public static let shuttingDown = Code(base: .shuttingDown)
    /// A one-shot scope was entered a second time.
    public static let alreadyEntered = Code(base: .alreadyEntered)
    /// The call is not valid in the object's current state.
    public static let invalidState = Code(base: .invalidState)

    public var description: String {
      switch base {
      case .invalidArgument: "invalid argument"
      case .closed: "closed"
      case .shuttingDown: "shutting down"
      case .alreadyEntered: "already entered"
      case .invalidState: "invalid state"
      }
    }
  }

  /// What kind of misuse happened.
  public var code: Code
  /// A sentence naming the problem, suitable for a log line.
  public var message: String

  /// Creates an error with a code and a message that names the problem.
  public init(code: Code, message: String) {
    self.code = code
    self.message = message
  }

  /// Shorthand for an ``Code/invalidArgument`` error.
  public static func invalidArgument(_ message: String) -> AsyncToolsError {
    AsyncToolsError(code: .invalidArgument, message: message)
  }

  public var description: String { "AsyncToolsError(\(code)): \(message)" }
}

extension Duration {
  /// Throws ``AsyncToolsError/Code/invalidArgument`` unless this duration is strictly positive.
  /// `name` is the parameter name used in the message.
  package func requirePositive(_ name: String) throws(AsyncToolsError) {
    if self <= .zero {
      throw .invalidArgument("\(name) must be positive, got \(self)")
    }
  }

  /// The longest timeout a clock deadline can safely be computed for: about 31 years. A deadline
  /// `now + duration` past `Int64.max` seconds makes the standard clocks trap while sleeping.
  package static let longestTimeout: Duration = .seconds(1_000_000_000)

  /// Throws ``AsyncToolsError/Code/invalidArgument`` unless this duration is strictly positive and
  /// at most ``longestTimeout``, so that sleeping until `now + self` cannot crash.
  package func requireTimeout(_ name: String) throws(AsyncToolsError) {
    try requirePositive(name)
    if self > Self.longestTimeout {
      throw .invalidArgument("\(name) must be at most \(Self.longestTimeout), got \(self)")
    }
  }
}
