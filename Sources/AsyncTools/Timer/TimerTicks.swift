extension PeriodicTimer {
  /// The ticks of a schedule as an `AsyncSequence`, for a loop that handles each tick itself:
  ///
  /// ```swift
  /// for await tick in try PeriodicTimer.ticks(every: .seconds(1), clock: clock) {
  ///   await poll(tick.number)                  // runs inline: ticks never overlap
  /// }
  /// ```
  ///
  /// The pull-based sibling of ``PeriodicTimer``: the loop body *is* the tick, so there is no
  /// delay policy — a slow body delays the next `next()`, and the ``MissedTickBehavior`` of a
  /// ``Schedule/fixedRate`` schedule decides what happens to the ticks that fell due meanwhile
  /// (``MissedTickBehavior/skip`` gives the effect of ``DelayPolicy/skipWhileRunning``).
  ///
  /// Compared with swift-async-algorithms' `AsyncTimerSequence` (`.repeating(every:clock:)`),
  /// which is a fixed-rate burst schedule whose first element comes one interval after the first
  /// `next()`, this sequence adds the tick at once (aiotools), a tick number and due instant, the
  /// fixed-delay schedule and the skip and delay behaviours. If you need none of those, use
  /// `AsyncTimerSequence`; both are plain `AsyncSequence`s and work with every
  /// swift-async-algorithms operator.
  ///
  /// Each iterator runs its own schedule, starting at its first `next()`: the first tick falls due
  /// then (or `initialDelay` later), and tick *n*'s deadline is computed when tick *n − 1* is
  /// handed out. `next()` returns `nil` once the iterating task is cancelled, and from then on.
  public struct Ticks<C: Clock>: AsyncSequence, Sendable where C.Duration == Duration {
    /// A tick: its number, the instant it was due, the interval.
    public typealias Element = Tick<C>
    /// Ending is by cancellation, which ends the sequence rather than throwing.
    public typealias Failure = Never

    let interval: Duration
    let initialDelay: Duration
    let schedule: Schedule
    let clock: C

    /// Hands out the ticks of one schedule.
    public struct AsyncIterator: AsyncIteratorProtocol {
      let ticks: Ticks
      var scheduler: TickScheduler<C>?
      var finished = false

      /// Waits for the next tick's deadline and returns the tick, or `nil` if the task is
      /// cancelled (before or while waiting).
      public mutating func next() async -> Tick<C>? {
        if finished { return nil }
        var scheduler =
          self.scheduler
          ?? TickScheduler(
            start: ticks.clock.now.advanced(by: ticks.initialDelay), interval: ticks.interval,
            schedule: ticks.schedule)
        do {
          try await ticks.clock.sleep(until: scheduler.deadline, tolerance: nil)
          try Task.checkCancellation()  // a clock may return from a past deadline without checking
        } catch {
          finished = true
          self.scheduler = nil
          return nil
        }
        let tick = scheduler.tick
        scheduler.advance(now: ticks.clock.now)
        self.scheduler = scheduler
        return tick
      }
    }

    /// Starts a new schedule (see the type's documentation).
    public func makeAsyncIterator() -> AsyncIterator {
      AsyncIterator(ticks: self)
    }
  }

  /// The ticks of a schedule on `clock`, as an `AsyncSequence`; see ``Ticks``.
  ///
  /// - Parameters:
  ///   - interval: the period. Must be positive.
  ///   - initialDelay: the time from the first `next()` to the first tick; zero by default (the
  ///     first tick comes at once). Must not be negative.
  ///   - schedule: ``Schedule/fixedRate`` (no drift; overdue ticks in a burst) by default.
  ///   - clock: the clock to sleep on (a `VirtualClock` in tests).
  /// - Throws: ``AsyncToolsError/Code/invalidArgument`` for a non-positive `interval` or a negative
  ///   `initialDelay`.
  public static func ticks<C: Clock>(
    every interval: Duration, initialDelay: Duration = .zero, schedule: Schedule = .fixedRate, clock: C
  ) throws(AsyncToolsError) -> Ticks<C> where C.Duration == Duration {
    try validate(interval: interval, initialDelay: initialDelay)
    return Ticks(interval: interval, initialDelay: initialDelay, schedule: schedule, clock: clock)
  }

  /// The ticks of a schedule on ``DefaultClock``; see ``ticks(every:initialDelay:schedule:clock:)``.
  public static func ticks(
    every interval: Duration, initialDelay: Duration = .zero, schedule: Schedule = .fixedRate
  ) throws(AsyncToolsError) -> Ticks<DefaultClock> {
    try ticks(every: interval, initialDelay: initialDelay, schedule: schedule, clock: DefaultClock())
  }
}
