import CAsyncToolsShims
#if compiler(>=6.3) && !canImport(Darwin)
  @_spi(ExperimentalScheduling) import _Concurrency
#endif
import DequeModule
import AsyncTools
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The runtime's own global enqueue, handed to the hook as its last argument.
typealias EnqueueOriginal = @convention(thin) (UnownedJob) -> Void
/// The shape of `swift_task_enqueueGlobal_hook` (the Swift calling convention, as NIO and
/// swift-concurrency-extras declare it).
typealias EnqueueHook = @convention(thin) (UnownedJob, EnqueueOriginal) -> Void

/// The driver that owns the hook right now (an unmanaged, retained `VirtualTimeDriver`), or nil.
/// The hook reads it on every global enqueue in the process, so it is an atomic, not a lock.
/// (Stored as a bit pattern: raw pointers are not `Sendable`; 0 means none.)
let activeDriver = Atomic<UInt>(0)

/// The job-running executor Swift uses for tasks without a specific executor: running a job "on"
/// it is what `swift_job_run(job, generic)` does for the default global executor.
let genericExecutor = unsafeBitCast((Int(0), Int(0)), to: UnownedSerialExecutor.self)

/// Hook calls that may be using the active driver right now. A scope that ends clears
/// `activeDriver`, then waits for this to reach zero before its driver may be freed: another thread
/// can be inside the hook, holding the driver's address, at the moment the scope ends.
let hookCallsInFlight = Atomic<Int>(0)

/// The process-wide enqueue hook while a virtual-time scope is active.
let virtualTimeHook: EnqueueHook = { job, original in
  // Sequentially consistent with `retireActiveDriver()`: either that function sees this call in
  // flight and waits, or this call sees the driver already cleared.
  hookCallsInFlight.add(1, ordering: .sequentiallyConsistent)
  defer { hookCallsInFlight.subtract(1, ordering: .sequentiallyConsistent) }
  guard let raw = UnsafeRawPointer(bitPattern: activeDriver.load(ordering: .sequentiallyConsistent)) else {
    original(job)
    return
  }
  Unmanaged<VirtualTimeDriver>.fromOpaque(raw).takeUnretainedValue().enqueue(job, original: original)
}

/// Clears the active driver and returns once no hook call can still be using it.
func retireActiveDriver() {
  activeDriver.store(0, ordering: .sequentiallyConsistent)
  while hookCallsInFlight.load(ordering: .sequentiallyConsistent) != 0 {
    sched_yield()
  }
}

/// What a driver saw when it found its body stuck: nothing runnable, nothing due, nothing from
/// outside for `deadlockTimeout`.
struct DeadlockSnapshot: Sendable {
  /// The virtual time.
  var now: Duration
  /// Tasks sleeping on the scope's `VirtualClock` (only possible in manual mode).
  var sleepers: Int
  /// Runtime sleeps (`Task.sleep`, `ContinuousClock`) scheduled on the driver.
  var runtimeTimers: Int
  /// Jobs of the scope that came back from other threads during the scope.
  var foreignWakeups: Int
}

/// A single-threaded, deterministic executor for everything one `withVirtualTime` body starts.
///
/// While it runs, every global enqueue in the process reaches ``enqueue(_:original:)``. It keeps
/// the jobs that belong to its scope — enqueued on its own thread, or for a task it already ran —
/// and hands every other job back to the runtime at once, so tests running beside it in the same
/// process are neither captured nor stalled. When nothing it owns can run, it asks the clock for
/// idle work: idle waiters first, then a jump to the earliest deadline.
final class VirtualTimeDriver: TaskExecutor, @unchecked Sendable {
  // @unchecked Sendable: all mutable state is inside `state` (a `Locked`, i.e. a Mutex); `wakeup` is a POSIX
  // semaphore, itself thread-safe; `jobStarted`, `batch`, `runningJob` and `selfHop` are read and written only on
  // the driver thread (see `onDriverThread`); the remaining stored properties are immutable.

  struct State {
    /// Jobs to run, first in first out, as bit patterns (`UnownedJob` is not `Sendable`) with
    /// the `JobTag` bits set (jobs are aligned to 16 bytes, so the low bits are free).
    var ready = Deque<UInt>()
    /// Jobs (tasks) that reached this driver through the global-enqueue hook and ran here: a
    /// foreign-thread enqueue of one of them is a wake-up of a task in this scope (a continuation
    /// resumed by Dispatch, a signal handler, …) and stays here. (Tasks that prefer the driver
    /// come back to it by themselves, through `enqueue(_:)`: they are not recorded.)
    var ours = Set<UInt>()
    /// The driver thread is (about to be) blocked on `wakeup`.
    var sleeping = false
    /// The scope ended: enqueues go straight back to the runtime.
    var finished = false
    /// The runtime's enqueue (an `EnqueueOriginal`), kept as a bit pattern: thin function values
    /// are not `Sendable`. 0 until the hook first ran.
    var original: UInt = 0
    var bodyDone = false
    var bodyTask: Task<Void, Never>?
    /// Called on the driver thread once the loop ended (the hook is uninstalled by then), with
    /// what the driver saw when it found the body stuck, or nil.
    var onFinish: (@Sendable (_ deadlock: DeadlockSnapshot?) -> Void)?
    /// Jobs of the scope that arrived from other threads (wake-ups by Dispatch, signal handlers,
    /// actors with their own executors, …).
    var foreignWakeups = 0
  }

  let state = Locked(State())
  let wakeup: UnsafeMutablePointer<sem_t>
  let clock: VirtualClock
  let automatic: Bool
  let autojumpThreshold: Duration
  let deadlockTimeout: Duration
  /// When the job running on the driver thread started (real time), or an earlier instant (not
  /// read again for a timer's wake-up job, which never sleeps). Driver thread only.
  var jobStarted = ContinuousClock.now
  /// The jobs taken from `state.ready`, to run in order. Driver thread only.
  var batch = Deque<UInt>()
  /// The job running on the driver thread (0 between jobs). Driver thread only.
  var runningJob: UInt = 0
  /// The running task's hop, and when the job that made it started. Driver thread only.
  ///
  /// A task without the driver as its executor preference (`Task {}`, `Task.detached {}`) that
  /// runs on the driver enqueues itself again at a hop (`swift_task_switch` sees a task executor
  /// on the thread that the task does not prefer), typically between reading the clock and
  /// sleeping in `Clock.sleep(for:)`. The hop runs next, ahead of the queue, as if the task had
  /// continued inline — it made no suspension a program can observe — and the conversion of its
  /// runtime sleep is bounded by the earlier job's start, so it stays exact.
  var selfHop: (job: UInt, windowStart: ContinuousClock.Instant)?

  /// Bits a job's key carries in the ready queue.
  enum JobTag {
    /// The job came through the global-enqueue hook: remember its task as this scope's.
    static let fromHook: UInt = 1
    /// The job is the wake-up of a runtime sleep (the runtime's sleep task, which only resumes
    /// the sleeper): its run needs no clock reading.
    static let timer: UInt = 2
    static let all: UInt = 3
  }

  init(clock: VirtualClock, automatic: Bool, autojumpThreshold: Duration, deadlockTimeout: Duration) {
    self.clock = clock
    self.automatic = automatic
    self.autojumpThreshold = autojumpThreshold
    self.deadlockTimeout = deadlockTimeout
    wakeup = .allocate(capacity: 1)
    sem_init(wakeup, 0, 0)
  }

  deinit {
    sem_destroy(wakeup)
    wakeup.deallocate()
  }

  var marker: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

  /// This driver as the task executor its jobs run on.
  var taskExecutor: UnownedTaskExecutor { asUnownedTaskExecutor() }

  /// Receives every global enqueue in the process while this driver is active.
  func enqueue(_ job: UnownedJob, original: EnqueueOriginal) {
    let onOwnThread = asynctools_thread_marker_get() == marker
    let key = unsafeBitCast(job, to: UInt.self)
    if onOwnThread && key == runningJob {
      continueHop(key)
      return
    }
    let originalBits = unsafeBitCast(original, to: UInt.self)
    let (keep, wake) = state.withLock { state -> (Bool, Bool) in
      state.original = originalBits
      guard !state.finished, onOwnThread || state.ours.contains(key) else { return (false, false) }
      if !onOwnThread { state.foreignWakeups += 1 }
      state.ready.append(key | JobTag.fromHook)
      let wake = state.sleeping
      state.sleeping = false
      return (true, wake)
    }
    if !keep {
      original(job)
    } else if wake {
      sem_post(wakeup)
    }
  }

  /// True on the driver's own thread.
  var onDriverThread: Bool { asynctools_thread_marker_get() == marker }

  /// Receives the jobs of every task that prefers this executor (the body, its structured and
  /// immediate children) and of `Task.yield()` in them, from any thread.
  func enqueue(_ job: consuming ExecutorJob) {
    let unowned = UnownedJob(job)
    let key = unsafeBitCast(unowned, to: UInt.self)
    let foreign = !onDriverThread
    if !foreign && key == runningJob {
      continueHop(key)
      return
    }
    let (keep, wake) = state.withLock { state -> (Bool, Bool) in
      guard !state.finished else { return (false, false) }
      if foreign { state.foreignWakeups += 1 }
      state.ready.append(key)
      let wake = state.sleeping
      state.sleeping = false
      return (true, wake)
    }
    if !keep {
      // The scope is over (a stray job of a task that preferred it): the runtime runs it.
      globalConcurrentExecutor.enqueue(unowned)
    } else if wake {
      sem_post(wakeup)
    }
  }

  /// Puts the running task's hop at the front of the batch (see `selfHop`). Driver thread only.
  private func continueHop(_ job: UInt) {
    selfHop = (job, jobStarted)
    batch.prepend(job)
  }

  /// Schedules `job` (the wake-up of a runtime sleep) `delay` of virtual time from now.
  func schedule(_ job: UnownedJob, after delay: Duration) {
    let key = unsafeBitCast(job, to: UInt.self)
    let scheduled = clock.state.withLock { state -> Bool in
      guard state.driver === self else { return false }
      state.schedule(job: key, at: state.now + max(delay, .zero))
      return true
    }
    if scheduled {
      notify()
    } else {
      globalConcurrentExecutor.enqueue(job)
    }
  }

  /// The virtual delay of a runtime sleep on a real clock (`ContinuousClock`, `SuspendingClock`)
  /// whose deadline is `measured` of real time from now; `measured` was computed from a real `now`
  /// reading.
  ///
  /// `Clock.sleep(for:)` reads `now` and schedules the sleep within the same job (or, for a task
  /// that hops first, in the job that continues it at once: see `selfHop`), so the requested
  /// duration lies between `measured` (the reading was just now) and `measured` plus the time
  /// since the job started (the reading was at its start). Without a stall the two differ by a
  /// fraction of a microsecond. The delay is the roundest duration in reach: for 1 s, 100 ms, …
  /// 1 µs in turn, a multiple of that unit less than a tenth of it (but at least 1 µs, and no
  /// more than the job's run time or 500 µs) above the low end, or below the high end (if both
  /// ends have one, the one closer to its end relative to its unit). So
  /// `Task.sleep(for: .seconds(3600))` is exactly one hour, and a multiple of 10 µs is exact even
  /// when the thread stalled (was preempted) between the task's clock reading and its sleep: the
  /// reading then lies just after the job's start (a stall after it) or just before the sleep (a
  /// stall before it), and each end is tried. It can be off only when the requested duration is
  /// itself within a stall of a rounder one (999 ms with a stall of 2 ms becomes 1 s). Without a
  /// round duration in reach, the sleep lasts until the latest deadline the reading allows.
  func virtualDelay(measured: Duration) -> Duration {
    if measured <= .zero { return .zero }
    let ran = onDriverThread ? ContinuousClock.now - jobStarted : .microseconds(100)
    guard let low = nanoseconds(measured, roundingUp: true), let ranNanos = nanoseconds(ran, roundingUp: true) else {
      return measured
    }
    let high = low + ranNanos
    // The roundest duration in reach of each end, searched coarsest unit first.
    func roundest(fromLow: Bool) -> (value: Int64, distance: Int64, unit: Int64)? {
      var unit: Int64 = 1_000_000_000
      while unit >= 1_000 {
        // The reading is within the job's own work of its end: a fraction of a microsecond, tens
        // of microseconds under a sanitizer; never a stall's length (a stall is not work).
        let tolerance = min(ranNanos + 1, max(unit / 10, 1_000), 500_000)
        if fromLow {
          let above = (low + unit - 1) / unit * unit
          if above - low < tolerance { return (above, above - low, unit) }
        } else {
          let below = high / unit * unit
          if below >= low && high - below < tolerance { return (below, high - below, unit) }
        }
        unit /= 10
      }
      return nil
    }
    // Without a stall (the job ran for less than the work tolerance) the ends are a fraction of a
    // microsecond apart: the low end alone decides, as it always did.
    let stalled = ranNanos > 500_000
    switch (roundest(fromLow: true), stalled ? roundest(fromLow: false) : nil) {
    case (let fromLow?, let fromHigh?):
      // Both ends in reach (they differ only after a stall): the reading sits at one of them, and
      // a candidate that only a stall's length reaches is a coincidence, close to its end only
      // relative to a coarse unit. The smaller distance relative to its unit wins.
      let lowWins = fromLow.distance * fromHigh.unit <= fromHigh.distance * fromLow.unit
      return .nanoseconds(lowWins ? fromLow.value : fromHigh.value)
    case (let only?, nil), (nil, let only?):
      return .nanoseconds(only.value)
    case (nil, nil):
      break
    }
    // Never early: the latest the reading can have been is when the job started.
    return .nanoseconds(high)
  }

  /// `duration` in whole nanoseconds, or nil if negative or beyond about 290 years.
  private func nanoseconds(_ duration: Duration, roundingUp: Bool) -> Int64? {
    let (seconds, attoseconds) = duration.components
    guard seconds >= 0, seconds < Int64.max / 1_000_000_000 - 1 else { return nil }
    let extra = roundingUp ? (attoseconds + 999_999_999) / 1_000_000_000 : attoseconds / 1_000_000_000
    return seconds * 1_000_000_000 + extra
  }

  /// Wakes the driver if it is blocked waiting for foreign work (a sleeper registered from
  /// another thread, an idle waiter, …).
  func notify() {
    if asynctools_thread_marker_get() == marker { return }
    let wake = state.withLock { state -> Bool in
      defer { state.sleeping = false }
      return state.sleeping
    }
    if wake { sem_post(wakeup) }
  }

  /// Marks the body as finished; the loop ends at its next idle moment… or right away, since the
  /// body's own completion is the last job it needs.
  func bodyFinished() {
    state.withLock { $0.bodyDone = true }
  }

  /// Starts the driver thread.
  func start() {
    var thread = pthread_t()
    let context = Unmanaged.passRetained(self).toOpaque()
    let result = pthread_create(&thread, nil, { raw in
      #if canImport(Darwin)
        let raw: UnsafeMutableRawPointer = raw
      #else
        guard let raw else { return nil }
      #endif
      let driver = Unmanaged<VirtualTimeDriver>.fromOpaque(raw).takeRetainedValue()
      driver.run()
      return nil
    }, context)
    precondition(result == 0, "pthread_create failed: \(result)")
    pthread_detach(thread)
  }

  // MARK: - The loop (driver thread only)

  private func run() {
    asynctools_thread_marker_set(marker)
    defer { asynctools_thread_marker_set(nil) }
    var deadlock: DeadlockSnapshot?
    // Jobs are taken from the shared queue a whole batch per lock, then run in order; jobs they
    // enqueue join the shared queue and form the next batch, so the order is first in, first out
    // (a running task's own hop aside, which continues it at once: see `selfHop`).
    loop: while true {
      if batch.isEmpty { takeReadyJobs() }
      if let tagged = batch.popFirst() {
        let job = tagged & ~JobTag.all
        if let hop = selfHop, hop.job == job {
          jobStarted = hop.windowStart
          selfHop = nil
        } else if tagged & JobTag.timer == 0 {
          jobStarted = .now
        }
        runningJob = job
        // On this executor as a task executor: tasks that prefer it stay, and runtime sleeps and
        // yields of the job reach `enqueue(_:at:…)` / `enqueue(_:)`.
        unsafeBitCast(job, to: UnownedJob.self).runSynchronously(on: taskExecutor)
        runningJob = 0
        continue
      }
      if state.withLock({ $0.bodyDone }) { break }
      if autojumpThreshold > .zero, waitForWork(upTo: autojumpThreshold) { continue }
      switch clock.state.withLock({ $0.takeIdleWork(automatic: automatic) }) {
      case .idle(let waiters):
        for waiter in waiters { waiter.resume() }
        continue loop
      case .sleepers(let sleepers):
        // Only runtime sleeps due: their wake-ups go straight into the (empty) batch, in
        // registration order, without a trip through the shared queue and its lock.
        if sleepers.allSatisfy({ if case .job = $0 { true } else { false } }) {
          for case .job(let job) in sleepers { batch.append(job | JobTag.timer) }
          continue loop
        }
        // Mixed with `VirtualClock` sleepers, whose resumption goes through `enqueue`: all through
        // the shared queue, so they keep their registration order.
        for sleeper in sleepers {
          switch sleeper {
          case .continuation(let continuation): continuation.resume()
          case .job(let job): state.withLock { $0.ready.append(job | JobTag.timer) }
          }
        }
        continue loop
      case nil:
        break
      }
      if waitForWork(upTo: deadlockTimeout) { continue }
      if deadlock != nil {
        // Cancelling did not free the body either: give up on it rather than hang.
        break
      }
      // Nothing runnable, nothing due, nothing from outside for `deadlockTimeout`: the body
      // waits for something that can never happen. Cancel it so it can unwind, then report.
      deadlock = snapshot()
      cancelBody()
    }
    finish(deadlock: deadlock)
  }

  /// Moves every ready job into `batch` (which is empty) and records those that came through the
  /// hook as this scope's.
  private func takeReadyJobs() {
    state.withLock { state in
      guard !state.ready.isEmpty else { return }
      for key in state.ready where key & JobTag.fromHook != 0 { state.ours.insert(key & ~JobTag.all) }
      swap(&batch, &state.ready)
    }
  }

  /// Blocks up to `limit` of real time for a job to arrive; true if one did (or may have).
  private func waitForWork(upTo limit: Duration) -> Bool {
    let mustWait = state.withLock { state -> Bool in
      guard state.ready.isEmpty else { return false }
      state.sleeping = true
      return true
    }
    guard mustWait else { return true }
    var deadline = timespec()
    clock_gettime(CLOCK_REALTIME, &deadline)
    let (seconds, attoseconds) = limit.components
    let nanos = Int(deadline.tv_nsec) + Int(attoseconds / 1_000_000_000)
    deadline.tv_sec += Int(seconds) + nanos / 1_000_000_000
    deadline.tv_nsec = nanos % 1_000_000_000
    var posted = false
    while true {
      if sem_timedwait(wakeup, &deadline) == 0 {
        posted = true
        break
      }
      if errno != EINTR { break }  // ETIMEDOUT
    }
    return state.withLock { state in
      state.sleeping = false
      return posted || !state.ready.isEmpty
    }
  }

  /// What the driver sees at a deadlock.
  private func snapshot() -> DeadlockSnapshot {
    let (now, sleepers, timers) = clock.state.withLock { ($0.now, $0.registeredCount, $0.jobCount) }
    return DeadlockSnapshot(
      now: now, sleepers: sleepers, runtimeTimers: timers,
      foreignWakeups: state.withLock { $0.foreignWakeups })
  }

  private func finish(deadlock: DeadlockSnapshot?) {
    // Uninstall first, so that nothing below is captured again.
    let hook = unsafeBitCast(virtualTimeHook, to: UnsafeMutableRawPointer.self)
    _ = asynctools_enqueue_global_hook_cas(hook, nil, nil)
    retireActiveDriver()
    let (leftovers, originalBits) = state.withLock { state -> ([UInt], UInt) in
      state.finished = true
      defer { state.ready.removeAll() }
      // Not `Array(state.ready)` when empty: see `TaskScopeCore` (a benign write to the shared
      // empty-array storage that ThreadSanitizer reports).
      return (state.ready.isEmpty ? [] : state.ready.map { $0 & ~JobTag.all }, state.original)
    }
    // Jobs of tasks the body left behind run on, in real time, on the runtime's executor.
    if originalBits != 0 {
      let original = unsafeBitCast(originalBits, to: EnqueueOriginal.self)
      for key in leftovers { original(unsafeBitCast(key, to: UnownedJob.self)) }
    }
    // Sleepers left behind are cancelled: they resume with CancellationError, outside the scope.
    let sleepers = clock.state.withLock { $0.detach() }
    for sleeper in sleepers {
      switch sleeper {
      case .continuation(let continuation): continuation.resume(throwing: CancellationError())
      // A runtime sleep left behind (usually of a cancelled `Task.sleep`): it ends in real time.
      case .job(let job): globalConcurrentExecutor.enqueue(unsafeBitCast(job, to: UnownedJob.self))
      }
    }
    let onFinish = state.withLock { state in
      defer {
        state.onFinish = nil
        state.bodyTask = nil
      }
      return state.onFinish
    }
    onFinish?(deadlock)
  }

  /// Cancels the body's task (the caller was cancelled, or the scope deadlocked).
  func cancelBody() {
    state.withLock { $0.bodyTask }?.cancel()
  }
}

#if compiler(>=6.3) && !canImport(Darwin)
  // Where the runtime has scheduling executors (Swift 6.3 on Linux, an SPI), a task that prefers
  // the driver sends its `Task.sleep` and `ContinuousClock`/`SuspendingClock` sleeps here: they
  // become virtual timers.
  extension VirtualTimeDriver: SchedulingExecutor {
    func enqueue<C: Clock>(
      _ job: consuming ExecutorJob, after delay: C.Duration, tolerance: C.Duration?, clock: C
    ) {
      let unowned = UnownedJob(job)
      schedule(unowned, after: (delay as? Duration) ?? .zero)
    }

    func enqueue<C: Clock>(
      _ job: consuming ExecutorJob, at instant: C.Instant, tolerance: C.Duration?, clock: C
    ) {
      let unowned = UnownedJob(job)
      // The runtime's own clocks first, by type identity: a dynamic cast per sleep was a
      // measurable part of a runtime sleep's cost.
      if C.self == ContinuousClock.self {
        let deadline = unsafeBitCast(instant, to: ContinuousClock.Instant.self)
        schedule(unowned, after: virtualDelay(measured: ContinuousClock.now.duration(to: deadline)))
      } else if C.self == SuspendingClock.self {
        let deadline = unsafeBitCast(instant, to: SuspendingClock.Instant.self)
        schedule(unowned, after: virtualDelay(measured: SuspendingClock.now.duration(to: deadline)))
      } else if let deadline = instant as? VirtualClock.Instant {
        schedule(unowned, after: deadline.offset - self.clock.now.offset)
      } else {
        let measured = (clock.now.duration(to: instant) as? Duration) ?? .zero
        schedule(unowned, after: virtualDelay(measured: measured))
      }
    }
  }
#endif
