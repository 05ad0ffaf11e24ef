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
  /// A binary upgrade began: a new main process is being started.
  case upgradeBegan
  /// The binary upgrade failed: this main process serves on.
  case upgradeFailed
  /// The new main process is ready and serves: this main process stops its workers and ends; it
  /// must say nothing more to the outside.
  case handedOver(newMainProcess: Int32)
}

/// Receives the supervisor's ``ServerLifecycleEvent``s, in order, from its event loop: must not
/// block (send a datagram, update a counter).
package protocol ServerLifecycleObserver: Sendable {
  func serverLifecycle(_ event: ServerLifecycleEvent)
}

/// Several observers, told in order (prod: systemd's notifier, then the readiness report of a new
/// main process to the old one, so systemd hears `MAINPID=` from the new one first).
struct LifecycleObservers: ServerLifecycleObserver {
  let observers: [any ServerLifecycleObserver]

  init(_ observers: [any ServerLifecycleObserver]) { self.observers = observers }

  func serverLifecycle(_ event: ServerLifecycleEvent) {
    for observer in observers { observer.serverLifecycle(event) }
  }
}
