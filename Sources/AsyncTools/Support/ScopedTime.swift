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

  /// Starts an unstructured task on the scope's ``taskExecutor``, or a plain `Task` outside such a
  /// scope.
  ///
  /// `Task(executorPreference: nil)` is not the same as `Task {}`: the runtime still marks the task
  /// as having an executor preference, and then every enqueue, resumption and child creation of
  /// that task looks the preference up under the task's status-record lock, walking its records
  /// (a task-group record included). For a long-lived task that suspends often — a timer's loop —
  /// that lookup was the largest single cost per tick (issue #16 item 9), so the preference is
  /// only given when there is one.
  package static func startTask(_ operation: sending @escaping () async -> Void) -> Task<Void, Never> {
    if let executor = taskExecutor {
      return Task(executorPreference: executor, operation: operation)
    }
    return Task(operation: operation)
  }
}
