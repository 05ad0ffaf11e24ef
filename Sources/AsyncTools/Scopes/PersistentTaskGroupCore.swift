import DequeModule
import Synchronization

/// A task the group can cancel without knowing its result type.
///
/// `Task` is a single reference, so an existential of it fits the inline buffer: storing one per
/// live task costs no extra allocation.
protocol CancellableTask: Sendable {
  func cancel()
  var isCancelled: Bool { get }
}

extension Task: CancellableTask {}

/// The shared state of a ``PersistentTaskGroup``: one lock-protected state machine.
///
/// The tasks capture this core, never the public `PersistentTaskGroup` object, so the owner can be
/// released (and its `deinit` cancel everything) while tasks are still running.
///
/// Life of a task, all transitions under `state`'s lock:
/// - `addTask` takes an id, either admits it (`running += 1`, entry `.running`) or queues it
///   (`queued += 1`, entry `.queued(nil)`, id appended to `admissionQueue`), creates the `Task`
///   and stores it in `entries` — all in one critical section, so the task cannot finish before
///   its entry exists.
/// - A queued task's body parks its continuation in its entry. `finish` of a running task admits
///   the head of the queue (FIFO by `addTask` order, not by when bodies start). Cancellation of a
///   queued task, or shutdown, marks it `.rejected` and resumes it with `CancellationError`, so
///   its operation never runs.
/// - Every body ends with exactly one `finish`, which removes the entry. Nothing is kept for a
///   finished task (aiotools #21 #54 #60 #95).
/// - The group is *terminated* once it is closing or shutting down and `entries` is empty; the
///   termination waiters are resumed then.
final class PersistentTaskGroupCore: Sendable {
  enum Phase: Sendable {
    case open
    case closing
    case shuttingDown
  }

  enum Admission: Sendable {
    case running
    case queued(UnsafeContinuation<Void, any Error>?)
    case rejected
  }

  struct Entry: Sendable {
    var task: any CancellableTask
    var admission: Admission
  }

  struct State: Sendable {
    var phase: Phase = .open
    var nextID: UInt64 = 0
    var running = 0
    var queued = 0
    var entries: [UInt64: Entry] = [:]
    /// Ids in `addTask` order; may hold ids of queued tasks that were cancelled since (removed
    /// lazily, and compacted when they dominate).
    var admissionQueue: Deque<UInt64> = []
    var terminationWaiters: [UnsafeContinuation<Void, Never>] = []

    var isTerminated: Bool { phase != .open && entries.isEmpty }

    /// What ``GroupMetrics`` records.
    var counts: GroupMetrics.Counts { GroupMetrics.Counts(running: running, queued: queued) }

    /// Admits the oldest still-queued task, if any; returns its parked continuation, if any.
    ///
    /// A queued task already cancelled is rejected instead (its continuation, if parked, goes to
    /// `rejected`): its body may not have started yet, so its own cancellation handler may not
    /// have run, and it must never be admitted.
    mutating func admitNext(
      rejecting rejected: inout [UnsafeContinuation<Void, any Error>]
    ) -> UnsafeContinuation<Void, any Error>? {
      while let id = admissionQueue.popFirst() {
        guard let entry = entries[id], case .queued(let continuation) = entry.admission else { continue }
        if entry.task.isCancelled {
          entries[id]!.admission = .rejected
          queued -= 1
          if let continuation { rejected.append(continuation) }
          continue
        }
        entries[id]!.admission = .running
        queued -= 1
        running += 1
        return continuation
      }
      return nil
    }

    /// Releases storage left over from a burst, so an idle group holds no memory that grew with
    /// the number of tasks it ran.
    mutating func releaseSpareStorage() {
      if entries.isEmpty && entries.capacity > 64 { entries = [:] }
      if admissionQueue.isEmpty { admissionQueue = [] }
    }

    mutating func takeWaitersIfTerminated() -> [UnsafeContinuation<Void, Never>] {
      guard isTerminated, !terminationWaiters.isEmpty else { return [] }
      defer { terminationWaiters = [] }
      return terminationWaiters
    }
  }

  let name: String
  /// `Int.max` when unlimited.
  let limit: Int
  let errorHandler: PersistentTaskGroup.ErrorHandler
  /// The swift-metrics instruments, if the group was created with `metrics:`.
  let metrics: GroupMetrics?
  let state = Locked(State())
  /// The public object, held weakly so that `PersistentTaskGroup.current` does not keep it alive.
  let owner = Locked<WeakOwner>(WeakOwner())

  struct WeakOwner: Sendable {
    weak var group: PersistentTaskGroup?
  }

  init(
    name: String, limit: Int, errorHandler: @escaping PersistentTaskGroup.ErrorHandler, metrics: GroupMetrics? = nil
  ) {
    self.name = name
    self.limit = limit
    self.errorHandler = errorHandler
    self.metrics = metrics
  }

  // MARK: Adding and running tasks

  func add<T: Sendable>(
    name taskName: String?, priority: TaskPriority?, _ operation: @escaping @Sendable () async throws -> T
  ) throws(AsyncToolsError) -> Task<T, any Error> {
    let metrics = self.metrics
    typealias Added = (Task<T, any Error>, GroupMetrics.Counts?)
    let (task, counts) = try state.withLock { (s) throws(AsyncToolsError) -> Added in
      guard s.phase == .open else {
        let what = s.phase == .closing ? "closing" : "shutting down"
        throw AsyncToolsError(
          code: .shuttingDown, message: "PersistentTaskGroup '\(self.name)' is \(what) and accepts no new tasks")
      }
      let id = s.nextID
      s.nextID &+= 1
      let admitted = s.running < self.limit
      if admitted {
        s.running += 1
      } else {
        s.queued += 1
        s.admissionQueue.append(id)
      }
      // Created under the lock: `Task.init` only enqueues the job, and holding the lock until the
      // entry is stored means the task's `finish` always finds it.
      let task = Task<T, any Error>(name: taskName, priority: priority) {
        try await self.run(id: id, name: taskName, admitted: admitted, operation)
      }
      s.entries[id] = Entry(task: task, admission: admitted ? .running : .queued(nil))
      return (task, metrics == nil ? nil : s.counts)
    }
    if let metrics, let counts { metrics.record(counts) }
    return task
  }

  func run<T: Sendable>(
    id: UInt64, name taskName: String?, admitted: Bool, _ operation: @Sendable () async throws -> T
  ) async throws -> T {
    if !admitted {
      do {
        try await waitForAdmission(id)
      } catch {
        finish(id, wasAdmitted: false)
        throw error
      }
    }
    do {
      let value = try await PersistentTaskGroup.$currentCore.withValue(self) { try await operation() }
      metrics?.completed.increment(by: 1)
      finish(id, wasAdmitted: true)
      return value
    } catch {
      // Reported from inside the task, before `finish`: `shutdown()` and `close()` therefore also
      // wait for the handler, and the handler sees the task's task-locals.
      if !(error is CancellationError) {
        metrics?.failed.increment(by: 1)
        errorHandler(error, taskName)
      }
      finish(id, wasAdmitted: true)
      throw error
    }
  }

  private func waitForAdmission(_ id: UInt64) async throws {
    try await withTaskCancellationHandler {
      try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
        let outcome: Admission? = state.withLock { s in
          switch s.entries[id]?.admission {
          case .running: return .running
          case .rejected, nil: return .rejected
          case .queued:
            s.entries[id]!.admission = .queued(continuation)
            return nil
          }
        }
        switch outcome {
        case .running: continuation.resume()
        case .rejected: continuation.resume(throwing: CancellationError())
        case .queued, nil: break
        }
      }
    } onCancel: {
      rejectQueued(id)
    }
  }

  /// A queued task was cancelled: it leaves the queue and will never run.
  private func rejectQueued(_ id: UInt64) {
    let metrics = self.metrics
    let (continuation, counts) = state.withLock { s -> (UnsafeContinuation<Void, any Error>?, GroupMetrics.Counts?) in
      guard case .queued(let continuation) = s.entries[id]?.admission else { return (nil, nil) }
      s.entries[id]!.admission = .rejected
      s.queued -= 1
      if s.queued == 0 {
        s.admissionQueue = []
      } else if s.admissionQueue.count > 2 * s.queued + 64 {
        let entries = s.entries
        s.admissionQueue = Deque(s.admissionQueue.filter { id in
          if case .queued = entries[id]?.admission { return true }
          return false
        })
      }
      return (continuation, metrics == nil ? nil : s.counts)
    }
    if let metrics, let counts { metrics.record(counts) }
    continuation?.resume(throwing: CancellationError())
  }

  private func finish(_ id: UInt64, wasAdmitted: Bool) {
    let metrics = self.metrics
    let (next, rejected, waiters, counts) = state.withLock { s in
      s.entries.removeValue(forKey: id)
      var next: UnsafeContinuation<Void, any Error>?
      var rejected: [UnsafeContinuation<Void, any Error>] = []
      if wasAdmitted {
        s.running -= 1
        next = s.admitNext(rejecting: &rejected)
      }
      let counts = metrics == nil ? nil : s.counts
      guard s.entries.isEmpty else { return (next, rejected, [UnsafeContinuation<Void, Never>](), counts) }
      s.releaseSpareStorage()
      return (next, rejected, s.takeWaitersIfTerminated(), counts)
    }
    if let metrics, let counts { metrics.record(counts) }
    next?.resume()
    for continuation in rejected { continuation.resume(throwing: CancellationError()) }
    for waiter in waiters { waiter.resume() }
  }

  // MARK: Closing and shutting down

  /// Stops accepting tasks; running and queued ones go on.
  func beginClose() {
    let waiters = state.withLock { s in
      if s.phase == .open { s.phase = .closing }
      return s.takeWaitersIfTerminated()
    }
    for waiter in waiters { waiter.resume() }
  }

  /// Stops accepting tasks, drops the queue (those tasks never run) and cancels every task.
  /// Returns the number of tasks that were still live.
  @discardableResult
  func beginShutdown() -> Int {
    let metrics = self.metrics
    let (rejected, tasks, waiters, counts) = state.withLock { s in
      s.phase = .shuttingDown
      var rejected: [UnsafeContinuation<Void, any Error>] = []
      for id in s.admissionQueue {
        guard case .queued(let continuation) = s.entries[id]?.admission else { continue }
        s.entries[id]!.admission = .rejected
        if let continuation { rejected.append(continuation) }
      }
      s.admissionQueue = []
      s.queued = 0
      return (rejected, s.entries.values.map(\.task), s.takeWaitersIfTerminated(), metrics == nil ? nil : s.counts)
    }
    if let metrics, let counts { metrics.record(counts) }
    // Outside the lock: cancelling runs cancellation handlers synchronously, and a queued task's
    // handler takes this lock.
    for continuation in rejected { continuation.resume(throwing: CancellationError()) }
    for task in tasks { task.cancel() }
    for waiter in waiters { waiter.resume() }
    return tasks.count
  }

  /// Returns once the group is closing or shutting down and every task body has returned.
  /// Not cancellable: callers decide what cancellation means (see `PersistentTaskGroup.close()`).
  func waitUntilTerminated() async {
    await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
      let done = state.withLock { s in
        if s.isTerminated { return true }
        s.terminationWaiters.append(continuation)
        return false
      }
      if done { continuation.resume() }
    }
  }
}
