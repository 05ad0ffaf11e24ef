/// Several errors that happened together, in the order they happened.
///
/// `ErrorGroup` is AsyncTools' answer to Python's `ExceptionGroup` / aiotools' `MultiError`: every
/// API that can collect more than one failure (an exit stack unwinding, a grouped
/// ``cancelAndWait(_:)``, a task group whose children failed, `race` when every contender failed)
/// throws one `ErrorGroup` holding all of them.
///
/// Flattening rule: an `ErrorGroup` is never nested directly inside another. When a group is built
/// from errors that are themselves groups, their members are spliced in place, so
/// `errors` is always a flat list of leaf errors in order of occurrence. A group is never empty.
///
/// When only one error happened, each API documents what it throws: the scoped-resource APIs
/// (`withContext`, `withExitStack`, …) throw a lone error unchanged, so the body's error reaches
/// the caller as it was thrown; aggregating APIs (`cancelAndWait(_:)` of many tasks, `race` when
/// every contender failed, `withErrorGroup`) throw a group even of one, so callers match one type.
public struct ErrorGroup: Error, CustomStringConvertible, Sendable {
  /// The errors, flat and in order of occurrence. Never empty.
  public let errors: [any Error]

  /// A short, human-readable reason the errors were collected (for example
  /// `"cleanup of an exit stack failed"`).
  public let message: String

  /// Creates a group, flattening any `ErrorGroup` among `errors` into its members.
  ///
  /// - Precondition: `errors` is not empty.
  public init(_ message: String, _ errors: [any Error]) {
    precondition(!errors.isEmpty, "an ErrorGroup holds at least one error")
    self.message = message
    self.errors = errors.flatMap { error -> [any Error] in
      if let group = error as? ErrorGroup { return group.errors }
      return [error]
    }
  }

  /// The errors of a given type, in order.
  public func errors<E: Error>(ofType type: E.Type) -> [E] {
    errors.compactMap { $0 as? E }
  }

  /// Whether any member is of the given type.
  public func contains<E: Error>(_ type: E.Type) -> Bool {
    errors.contains { $0 is E }
  }

  public var description: String {
    "ErrorGroup(\(message): \(errors.map { String(describing: $0) }.joined(separator: ", ")))"
  }
}
