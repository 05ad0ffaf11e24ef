import AsyncToolsTesting
import Testing

// The example of the "Testing with virtual time" guide, kept compiling and passing.

private struct Flaky: Error {}

/// Retries `operation` with exponential backoff: 1 s, 2 s, 4 s, … capped at 15 minutes.
private func retrying<T>(
  attempts: Int, clock: some Clock<Duration>, _ operation: () async throws -> T
) async throws -> T {
  var delay = Duration.seconds(1)
  var attempt = 1
  while true {
    do {
      return try await operation()
    } catch where attempt < attempts {
      try await clock.sleep(for: delay)
      delay = min(delay * 2, .seconds(900))
      attempt += 1
    }
  }
}

@Test func retriesForAnHourThenSucceeds() async throws {
  let elapsed = try await withVirtualTime { clock in
    let started = ContinuousClock.now
    var calls = 0
    let value = try await retrying(attempts: 14, clock: clock) {
      calls += 1
      if calls < 14 { throw Flaky() }
      return "ok"
    }
    #expect(value == "ok")
    // 1 + 2 + 4 + … + 512 s, then three sleeps capped at 900 s: 3,723 s of virtual time.
    #expect(clock.now.offset == .seconds(3_723))
    return ContinuousClock.now - started
  }
  #expect(elapsed < .seconds(2), "an hour of virtual time must take no real time")
}
