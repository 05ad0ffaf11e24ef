import AsyncTools
import ServiceLifecycle

/// A `PersistentTaskGroup` runs as a swift-service-lifecycle `Service`, so a
/// `ServiceGroup` that owns it also ends it.
extension PersistentTaskGroup: Service {
  /// Keeps the group running until the surrounding `ServiceGroup` shuts down, then ends it.
  ///
  /// - On graceful shutdown (a signal in `gracefulShutdownSignals`,
  ///   `ServiceGroup.triggerGracefulShutdown()`, …) the group closes: it refuses new tasks and
  ///   `run()` returns once the running and queued tasks have finished.
  /// - On cancellation (the `ServiceGroup` cancels its services, e.g. after
  ///   `maximumGracefulShutdownDuration`) the group shuts down: every task is cancelled, and `run()`
  ///   returns once all of them have finished.
  /// - If the group's owner calls `close()` or `shutdown()` directly, `run()` returns once the
  ///   group is empty; the `ServiceGroup` then applies the service's termination behaviour.
  ///
  /// Outside a `ServiceGroup`, `run()` just waits until the group is closed or shut down, or until
  /// the calling task is cancelled. Never throws.
  public func run() async throws {
    await withTaskCancellationHandler {
      await withGracefulShutdownHandler {
        await self.waitUntilTerminated()
      } onGracefulShutdown: {
        self.beginClose()
      }
    } onCancel: {
      self.beginShutdown()
    }
  }
}
