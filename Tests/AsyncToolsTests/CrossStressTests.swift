import AsyncTools
import AsyncToolsTestSupport
import AsyncToolsTesting
import Synchronization
import Testing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Seeded random scenarios that mix the capabilities in one tree, in virtual time: a task scope with a timeout
/// (and sometimes an outer cancellation, sometimes a `cancelAll`) holding a supervisor whose restartable children
/// bound their work with `withTimeout`, commit through `withCancellationShield` and hold resources on an exit stack
/// (callbacks and `AsyncContext` managers, some failing); an error group whose first failure cancels its
/// siblings; and a periodic timer whose ticks fail at random.
///
/// Invariants checked after every scenario: every injected error reached a handler exactly once (whatever layer it
/// crossed: supervisor handler, error group, exit stack, timer `onError`, scope handler); no child, tick or task
/// outlives its owner (live counters back to zero); every registered cleanup and every entered resource ran its exit
/// exactly once; every shielded commit that started finished; every object the scenario captured was freed; the
/// scope's outcome is the one its rules allow. A watchdog fails the test with the seed if no scenario finishes for
/// two minutes of real time (virtual time turns deadlocks into `VirtualTimeError` by itself).
///
/// `ASYNCTOOLS_STRESS_ITERATIONS` sets the number of scenarios (default 200); `ASYNCTOOLS_STRESS_SEED` replays a run
/// (scenario `i` uses seed `base + i`).
@Suite("Cross-capability stress", .serialized)
struct CrossStressTests {
  static var iterations: Int { Stress.iterations(default: 200) }

  static let baseSeed: UInt64 = Stress.seed()

  @Test(.timeLimit(.minutes(30)))
  func mixedScopesSupervisorsTimeoutsShieldsExitStacksAndTimersKeepEveryInvariant() async throws {
    let summary = try await CrossStress.run(iterations: Self.iterations, baseSeed: Self.baseSeed)
    print(
      "Cross-capability stress: \(summary.scenarios) scenarios from seed \(Self.baseSeed), "
        + "\(summary.faults) faults injected, \(summary.cancellations) cancellations/timeouts, "
        + "\(summary.violations) violations")
  }

  /// Memory goes back to where it started: every object a scenario captures is freed when it ends (checked exactly,
  /// by a deinit counter, in every scenario above), and the heap does not grow with the number of scenarios run.
  ///
  /// After a warm-up batch, 8 batches run. Around each, the heap in use (`mallinfo`-style, from `malloc_info`) is
  /// read; then the test waits as long as the batch took and reads it again: what other suites (running in parallel
  /// in this process) added meanwhile is subtracted from the batch's growth. The growth per scenario is the
  /// **median** over the 8 batches, so a burst of another suite moves single batches while a leak moves every batch.
  /// Bound: 6 KiB per scenario; a leak of 10 KiB per scenario fails (mutation check, RELIABILITY.md). Measured
  /// alone, the growth is 0.5–1.3 KiB per scenario, and it is Swift Testing's cache of thrown errors' backtraces,
  /// kept until the test ends (RELIABILITY.md, "Memory growth in the cross-stress suite"): run the test binary with
  /// `SWT_SWIFT_ERROR_BACKTRACING_ENABLED=0` to measure the library alone (then ≈ 5 B per scenario).
  @Test(.timeLimit(.minutes(30)))
  func memoryDoesNotGrowWithTheNumberOfScenarios() async throws {
    let measures = !Stress.runningUnderASanitizer && Stress.heapInUseBytes() != nil
    // Without a heap reading (under a sanitizer) only the deinit counters apply: small batches suffice.
    let batch = measures ? max(Self.iterations / 2, 100) : 20
    let seed = Self.baseSeed &+ 0x1_0000_0000
    _ = try await CrossStress.run(iterations: 2 * batch, baseSeed: seed)
    var growths: [Int] = []
    var resident: [Int] = []
    for index in 0..<8 {
      let start = ContinuousClock.now
      let before = Stress.heapInUseBytes() ?? 0
      _ = try await CrossStress.run(iterations: batch, baseSeed: seed &+ UInt64((2 + index) * batch))
      let after = Stress.heapInUseBytes() ?? 0
      resident.append(Stress.residentBytes() ?? 0)
      var background = 0
      if measures {
        // Not a settling sleep: a control period of the batch's length, to measure the other suites' growth.
        try await Task.sleep(for: ContinuousClock.now - start)
        background = (Stress.heapInUseBytes() ?? 0) - after
      }
      growths.append((after - before - background) / batch)
    }
    let sorted = growths.sorted()
    let slope = (sorted[3] + sorted[4]) / 2
    print(
      "Cross-capability stress memory: \(8 * batch) scenarios after a warm-up of \(2 * batch); heap growth per "
        + "scenario of each batch, net of the other suites' \(growths) B, median \(slope) B; resident "
        + "\(resident.map { $0 / 1024 }) KiB (seed \(seed)); Swift Testing's thrown-error backtrace cache "
        + (getenv("SWT_SWIFT_ERROR_BACKTRACING_ENABLED").map { String(cString: $0) } == "0"
          ? "off" : "on (it holds ≈ 0.5–1 KiB per scenario until the test ends; SWT_SWIFT_ERROR_BACKTRACING_ENABLED=0)"))
    // Sanitizers keep freed memory in quarantine and shadow it, so only the deinit counters apply there.
    guard measures else { return }
    #expect(
      slope < 6 * 1024,
      "the heap grows by \(slope) B per scenario (median of 8 batches of \(batch)); \(Stress.replay(seed: seed))")
  }
}

/// SplitMix64, shared with every seeded test: `SeededRandomNumberGenerator` of AsyncToolsTesting.
typealias CrossRandom = SeededRandomNumberGenerator

extension CrossRandom {
  mutating func percent() -> Int { Int(next() % 100) }
  mutating func seconds(_ range: ClosedRange<Int>) -> Duration { .seconds(Int.random(in: range, using: &self)) }
}

/// An injected failure; `id` is unique within a scenario.
typealias CrossError = TestError

/// Per-scenario bookkeeping, shared by every task of the scenario.
final class CrossLedger: Sendable {
  struct State {
    var nextID = 0
    var thrown: [Int] = []
    var reported: [Int] = []
    var live = 0
    var registered: Set<Int> = []
    var ran: [Int: Int] = [:]
    var shieldsStarted = 0
    var shieldsFinished = 0
    var tracked = 0
    var gaveUp = 0
    var violations: [String] = []
  }
  let state = Locked(State())

  /// Makes a fresh injected error and records it as thrown.
  func inject() -> CrossError {
    state.withLock { state in
      state.nextID += 1
      state.thrown.append(state.nextID)
      return CrossError(id: state.nextID)
    }
  }

  func newID() -> Int { state.withLock { $0.nextID += 1; return $0.nextID } }

  /// Receives whatever a handler was given: injected errors (possibly inside groups) count as reported.
  func report(_ error: any Error) {
    switch error {
    case let error as CrossError: state.withLock { $0.reported.append(error.id) }
    case let group as ErrorGroup: for member in group.errors { report(member) }
    case is SupervisorError: state.withLock { $0.gaveUp += 1 }
    case is CancellationError: break
    default: state.withLock { $0.violations.append("a handler got a foreign error: \(error)") }
    }
  }

  /// Takes injected errors off the books: an API documented to drop them did so.
  func forgive(_ ids: [Int]) {
    state.withLock { state in
      for id in ids {
        if let index = state.thrown.firstIndex(of: id) { state.thrown.remove(at: index) }
      }
    }
  }

  func enter() { state.withLock { $0.live += 1 } }
  func leave() { state.withLock { $0.live -= 1 } }
  func registered(_ id: Int) { state.withLock { _ = $0.registered.insert(id) } }
  func ran(_ id: Int) { state.withLock { $0.ran[id, default: 0] += 1 } }
  func violation(_ message: String) { state.withLock { $0.violations.append(message) } }
}

/// A counter that escaping closures can share.
final class CrossCount: Sendable {
  let value = Locked(0)
}

/// The ids of errors injected at one call site.
final class CrossIDs: Sendable {
  let ids = Locked<[Int]>([])
  func add(_ error: CrossError) -> CrossError {
    ids.withLock { $0.append(error.id) }
    return error
  }
  var all: [Int] { ids.withLock { $0 } }
}

/// The watchdog's view of a run: scenarios finished, and the seed of the one running.
final class CrossProgress: Sendable {
  let done = Atomic<Int>(0)
  let finished = Atomic<Bool>(false)
  /// Whether a scenario is inside its virtual-time scope (waiting for another suite's scope is not a hang).
  let inside = Atomic<Bool>(false)
  let seed: Atomic<UInt64>
  init(_ seed: UInt64) { self.seed = Atomic(seed) }
}

/// An object captured by every closure of a scenario; the count of live instances must return to zero.
final class CrossTracked: Sendable {
  let ledger: CrossLedger
  init(_ ledger: CrossLedger) {
    self.ledger = ledger
    ledger.state.withLock { $0.tracked += 1 }
  }
  deinit { ledger.state.withLock { $0.tracked -= 1 } }
  func touch() {}
}

/// What one supervised child does on each of its runs.
struct CrossChildPlan: Sendable {
  var restart: RestartPolicy
  var failuresBeforeSuccess: Int
  var work: Duration
  var timeout: Duration?
  var hang: Bool
  var commit: Duration?
  var callbacks: [Bool]  // one cleanup callback per element; `true` makes it throw
  var resources: [Bool]  // one AsyncContext per element; `true` makes its exit throw
  var cancelScopeAfter: Duration?

  init(_ random: inout CrossRandom, allowHang: Bool) {
    restart = random.percent() < 60 ? .onFailure : .never
    failuresBeforeSuccess = Int(random.next() % 3)
    work = random.seconds(0...8)
    timeout = random.percent() < 35 ? random.seconds(0...6) : nil
    hang = allowHang && random.percent() < 10
    commit = random.percent() < 30 ? random.seconds(0...3) : nil
    callbacks = (0..<Int(random.next() % 3)).map { _ in random.percent() < 15 }
    resources = (0..<Int(random.next() % 3)).map { _ in random.percent() < 15 }
    cancelScopeAfter = random.percent() < 5 ? random.seconds(0...10) : nil
  }
}

/// One scenario, drawn from a seed.
struct CrossScenario: Sendable {
  var scopeTimeout: Duration?
  var outerCancelAfter: Duration?
  var intensity: RestartIntensity
  var backoff: Backoff
  var children: [CrossChildPlan]
  var groupTasks: [(fails: Bool, delay: Duration)]
  var timer: (interval: Duration, stopAfter: Duration, failPercent: Int)?
  var persistent: (tasks: [(fails: Bool, delay: Duration, cancel: Bool)], close: Duration?)?
  var contenders: [(fails: Bool, delay: Duration)]
  var bodyDelay: Duration
  var random: CrossRandom
  var seedValue: UInt64

  init(seed: UInt64) {
    seedValue = seed
    var random = CrossRandom(seed: seed)
    let mayHang = random.percent() < 70
    scopeTimeout = mayHang || random.percent() < 50 ? random.seconds(5...40) : nil
    outerCancelAfter = random.percent() < 20 ? random.seconds(0...30) : nil
    intensity =
      random.percent() < 20
      ? RestartIntensity(maxRestarts: Int(random.next() % 3), within: .seconds(10))
      : RestartIntensity(maxRestarts: 1000, within: .seconds(3600))
    backoff =
      random.percent() < 50 ? .none : Backoff(initial: .seconds(1), maximum: .seconds(4), multiplier: 2, jitter: 0.5)
    let allowHang = scopeTimeout != nil
    children = (0..<Int(random.next() % 5)).map { _ in CrossChildPlan(&random, allowHang: allowHang) }
    groupTasks = (0..<Int(random.next() % 4)).map { _ in (random.percent() < 30, random.seconds(0...6)) }
    timer =
      random.percent() < 40
      ? (random.seconds(1...3), random.seconds(0...12), random.percent() < 50 ? 20 : 0) : nil
    persistent =
      random.percent() < 50
      ? (
        (0..<Int(random.next() % 6)).map { _ in (random.percent() < 30, random.seconds(0...15), random.percent() < 10) },
        random.percent() < 50 ? random.seconds(1...8) : nil
      ) : nil
    contenders = (0..<Int(random.next() % 4)).map { _ in (random.percent() < 40, random.seconds(0...6)) }
    bodyDelay = random.seconds(0...10)
    self.random = random
  }
}

/// Outcome counts of a run, for the log and RELIABILITY.md.
struct CrossSummary {
  var scenarios = 0
  var faults = 0
  var cancellations = 0
  var violations = 0
}

enum CrossStress {
  /// Runs `iterations` scenarios (seeds `baseSeed + i`), each in its own virtual-time scope, under a real-time
  /// watchdog. Records an issue naming the seed for every violated invariant.
  static func run(iterations: Int, baseSeed: UInt64) async throws -> CrossSummary {
    let progress = CrossProgress(baseSeed)
    return try await withThrowingTaskGroup(of: CrossSummary?.self) { group in
      group.addTask {
        defer { progress.finished.store(true, ordering: .relaxed) }
        var summary = CrossSummary()
        for iteration in 0..<iterations {
          let seed = baseSeed &+ UInt64(iteration)
          progress.seed.store(seed, ordering: .relaxed)
          try await runScenario(seed: seed, progress: progress, summary: &summary)
          progress.done.add(1, ordering: .relaxed)
        }
        return summary
      }
      group.addTask {
        // Polls in short steps and ends by itself once the run is over, so no long real-time sleep is left pending
        // when the process exits (LeakSanitizer would report the runtime's sleep task). Fails the run if no scenario
        // finished for two minutes spent inside its virtual-time scope.
        var last = -1
        var stalledFor = Duration.zero
        while !progress.finished.load(ordering: .relaxed) {
          try await Task.sleep(for: .milliseconds(200))
          let now = progress.done.load(ordering: .relaxed)
          stalledFor = now == last && progress.inside.load(ordering: .relaxed) ? stalledFor + .milliseconds(200) : .zero
          last = now
          if stalledFor >= .seconds(120) {
            let seed = progress.seed.load(ordering: .relaxed)
            Issue.record("no scenario finished for 2 minutes: seed \(seed) hangs (replay: ASYNCTOOLS_STRESS_SEED=\(seed))")
            return nil
          }
        }
        return nil
      }
      var summary: CrossSummary?
      while let result = try await group.next() {
        if let result {
          summary = result
        } else if summary == nil {
          group.cancelAll()  // the watchdog fired: stop the run
        }
      }
      return summary ?? CrossSummary()
    }
  }

  static func runScenario(seed: UInt64, progress: CrossProgress, summary: inout CrossSummary) async throws {
    let scenario = CrossScenario(seed: seed)
    if getenv("ASYNCTOOLS_STRESS_VERBOSE") != nil { print("scenario \(seed): \(scenario)") }
    let ledger = CrossLedger()
    let context = "seed \(seed) (replay: ASYNCTOOLS_STRESS_SEED=\(seed) ASYNCTOOLS_STRESS_ITERATIONS=1)"
    let outcome: (result: Result<Int, any Error>, elapsed: Duration, outerCancelled: Bool)
    do {
      outcome = try await withVirtualTime(deadlockTimeout: .seconds(60)) { clock in
        progress.inside.store(true, ordering: .relaxed)
        defer { progress.inside.store(false, ordering: .relaxed) }
        let start = clock.now
        let scope = Task { try await body(scenario, ledger: ledger, clock: clock) }
        let canceller = Task {
          if let after = scenario.outerCancelAfter {
            try await clock.sleep(for: after)
            scope.cancel()
          }
        }
        let result = await scope.result
        let outerCancelled = scenario.outerCancelAfter.map { start.duration(to: clock.now) >= $0 } ?? false
        canceller.cancel()
        _ = await canceller.result
        return (result, start.duration(to: clock.now), outerCancelled)
      }
    } catch {
      Issue.record("scenario failed to run: \(error) (\(context))")
      summary.violations += 1
      return
    }
    let state = ledger.state.withLock { $0 }
    var violations = state.violations
    if state.live != 0 { violations.append("\(state.live) tasks outlived their owner") }
    if state.reported.sorted() != state.thrown.sorted() {
      violations.append("errors reported \(state.reported.sorted()) ≠ thrown \(state.thrown.sorted())")
    }
    for id in state.registered where state.ran[id] != 1 {
      violations.append("cleanup \(id) ran \(state.ran[id] ?? 0) times")
    }
    for (id, count) in state.ran where !state.registered.contains(id) {
      violations.append("cleanup \(id) ran \(count) times but was never registered")
    }
    if state.shieldsStarted != state.shieldsFinished {
      violations.append("\(state.shieldsStarted - state.shieldsFinished) shielded commits did not finish")
    }
    if state.tracked != 0 { violations.append("\(state.tracked) captured objects were not freed") }
    switch outcome.result {
    case .success(let value):
      if value != Int(truncatingIfNeeded: seed) { violations.append("wrong value \(value)") }
      if outcome.outerCancelled { violations.append("returned a value although cancelled from outside") }
    case .failure(is TimeoutError):
      if let timeout = scenario.scopeTimeout {
        if outcome.elapsed < timeout { violations.append("timed out at \(outcome.elapsed), before \(timeout)") }
      } else {
        violations.append("TimeoutError without a scope timeout")
      }
      summary.cancellations += 1
    case .failure(is CancellationError):
      if !outcome.outerCancelled { violations.append("CancellationError without an outer cancellation") }
      summary.cancellations += 1
    case .failure(let error):
      violations.append("unexpected scope error \(error)")
    }
    summary.scenarios += 1
    summary.faults += state.thrown.count
    if !violations.isEmpty {
      summary.violations += violations.count
      Issue.record("\(violations.joined(separator: "; ")) (\(context))")
    }
  }

  /// The scenario's task tree. Returns the seed's low bits as the scope's value.
  static func body(_ scenario: CrossScenario, ledger: CrossLedger, clock: VirtualClock) async throws -> Int {
    let tracked = CrossTracked(ledger)
    return try await withTaskScope(timeout: scenario.scopeTimeout, clock: clock, errorHandler: ledger.report) {
      scope in
      let handle = scope.handle
      // A supervisor of restartable children, as one child of the scope.
      scope.addTask {
        ledger.enter()
        defer { ledger.leave() }
        let supervised = CrossCount()
        do {
          try await withSupervisor(
            intensity: scenario.intensity, backoff: scenario.backoff, clock: clock, random: scenario.random,
            errorHandler: ledger.report
          ) { supervisor in
            for plan in scenario.children {
              let attempts = CrossCount()
              supervisor.addChild(restart: plan.restart) {
                tracked.touch()
                supervised.value.withLock { $0 += 1 }
                defer { supervised.value.withLock { $0 -= 1 } }
                let attempt = attempts.value.withLock { $0 += 1; return $0 - 1 }
                try await runChild(plan, attempt: attempt, ledger: ledger, clock: clock, handle: handle)
              }
            }
          }
        } catch {
          let left = supervised.value.withLock { $0 }
          if left != 0 { ledger.violation("\(left) supervised children outlived their supervisor") }
          throw error
        }
        let left = supervised.value.withLock { $0 }
        if left != 0 { ledger.violation("\(left) supervised children outlived their supervisor") }
      }
      // An error group: the first failure cancels its siblings; every failure comes out in one ErrorGroup.
      if !scenario.groupTasks.isEmpty {
        scope.addTask {
          ledger.enter()
          defer { ledger.leave() }
          try await withErrorGroup { group in
            for task in scenario.groupTasks {
              try group.addTask {
                ledger.enter()
                defer { ledger.leave() }
                tracked.touch()
                try await clock.sleep(for: task.delay)
                if task.fails { throw ledger.inject() }
              }
            }
          }
        }
      }
      // A periodic timer whose ticks sometimes fail; no tick may outlive `withTimer`.
      if let timer = scenario.timer {
        scope.addTask {
          ledger.enter()
          defer { ledger.leave() }
          let ticks = CrossCount()
          let counter = CrossCount()
          do {
            try await withTimer(
              every: timer.interval, policy: .skipWhileRunning, clock: clock,
              onError: { error, _ in ledger.report(error) },
              { tick in
                tracked.touch()
                ticks.value.withLock { $0 += 1 }
                defer { ticks.value.withLock { $0 -= 1 } }
                let number = counter.value.withLock { $0 += 1; return $0 }
                if number % 7 == 3 { try await clock.sleep(for: timer.interval * 2) }
                if timer.failPercent > 0 && number % 5 == 2 { throw ledger.inject() }
              },
              body: { try await clock.sleep(for: timer.stopAfter) })
          } catch {
            if ticks.value.withLock({ $0 }) != 0 { ledger.violation("a tick outlived its timer") }
            throw error
          }
          if ticks.value.withLock({ $0 }) != 0 { ledger.violation("a tick outlived its timer") }
        }
      }
      // A persistent group, closed gracefully (with a grace period) or shut down; its failures go to its handler.
      if let persistent = scenario.persistent {
        scope.addTask {
          ledger.enter()
          defer { ledger.leave() }
          let group = PersistentTaskGroup { error, _ in ledger.report(error) }
          for task in persistent.tasks {
            let handle = try group.addTask {
              ledger.enter()
              defer { ledger.leave() }
              tracked.touch()
              try await clock.sleep(for: task.delay)
              if task.fails { throw ledger.inject() }
              return 1
            }
            if task.cancel { handle.cancel() }
          }
          // The group's tasks are not cancelled with the caller: the owner must end them, in both paths.
          if let grace = persistent.close {
            _ = try await group.close(timeout: grace, clock: clock)
          } else {
            try? await clock.sleep(for: .seconds(2))
            await group.shutdown()
          }
        }
      }
      // A race: the first success wins and the losers are cancelled and awaited; failures come back collected.
      if !scenario.contenders.isEmpty {
        scope.addTask {
          ledger.enter()
          defer { ledger.leave() }
          let injected = CrossIDs()
          // Distinct instants (the index breaks ties), so no failure can land at the very instant of the win.
          let operations: [@Sendable () async throws -> Int] = scenario.contenders.enumerated().map { index, contender in
            {
              ledger.enter()
              defer { ledger.leave() }
              tracked.touch()
              try await clock.sleep(for: contender.delay + .milliseconds(index))
              if contender.fails { throw injected.add(ledger.inject()) }
              return index
            }
          }
          do {
            let outcome = try await raceCollectingErrors(operations)
            for error in outcome.errors { ledger.report(error) }
          } catch is CancellationError {
            // Documented: when the caller is cancelled and nobody won, `race` throws CancellationError rather than
            // the failures that came before; those are dropped by design, not lost by accident.
            ledger.forgive(injected.all)
          } catch {
            ledger.report(error)  // every contender failed: an ErrorGroup of all of them
          }
          // gatherSafe: every outcome comes back as a Result, none is lost.
          let results = await gatherSafe(operations)
          for case .failure(let error) in results { ledger.report(error) }
        }
      }
      try await clock.sleep(for: scenario.bodyDelay)
      tracked.touch()
      return Int(truncatingIfNeeded: scenario.seedValue)
    }
  }

  /// One run of a supervised child: resources on an exit stack, work bounded by a timeout, a shielded commit.
  static func runChild(
    _ plan: CrossChildPlan, attempt: Int, ledger: CrossLedger, clock: VirtualClock, handle: TaskScope.Handle
  ) async throws {
    ledger.enter()
    defer { ledger.leave() }
    let failing = attempt < plan.failuresBeforeSuccess
    try await withExitStack { stack in
      for throwsError in plan.callbacks where attempt == 0 {
        let id = ledger.newID()
        try stack.callback {
          ledger.ran(id)
          if throwsError { throw ledger.inject() }
        }
        ledger.registered(id)
      }
      for exitThrows in plan.resources where attempt == 0 {
        let id = ledger.newID()
        _ = try await stack.enter(
          AsyncContext<Int> { body in
            ledger.registered(id)
            _ = await body(id)
            ledger.ran(id)
            if exitThrows { throw ledger.inject() }
          })
      }
      if let after = plan.cancelScopeAfter, attempt == 0 {
        try await clock.sleep(for: after)
        handle.cancelAll()
      }
      let work = plan.hang ? Duration.seconds(1_000_000) : plan.work
      do {
        // Only the first run is bounded: a child whose every run times out would be restarted forever.
        if let timeout = plan.timeout, attempt == 0 {
          try await withTimeout(timeout, clock: clock) { try await clock.sleep(for: work) }
        } else {
          try await clock.sleep(for: work)
        }
      } catch is TimeoutError {
        throw ledger.inject()
      }
      if let commit = plan.commit {
        ledger.state.withLock { $0.shieldsStarted += 1 }
        try await withCancellationShield {
          // Shielded: this sleep is not cancelled even when the child is, so the commit always finishes.
          try await clock.sleep(for: commit)
          ledger.state.withLock { $0.shieldsFinished += 1 }
        }
      }
      if failing { throw ledger.inject() }
    }
  }
}
