import AsyncTools
import Synchronization
import UnixSignals

/// The worker side of a stop, in both modes: one state machine behind one lock.
///
/// `starting` → (`stopSignal()` called) `ready` → (first stop) `stopping`. The first stop request
/// resumes the waiters of ``waitForStop()`` with its signal — or, while still starting, cancels the
/// worker's task, which interrupts the start-up. Any later stop request, or ``cancel()`` (phase two
/// of the shutdown), cancels the task.
final class WorkerCore: Sendable {
  private struct State {
    enum Stage { case starting, ready, stopping }
    var stage: Stage = .starting
    var signal: UnixSignal?
    var stopRequests = 0
    var cancelRequested = false
    /// Set once `waitForStop()` was called: errors after that are shutdown failures.
    var reachedStop = false
    var waiters: [Int: CheckedContinuation<UnixSignal, Never>] = [:]
    var nextWaiterID = 0
    var task: Task<Void, Never>?
  }

  private let state = Locked(State())
  private let defaultSignal: UnixSignal
  private let runToCompletion: Bool
  private let onReady: @Sendable () -> Void

  init(defaultSignal: UnixSignal, runToCompletion: Bool, onReady: @escaping @Sendable () -> Void) {
    self.defaultSignal = defaultSignal
    self.runToCompletion = runToCompletion
    self.onReady = onReady
  }

  var isStopRequested: Bool { state.withLock { $0.stopRequests > 0 } }
  /// Whether the body got as far as waiting for its stop (so a later error is a shutdown failure).
  var reachedStop: Bool { state.withLock { $0.reachedStop } }
  /// Whether the server cancelled the worker (interrupted start-up, phase two, or a forced stop).
  var wasCancelledByServer: Bool { state.withLock { $0.cancelRequested } }

  /// Hands the core the task running the body, so stops can cancel it; cancels it at once when a
  /// cancel was requested before the task existed.
  func attach(_ task: Task<Void, Never>) {
    let cancelNow = state.withLock { state in
      state.task = task
      return state.cancelRequested
    }
    if cancelNow { task.cancel() }
  }

  /// Records a stop request. The first one resumes the waiters (or interrupts the start-up); later
  /// ones cancel the body's task.
  func requestStop(_ signal: UnixSignal) {
    enum Action { case resume([CheckedContinuation<UnixSignal, Never>], UnixSignal), cancel(Task<Void, Never>?) }
    let action: Action = state.withLock { state in
      state.stopRequests += 1
      if state.stopRequests == 1 {
        state.signal = signal
        switch state.stage {
        case .starting:
          state.stage = .stopping
          state.cancelRequested = true
          return .cancel(state.task)
        case .ready, .stopping:
          state.stage = .stopping
          let waiters = Array(state.waiters.values)
          state.waiters = [:]
          return .resume(waiters, signal)
        }
      }
      state.cancelRequested = true
      return .cancel(state.task)
    }
    switch action {
    case .resume(let waiters, let signal): for waiter in waiters { waiter.resume(returning: signal) }
    case .cancel(let task): task?.cancel()
    }
  }

  /// Phase two of the shutdown: cancels the body's task.
  func cancel() {
    let task = state.withLock { state in
      state.cancelRequested = true
      return state.task
    }
    task?.cancel()
  }

  /// Marks the worker ready without waiting for its stop: from here on a first stop request is
  /// delivered to ``waitForStop()`` (now or later) instead of cancelling the task. For bodies whose
  /// stop wait runs in a child task that may start after a stop arrives. No effect once ready or
  /// stopping, or under `runToCompletion` (where ``waitForStop()`` returns at once anyway).
  func markReady() {
    let becameReady = state.withLock { state in
      guard !runToCompletion, state.stage == .starting else { return false }
      state.stage = .ready
      state.reachedStop = true
      return true
    }
    if becameReady { onReady() }
  }

  func waitForStop() async -> UnixSignal {
    enum Action { case returnNow(UnixSignal), wait }
    let fastPath: (action: Action, becameReady: Bool) = state.withLock { state in
      state.reachedStop = true
      if let signal = state.signal { return (.returnNow(signal), false) }
      if runToCompletion {
        state.signal = defaultSignal
        state.stage = .stopping
        return (.returnNow(defaultSignal), false)
      }
      let becameReady = state.stage == .starting
      state.stage = .ready
      return (.wait, becameReady)
    }
    if fastPath.becameReady { onReady() }
    if case .returnNow(let signal) = fastPath.action { return signal }
    let id = state.withLock { state in
      defer { state.nextWaiterID += 1 }
      return state.nextWaiterID
    }
    return await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<UnixSignal, Never>) in
        let resumeWith: UnixSignal? = state.withLock { state in
          if let signal = state.signal { return signal }
          if Task.isCancelled { return defaultSignal }
          state.waiters[id] = continuation
          return nil
        }
        if let resumeWith { continuation.resume(returning: resumeWith) }
      }
    } onCancel: {
      // A cancelled wait returns, so the tear-down runs: with the signal received so far, or the
      // default one.
      let resumed = state.withLock { state in
        state.waiters.removeValue(forKey: id).map { ($0, state.signal ?? defaultSignal) }
      }
      if let (waiter, signal) = resumed { waiter.resume(returning: signal) }
    }
  }
}
