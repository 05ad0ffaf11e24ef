import AsyncTools

/// An ordered, thread-safe, append-only log of events, for asserting what happened and in which order.
package final class TestLog<Event: Sendable>: Sendable {
  private let entries = Locked<[Event]>([])

  package init() {}

  /// Appends `event`.
  package func append(_ event: Event) { entries.withLock { $0.append(event) } }

  /// Every event so far, in order.
  package var all: [Event] { entries.withLock { $0 } }
}

// The spellings the suites grew up with, so their tests read as before.
extension TestLog {
  /// `append(_:)`.
  package func record(_ event: Event) { append(event) }
  /// `all`.
  package var events: [Event] { all }
  /// `all`.
  package var values: [Event] { all }
}

extension TestLog where Event: Equatable {
  /// How many times `event` was logged.
  package func count(of event: Event) -> Int { all.filter { $0 == event }.count }
}

/// A thread-safe box for a value that tests read after concurrent writes.
package final class TestBox<Value: Sendable>: Sendable {
  private let storage: Locked<Value>
  package init(_ value: Value) { storage = Locked(value) }
  /// The current value.
  package var value: Value { storage.withLock { $0 } }
  /// Replaces the value.
  package func set(_ value: Value) { storage.withLock { $0 = value } }
  /// Changes the value in place and returns what `body` returns.
  package func update<R: Sendable>(_ body: (inout Value) -> R) -> R { storage.withLock { body(&$0) } }
}
