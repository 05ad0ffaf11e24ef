import ServiceLifecycle

extension WorkerContext {
  /// Runs a swift-service-lifecycle `ServiceGroup` as this worker's body: the group runs until the
  /// server stops the worker, then is shut down gracefully (`triggerGracefulShutdown()`), and this
  /// returns when the group has finished.
  ///
  /// ```swift
  /// try await startServer(configuration: configuration) { context in
  ///   let group = ServiceGroup(configuration: .init(services: [httpServer, metrics], logger: logger))
  ///   try await context.runServiceGroup(group)
  /// }
  /// ```
  ///
  /// Give the group no signals of its own (`gracefulShutdownSignals`/`cancellationSignals` empty,
  /// the default): the server owns the stop signals and hands them to the worker. The worker counts
  /// as ready as soon as the group starts (a `ServiceGroup` has no readiness of its own). If the
  /// group ends by itself (every service returned, or one failed), so does the worker: by
  /// returning, or by throwing the group's error — a worker failure.
  public func runServiceGroup(_ serviceGroup: ServiceGroup) async throws {
    // Ready before the group starts: a stop that arrives before the child below has begun to wait
    // for it must shut the group down gracefully, not cancel the worker as a stop during start-up.
    markReady()
    try await withThrowingTaskGroup(of: Bool.self) { group in
      group.addTask {
        try await serviceGroup.run()
        return true
      }
      group.addTask {
        _ = await self.stopSignal()
        await serviceGroup.triggerGracefulShutdown()
        return false
      }
      // The group ended by itself: stop waiting for a stop signal.
      if try await group.next() == true { group.cancelAll() }
      try await group.waitForAll()
    }
  }
}
