import CoreMetrics

/// The swift-metrics instruments of one ``PersistentTaskGroup`` (see ``MetricsConfiguration``),
/// dimension `group`: how many tasks run and wait for a slot, and how many ended well or failed.
final class GroupMetrics: Sendable {
  let running: any RecorderHandler
  let queued: any RecorderHandler
  let completed: any CounterHandler
  let failed: any CounterHandler

  init(_ configuration: MetricsConfiguration) {
    running = configuration.gauge("asynctools_group_tasks_running", kind: "group")
    queued = configuration.gauge("asynctools_group_tasks_queued", kind: "group")
    completed = configuration.counter("asynctools_group_tasks_completed_total", kind: "group")
    failed = configuration.counter("asynctools_group_tasks_failed_total", kind: "group")
  }

  /// The group's counts after a transition, read under its lock and recorded after.
  struct Counts {
    var running: Int
    var queued: Int
  }

  func record(_ counts: Counts) {
    running.record(Int64(counts.running))
    queued.record(Int64(counts.queued))
  }
}
