import UnixSignals

/// A change in the server's life that the main process reports outside (to systemd, through
/// `SystemdNotifier`): the supervisor decides, an observer only tells.
package enum ServerLifecycleEvent: Sendable, Hashable {
  /// A worker became ready: `ready` of the `live` workers are ready now.
  case workerReady(ready: Int, live: Int)
  /// A rolling restart of `workers` workers began.
  case restartBegan(workers: Int)
  /// The rolling restart ended: every old worker was replaced (`completed`), or it was aborted
  /// and the server goes on with the workers it has.
  case restartEnded(completed: Bool)
  /// The server began to stop: on `signal`, or on its own (every worker ended, the main context
  /// returned or threw) when `nil`.
  case stopBegan(UnixSignal?)
}

/// Receives the supervisor's ``ServerLifecycleEvent``s, in order, from its event loop: must not
/// block (send a datagram, update a counter).
package protocol ServerLifecycleObserver: Sendable {
  func serverLifecycle(_ event: ServerLifecycleEvent)
}
