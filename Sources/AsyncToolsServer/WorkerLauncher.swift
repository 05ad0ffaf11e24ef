import UnixSignals

/// How a worker ended, as the supervisor sees it.
enum WorkerOutcome: Sendable, Hashable {
  /// Ended without failing: the body returned, or it ended because the server stopped, cancelled
  /// or killed it (the supervisor knows which ones it killed).
  case clean
  /// Failed.
  case failed(WorkerFailure)
}

/// What the supervisor's state machine (``ServerState``) reacts to. Everything reaches it through
/// one stream, so the state needs no lock: only the supervisor's loop touches it.
enum SupervisorEvent: Sendable, Hashable {
  /// The server starts: launch the first worker.
  case start
  /// The launch of `slot` returned (the worker runs; it is not ready yet).
  case launched(slot: Int)
  /// The launch of `slot` threw.
  case launchFailed(slot: Int, message: String)
  case signal(UnixSignal)
  case ready(slot: Int)
  case exited(slot: Int, WorkerOutcome)
  case timerFired(ServerTimer)
  /// The new main process of a binary upgrade was started as process `pid` (not ready yet).
  case upgradeLaunched(pid: Int32)
  /// The new main process of a binary upgrade could not be started.
  case upgradeLaunchFailed(message: String)
  /// Every worker of the new main process is ready: it takes over.
  case upgradeReady
  /// The new main process ended before it was ready; `status` says how (`exited with status 1`).
  case upgradeEnded(status: String)
}

/// A running worker, seen from the main process.
protocol WorkerHandle: Sendable {
  /// Delivers a stop signal (process mode: through the pidfd). A second delivery cancels the body.
  func stop(_ signal: UnixSignal)
  /// Phase two of the shutdown: cancel the worker body.
  func cancel()
  /// Ends the worker now: SIGKILL for a process, cancellation for a task.
  func kill()
  /// Gives up on a killed worker that has not ended (threads mode: a task that ignores its
  /// cancellation): reports it as ended now, and the launcher no longer awaits it.
  func abandon()
}

extension WorkerHandle {
  /// A process always ends after SIGKILL: nothing to abandon.
  func abandon() {}
}

/// Starts workers for one mode. The supervisor decides when; the launcher knows how.
protocol WorkerLauncher: Sendable {
  /// Starts worker `index` in `slot`. Reports `.ready(slot)` and, exactly once, `.exited(slot, _)`
  /// through `events`; must not wait for the worker to become ready.
  func launch(slot: Int, index: Int, events: AsyncStream<SupervisorEvent>.Continuation) async throws -> any WorkerHandle
  /// Awaits whatever the launcher started that may still be winding down (tasks, reapers).
  func finish() async
}
