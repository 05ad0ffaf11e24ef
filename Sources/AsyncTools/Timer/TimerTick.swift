extension PeriodicTimer {
  /// What a tick knows about itself: its number, the instant it was due, the timer's interval.
  public struct Tick<C: Clock>: Sendable where C.Duration == Duration {
    /// The tick's position in the schedule: 0 for the first tick, then 1, 2, …
    ///
    /// Ticks that were skipped (``DelayPolicy/skipWhileRunning``, ``MissedTickBehavior/skip``)
    /// use up their numbers, so a gap tells the tick how many were skipped before it.
    public let number: Int

    /// The instant the tick was due. It started at that instant or, if the timer woke late or
    /// had to wait for a previous tick's cleanup, a little after.
    public let scheduledAt: C.Instant

    /// The timer's interval (aiotools passes it as the callback's argument).
    public let interval: Duration

    @usableFromInline
    init(number: Int, scheduledAt: C.Instant, interval: Duration) {
      self.number = number
      self.scheduledAt = scheduledAt
      self.interval = interval
    }
  }
}
