import AsyncTools
import AsyncToolsTesting
import Logging
import Testing

private typealias Log = TimerFixtures.Log
private typealias TickFailure = TimerFixtures.TickFailure

/// Records every log line as `<level> <message> tick=<tick> <error>`.
private struct RecordingLogHandler: LogHandler {
  let log: Log<String>
  var metadata: Logger.Metadata = [:]
  var logLevel: Logger.Level = .trace
  subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }
  func log(event: LogEvent) {
    let tick = event.metadata?["tick"].map { "\($0)" } ?? "-"
    let error = event.metadata?["error"].map { "\($0)" } ?? "-"
    log.append("\(event.level) \(event.message) tick=\(tick) \(error)")
  }
}

/// Long enough never to pass during a test.
private let never = Duration.seconds(3600)

@Suite("PeriodicTimer and withTimer: failing ticks and stopping")
struct TimerErrorsAndStoppingTests {
  // MARK: Errors

  @Test func aFailingTickIsReportedOnceAndTheTimerLivesOn() async throws {
    // aiotools #86: in 1.x one failing tick killed the timer.
    let ticks = Log<Int>()
    let reported = Log<(TickFailure, Int)>()
    try await withVirtualTime { clock in
      try await withTimer(
        every: .ms(100), clock: clock, onError: { error, tick in reported.append((error as! TickFailure, tick.number)) }
      ) { tick in
        ticks.append(tick.number)
        if tick.number % 2 == 1 { throw TickFailure(id: tick.number) }
      } body: {
        try await clock.sleep(for: .ms(650))
      }
    }
    #expect(ticks.all == [0, 1, 2, 3, 4, 5, 6])
    #expect(reported.all.map(\.0) == [TickFailure(id: 1), TickFailure(id: 3), TickFailure(id: 5)])
    #expect(reported.all.map(\.1) == [1, 3, 5])
  }

  @Test func aFailingTickWithoutAHandlerIsLoggedAndTheTimerLivesOn() async throws {
    let ticks = Log<Int>()
    let logged = Log<String>()
    let logger = Logger(label: "AsyncTools.Timer") { _ in RecordingLogHandler(log: logged) }
    try await TimerLogging.$logger.withValue(logger) {
      try await withVirtualTime { clock in
        try await withTimer(every: .ms(100), clock: clock) { tick in
          ticks.append(tick.number)
          throw TickFailure(id: tick.number)
        } body: {
          try await clock.sleep(for: .ms(250))
        }
      }
    }
    #expect(ticks.all == [0, 1, 2])
    // One error-level line per failing tick, naming the tick and the error.
    let expected = (0...2).map { "error timer tick failed; the timer keeps running tick=\($0) \(TickFailure(id: $0))" }
    #expect(logged.all == expected)
  }

  @Test func theCancellationErrorOfACancelledTickIsNotReported() async throws {
    let reported = Log<String>()
    try await withVirtualTime { clock in
      try await withTimer(
        every: .ms(100), policy: .cancelPrevious, clock: clock, onError: { error, _ in reported.append("\(error)") }
      ) { _ in
        try await clock.sleep(for: never)
      } body: {
        try await clock.sleep(for: .ms(350))
      }
    }
    #expect(reported.all.isEmpty)
  }

  @Test func aCancellationErrorThrownByATickThatWasNotCancelledIsReported() async throws {
    let reported = Log<Int>()
    try await withVirtualTime { clock in
      try await withTimer(
        every: .ms(100), clock: clock, onError: { error, tick in
          if error is CancellationError { reported.append(tick.number) }
        }
      ) { tick in
        if tick.number == 1 { throw CancellationError() }
      } body: {
        try await clock.sleep(for: .ms(250))
      }
    }
    #expect(reported.all == [1])
  }

  @Test func theBodysErrorPropagatesAfterTheTicksHaveFinished() async throws {
    let events = Log<String>()
    try await withVirtualTime { clock in
      await #expect(throws: TickFailure(id: -1)) {
        try await withTimer(every: .ms(100), clock: clock) { tick in
          do { try await clock.sleep(for: never) } catch {
            await TimerFixtures.cleanup(for: .ms(30), on: clock)
            events.append("cleaned \(tick.number)@\(clock.now.offset.milliseconds)")
          }
        } body: {
          try await clock.sleep(for: .ms(150))
          throw TickFailure(id: -1)
        }
      }
      events.append("returned@\(clock.now.offset.milliseconds)")
    }
    #expect(events.all == ["cleaned 0@180", "cleaned 1@180", "returned@180"])
  }

  @Test func withTimerReturnsTheBodysValue() async throws {
    let value = try await withVirtualTime { clock in
      try await withTimer(every: .seconds(1), clock: clock) { _ in } body: { 42 }
    }
    #expect(value == 42)
  }

  // MARK: Stopping

  @Test func cancelReturnsOnlyAfterEveryRunningTicksCleanup() async throws {
    let events = Log<String>()
    try await withVirtualTime { clock in
      let timer = try PeriodicTimer.start(every: .ms(100), clock: clock) { tick in
        do { try await clock.sleep(for: never) } catch {
          // Tick n cleans up for (n + 1) seconds: cancel() must wait for the slowest.
          await TimerFixtures.cleanup(for: .seconds(tick.number + 1), on: clock)
          events.append("cleaned \(tick.number)@\(clock.now.offset.milliseconds)")
        }
      }
      try await clock.sleep(for: .ms(250))
      await timer.cancel()
      events.append("cancel returned@\(clock.now.offset.milliseconds)")
      await timer.cancel()  // idempotent: returns at once
      events.append("second cancel returned@\(clock.now.offset.milliseconds)")
    }
    #expect(
      events.all == [
        "cleaned 0@1250", "cleaned 1@2250", "cleaned 2@3250", "cancel returned@3250", "second cancel returned@3250",
      ])
  }

  @Test func concurrentCancelsAllWaitForTheCleanup() async throws {
    let events = Log<String>()
    try await withVirtualTime { clock in
      let timer = try PeriodicTimer.start(every: .ms(100), clock: clock) { _ in
        do { try await clock.sleep(for: never) } catch { await TimerFixtures.cleanup(for: .seconds(1), on: clock) }
      }
      try await clock.sleep(for: .ms(50))
      await withTaskGroup(of: Void.self) { group in
        for index in 0..<3 {
          group.addTask {
            await timer.cancel()
            events.append("cancel \(index)@\(clock.now.offset.milliseconds)")
          }
        }
      }
    }
    #expect(events.all.count == 3)
    #expect(events.all.allSatisfy { $0.hasSuffix("@1050") })
  }

  @Test func cancellingTheCallerOfWithTimerStopsTicksAndBody() async throws {
    let events = Log<String>()
    try await withVirtualTime { clock in
      let task = Task {
        try await withTimer(every: .ms(100), clock: clock) { tick in
          do { try await clock.sleep(for: never) } catch { events.append("tick \(tick.number) cancelled") }
        } body: {
          do { try await clock.sleep(for: never) } catch { events.append("body cancelled") }
        }
      }
      try await clock.sleep(for: .ms(150))
      task.cancel()
      try await task.value
      events.append("stopped@\(clock.now.offset.milliseconds)")
    }
    #expect(Set(events.all.dropLast()) == ["tick 0 cancelled", "tick 1 cancelled", "body cancelled"])
    #expect(events.all.last == "stopped@150")
  }

  @Test func droppingTheLastReferenceStopsTheTimer() async throws {
    let ticks = Log<Int>()
    try await withVirtualTime { clock in
      do {
        let timer = try PeriodicTimer.start(every: .ms(100), clock: clock) { tick in ticks.append(tick.number) }
        try await clock.sleep(for: .ms(150))
        _ = timer
      }
      try await clock.sleep(for: .seconds(1))
    }
    #expect(ticks.all == [0, 1])
  }
}
