import CoreMetrics

/// The swift-metrics instruments of one timer (``PeriodicTimer``, `withTimer`), dimension `timer`:
/// ticks started, ticks skipped, and how late each tick started after its due instant.
final class TimerMetrics: Sendable {
  let ticks: any CounterHandler
  let skipped: any CounterHandler
  let lateness: any TimerHandler

  init(_ configuration: MetricsConfiguration) {
    ticks = configuration.counter("asynctools_timer_ticks_total", kind: "timer")
    skipped = configuration.counter("asynctools_timer_ticks_skipped_total", kind: "timer")
    lateness = configuration.timer("asynctools_timer_tick_lateness", kind: "timer")
  }

  /// A tick started `lateness` after it was due.
  func started(lateness: Duration) {
    ticks.increment(by: 1)
    self.lateness.record(lateness)
  }

  /// `count` due ticks were not started (``PeriodicTimer/DelayPolicy/skipWhileRunning``, or a
  /// fixed-rate schedule skipping missed ticks).
  func skipped(_ count: Int) {
    if count > 0 { skipped.increment(by: Int64(count)) }
  }
}
