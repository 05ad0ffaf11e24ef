/// The deadline arithmetic of a timer: which tick is next and when it is due.
///
/// Kept apart from the loop so the three schedules and three missed-tick behaviours are plain,
/// synchronous code. Deadlines advance by exact `Duration` additions (integer attoseconds), so a
/// fixed-rate schedule stays on its grid over any number of ticks.
struct TickScheduler<C: Clock> where C.Duration == Duration {
  let interval: Duration
  let schedule: PeriodicTimer.Schedule
  /// The number of the next tick.
  private(set) var number = 0
  /// The instant the next tick is due.
  private(set) var deadline: C.Instant

  init(start: C.Instant, interval: Duration, schedule: PeriodicTimer.Schedule) {
    self.interval = interval
    self.schedule = schedule
    self.deadline = start
  }

  /// The next tick, as handed to the tick body.
  var tick: PeriodicTimer.Tick<C> {
    PeriodicTimer.Tick(number: number, scheduledAt: deadline, interval: interval)
  }

  /// Moves on to the tick after the current one, which has just been started (or skipped);
  /// `now` is the time right after that. It is read only where the schedule needs it: not by a
  /// fixed-rate schedule that bursts, whose next deadline is the next instant of its grid whatever
  /// the time (one clock read less per tick for the default timer).
  mutating func advance(now: @autoclosure () -> C.Instant) {
    switch schedule.kind {
    case .fixedDelay:
      // aiotools: `create_task(cb(interval)); await sleep(interval)` — the delay runs from now.
      number += 1
      deadline = now().advanced(by: interval)
    case .fixedRate(let missed):
      number += 1
      deadline = deadline.advanced(by: interval)
      if missed == .burst { return }  // due already or not: the loop starts it when it is due
      let now = now()
      guard deadline <= now else { return }
      switch missed.kind {
      case .burst:
        break  // handled above: an overdue tick is started without sleeping, and so on until caught up
      case .skip:
        // The first instant of the grid strictly after `now`.
        let behind = deadline.duration(to: now).attoseconds / interval.attoseconds + 1
        number += Int(clamping: behind)
        deadline = deadline.advanced(by: Duration(attoseconds: behind * interval.attoseconds))
      case .delay:
        deadline = now.advanced(by: interval)
      }
    }
  }
}
