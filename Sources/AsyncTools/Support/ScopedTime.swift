/// A source of time that a scope installs for everything it runs, so that clocks created inside
/// the scope without an explicit source (``DefaultClock``) follow it.
///
/// AsyncToolsTesting's `withVirtualTime` installs one whose time is virtual; nothing else does, so
/// outside such a scope every ``DefaultClock`` is the real `ContinuousClock`.
package protocol ScopedTimeSource: Sendable {
  /// The current time, as a duration since the source's zero.
  var now: Duration { get }
  /// Suspends until the source's time reaches `deadline` (a duration since its zero).
  func sleep(until deadline: Duration, tolerance: Duration?) async throws
  /// The executor that unstructured tasks AsyncTools starts inside the scope prefer, so that the
  /// immediate children and yields of those tasks stay in the scope (a `PeriodicTimer`'s loop).
  var taskExecutor: (any TaskExecutor)? { get }
}

/// The time source of the current task's scope (a task-local: structured children and
/// `Task {}` inherit it, `Task.detached` does not).
package enum ScopedTime {
  @TaskLocal package static var source: (any ScopedTimeSource)?

  /// The executor preference for an unstructured task AsyncTools starts on behalf of the caller.
  package static var taskExecutor: (any TaskExecutor)? { source?.taskExecutor }
}
