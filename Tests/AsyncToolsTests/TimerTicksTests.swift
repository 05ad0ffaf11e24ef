import AsyncTools
import AsyncToolsTesting
import Testing

@Suite("PeriodicTimer.ticks")
struct TimerTicksTests {
  @Test func theFirstTickComesAtOnceThenOnePerInterval() async throws {
    let ticks = try await withVirtualTime { clock in
      var seen: [String] = []
      for await tick in try PeriodicTimer.ticks(every: .ms(100), clock: clock) {
        seen.append("\(tick.number)@\(clock.now.offset)/due \(tick.scheduledAt.offset)")
        if tick.number == 3 { break }
      }
      return seen
    }
    #expect(
      ticks == [
        "0@0.0 seconds/due 0.0 seconds", "1@0.1 seconds/due 0.1 seconds", "2@0.2 seconds/due 0.2 seconds",
        "3@0.3 seconds/due 0.3 seconds",
      ])
  }

  @Test func initialDelayCountsFromTheFirstNext() async throws {
    let starts = try await withVirtualTime { clock in
      let sequence = try PeriodicTimer.ticks(every: .ms(100), initialDelay: .ms(100), clock: clock)
      try await clock.sleep(for: .seconds(5))  // the schedule has not started yet
      var iterator = sequence.makeAsyncIterator()
      var starts: [Duration] = []
      for _ in 0..<3 {
        _ = await iterator.next()
        starts.append(clock.now.offset)
      }
      return starts
    }
    #expect(starts == [.ms(5100), .ms(5200), .ms(5300)])
  }

  /// A loop body taking 250 ms on a 100 ms schedule, until 1 s; returns "number@start/due" per tick.
  private func slowConsumer(_ schedule: PeriodicTimer.Schedule) async throws -> [String] {
    try await withVirtualTime { clock in
      var seen: [String] = []
      for await tick in try PeriodicTimer.ticks(every: .ms(100), schedule: schedule, clock: clock) {
        seen.append("\(tick.number)@\(clock.now.offset.milliseconds)/\(tick.scheduledAt.offset.milliseconds)")
        if clock.now.offset >= .seconds(1) { break }
        try await clock.sleep(for: .ms(250))
      }
      return seen
    }
  }

  @Test func aSlowConsumerGetsTheOverdueTicksInABurstByDefault() async throws {
    // Due: 0, 100, 200, … Each tick handed out at max(due, consumer ready). The grid is kept.
    let burst = ["0@0/0", "1@250/100", "2@500/200", "3@750/300", "4@1000/400"]
    #expect(try await slowConsumer(.fixedRate) == burst)
    #expect(try await slowConsumer(.fixedRate(missedTicks: .burst)) == burst)
  }

  @Test func aSlowConsumerSkipsOverdueTicksWithSkip() async throws {
    // 0@0 → 1 is due at 100, handed out at 250; then 200 is overdue: next grid point after 250 is
    // 300 (#3), handed out at 500; 400 overdue → 600 (#6) at 750; 700 overdue → 800 (#8) at 1000.
    let skipped = ["0@0/0", "1@250/100", "3@500/300", "6@750/600", "8@1000/800"]
    #expect(try await slowConsumer(.fixedRate(missedTicks: .skip)) == skipped)
  }

  @Test func aSlowConsumerShiftsTheScheduleWithDelayOrFixedDelay() async throws {
    // 0@0 → 1 due at 100, handed out at 250 → 2 due at 350 → handed out at 500 → 3 due at 600 …
    let shifted = ["0@0/0", "1@250/100", "2@500/350", "3@750/600", "4@1000/850"]
    #expect(try await slowConsumer(.fixedRate(missedTicks: .delay)) == shifted)
    #expect(try await slowConsumer(.fixedDelay) == shifted)
  }

  @Test func cancellationEndsTheSequence() async throws {
    let count = try await withVirtualTime { clock in
      let consumer = Task {
        var count = 0
        for await _ in try PeriodicTimer.ticks(every: .ms(100), clock: clock) { count += 1 }
        return count
      }
      try await clock.sleep(for: .ms(250))
      consumer.cancel()
      return try await consumer.value
    }
    #expect(count == 3)
  }

  @Test func badArgumentsAreRejected() {
    for interval in [Duration.zero, .ms(-5)] {
      let error = #expect(throws: AsyncToolsError.self) { _ = try PeriodicTimer.ticks(every: interval) }
      #expect(error?.code == .invalidArgument)
      #expect(error?.message.contains("interval") == true)
    }
    let error = #expect(throws: AsyncToolsError.self) {
      _ = try PeriodicTimer.ticks(every: .seconds(1), initialDelay: .ms(-1))
    }
    #expect(error?.code == .invalidArgument)
    #expect(error?.message.contains("initialDelay") == true)
  }
}
