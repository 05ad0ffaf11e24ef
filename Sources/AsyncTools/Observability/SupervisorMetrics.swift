import CoreMetrics
import Synchronization

/// The swift-metrics instruments of one supervisor (see ``MetricsConfiguration``), dimensions
/// `supervisor` and `child`: restarts and give-ups per child, fed by the supervisor's own restart
/// and give-up events. Counters are made on a child's first restart and kept, so a child that never
/// restarts costs nothing.
final class SupervisorMetrics: Sendable {
  private let configuration: MetricsConfiguration
  private let restarts = Locked<[String: any CounterHandler]>([:])  // Locked: ThreadSanitizer sees it

  init(_ configuration: MetricsConfiguration) {
    self.configuration = configuration
  }

  /// `child` is being restarted.
  func restarted(_ child: String) {
    let counter = restarts.withLock { counters in
      if let counter = counters[child] { return counter }
      let counter = configuration.counter(
        "asynctools_supervisor_restarts_total", kind: "supervisor", [("child", child)])
      counters[child] = counter
      return counter
    }
    counter.increment(by: 1)
  }

  /// The supervisor gave up because `child`'s restart crossed the intensity limit.
  func gaveUp(_ child: String) {
    configuration.counter("asynctools_supervisor_give_ups_total", kind: "supervisor", [("child", child)]).increment(by: 1)
  }

  /// `onRestart`, counting each restart first.
  func counting(
    _ onRestart: (@Sendable (Supervisor.RestartEvent) -> Void)?
  ) -> @Sendable (Supervisor.RestartEvent) -> Void {
    { event in
      self.restarted(event.child)
      onRestart?(event)
    }
  }

  /// `onGiveUp`, counting the give-up first.
  func counting(_ onGiveUp: (@Sendable (SupervisorError) -> Void)?) -> @Sendable (SupervisorError) -> Void {
    { error in
      self.gaveUp(error.child)
      onGiveUp?(error)
    }
  }
}
