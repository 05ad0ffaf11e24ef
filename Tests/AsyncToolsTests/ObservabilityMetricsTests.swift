import AsyncTools
import AsyncToolsTesting
import MetricsTestKit
import Testing

private struct Boom: Error {}

/// Each test gets its own `TestMetrics` through `MetricsConfiguration.factory`, so tests run in
/// parallel without bootstrapping the global `MetricsSystem`.
@Suite("swift-metrics instrumentation")
struct ObservabilityMetricsTests {
  @Test func cacheCountsHitsMissesLoadsFailuresAndSize() async throws {
    let metrics = TestMetrics()
    let cache = try AsyncLRUCache<Int, Int>(maxSize: 2, metrics: .init(name: "users", factory: metrics))
    let users = [("cache", "users")]
    _ = try await cache.value(forKey: 1) { $0 }  // miss, load
    _ = try await cache.value(forKey: 1) { $0 }  // hit
    _ = try await cache.value(forKey: 1) { $0 }  // hit
    await #expect(throws: Boom.self) { try await cache.value(forKey: 2) { _ in throw Boom() } }
    #expect(try metrics.expectCounter("asynctools_cache_hits_total", users).totalValue == 2)
    #expect(try metrics.expectCounter("asynctools_cache_misses_total", users).totalValue == 2)
    #expect(try metrics.expectCounter("asynctools_cache_loads_total", users).totalValue == 2)
    #expect(try metrics.expectCounter("asynctools_cache_load_failures_total", users).totalValue == 1)
    #expect(try metrics.expectGauge("asynctools_cache_size", users).lastValue == 1)
  }

  /// Hits are reported from the cache's own tally in batches of 64, and in full on every miss, store,
  /// removal and `info()`: a hit does not call the backend.
  @Test func cacheReportsHitsInBatches() async throws {
    let metrics = TestMetrics()
    let cache = try AsyncLRUCache<Int, Int>(metrics: .init(name: "hot", factory: metrics))
    _ = try await cache.value(forKey: 1) { $0 }
    for _ in 0..<100 { _ = try await cache.value(forKey: 1) { $0 } }
    let hits = try metrics.expectCounter("asynctools_cache_hits_total", [("cache", "hot")])
    #expect(hits.totalValue == 64)
    #expect(cache.info().hits == 100)
    #expect(hits.totalValue == 100)
  }

  @Test func cacheCountsEvictionsByReason() async throws {
    let metrics = TestMetrics()
    try await withVirtualTime { clock in
      let cache = try AsyncLRUCache<Int, Int>(
        maxSize: 2, expireAfter: .seconds(10), clock: clock, metrics: .init(name: "pages", factory: metrics))
      for key in 1...3 { _ = try await cache.value(forKey: key) { $0 } }  // the third store evicts key 1
      try await clock.sleep(for: .seconds(11))
      #expect(cache.info().currentSize == 0)  // keys 2 and 3 expired
    }
    let size = try metrics.expectCounter("asynctools_cache_evictions_total", [("cache", "pages"), ("reason", "capacity")])
    let expired = try metrics.expectCounter(
      "asynctools_cache_evictions_total", [("cache", "pages"), ("reason", "expiry")])
    #expect(size.totalValue == 1)
    #expect(expired.totalValue == 2)
    #expect(try metrics.expectGauge("asynctools_cache_size", [("cache", "pages")]).lastValue == 0)
  }

  @Test func cacheCountsRefreshesAndInvalidations() async throws {
    let metrics = TestMetrics()
    try await withVirtualTime { clock in
      let cache = try AsyncLRUCache<Int, Int>(
        refreshAfter: .seconds(10), clock: clock, metrics: .init(name: "feeds", factory: metrics))
      _ = try await cache.value(forKey: 1) { $0 }  // miss, load
      try await clock.sleep(for: .seconds(11))
      _ = try await cache.value(forKey: 1) { $0 }  // hit on a stale value: a background refresh
      cache.invalidate(1)
    }
    let feeds = [("cache", "feeds")]
    #expect(try metrics.expectCounter("asynctools_cache_refreshes_total", feeds).totalValue == 1)
    #expect(try metrics.expectCounter("asynctools_cache_loads_total", feeds).totalValue == 2)
    #expect(try metrics.expectCounter("asynctools_cache_misses_total", feeds).totalValue == 1)
    #expect(try metrics.expectCounter("asynctools_cache_hits_total", feeds).totalValue == 1)
    let invalidated = try metrics.expectCounter(
      "asynctools_cache_evictions_total", [("cache", "feeds"), ("reason", "invalidation")])
    #expect(invalidated.totalValue == 1)
  }

  @Test func persistentGroupCountsRunningQueuedCompletedFailed() async throws {
    let metrics = TestMetrics()
    let group = try PersistentTaskGroup(
      name: "jobs", maxConcurrency: 1, errorHandler: { _, _ in }, metrics: .init(name: "jobs", factory: metrics))
    let jobs = [("group", "jobs")]
    let gate = AsyncStream<Void>.makeStream()
    let first = try group.addTask { for await _ in gate.stream {} }
    let second = try group.addTask { throw Boom() }
    #expect(try metrics.expectGauge("asynctools_group_tasks_running", jobs).lastValue == 1)
    #expect(try metrics.expectGauge("asynctools_group_tasks_queued", jobs).lastValue == 1)
    gate.continuation.finish()
    try await first.value
    _ = await second.result
    await group.close()
    #expect(try metrics.expectCounter("asynctools_group_tasks_completed_total", jobs).totalValue == 1)
    #expect(try metrics.expectCounter("asynctools_group_tasks_failed_total", jobs).totalValue == 1)
    #expect(try metrics.expectGauge("asynctools_group_tasks_running", jobs).lastValue == 0)
    #expect(try metrics.expectGauge("asynctools_group_tasks_queued", jobs).lastValue == 0)
  }

  @Test func supervisorCountsRestartsPerChildAndGiveUps() async throws {
    let metrics = TestMetrics()
    let runs = ChildCounter()
    await #expect(throws: SupervisorError.self) {
      try await withVirtualTime { clock in
        try await withSupervisor(
          intensity: .init(maxRestarts: 2, within: .seconds(60)), clock: clock, errorHandler: { _, _ in },
          metrics: .init(name: "workers", factory: metrics)
        ) { supervisor in
          _ = supervisor.addChild(name: "flaky", restart: .onFailure) {
            runs.increment()
            throw Boom()
          }
        }
      }
    }
    let flaky = [("supervisor", "workers"), ("child", "flaky")]
    #expect(runs.value == 3)
    #expect(try metrics.expectCounter("asynctools_supervisor_restarts_total", flaky).totalValue == 2)
    #expect(try metrics.expectCounter("asynctools_supervisor_give_ups_total", flaky).totalValue == 1)
  }

  @Test func timerCountsTicksSkippedTicksAndLateness() async throws {
    let metrics = TestMetrics()
    try await withVirtualTime { clock in
      // Each tick takes 2.5 intervals: with skipWhileRunning, the ticks due meanwhile are skipped.
      try await withTimer(
        every: .seconds(1), policy: .skipWhileRunning, clock: clock,
        metrics: .init(name: "heartbeat", factory: metrics)
      ) { _ in
        try await clock.sleep(for: .milliseconds(2500))
      } body: {
        try await clock.sleep(for: .milliseconds(5500))
      }
    }
    let heartbeat = [("timer", "heartbeat")]
    // Due at 0…5: started at 0 and 3 (running at 1, 2, 4, 5).
    #expect(try metrics.expectCounter("asynctools_timer_ticks_total", heartbeat).totalValue == 2)
    #expect(try metrics.expectCounter("asynctools_timer_ticks_skipped_total", heartbeat).totalValue == 4)
    #expect(try metrics.expectTimer("asynctools_timer_tick_lateness", heartbeat).values == [0, 0])
  }

  @Test func timerRecordsLatenessOfLateTicks() async throws {
    let metrics = TestMetrics()
    try await withVirtualTime { clock in
      // Every sleep wakes 200 ms after its deadline: ticks 1 and 2 start 200 ms late.
      let late = TimerFixtures.LateClock.late(by: .milliseconds(200), clock)
      try await withTimer(every: .seconds(1), clock: late, metrics: .init(name: "late", factory: metrics)) { _ in
      } body: {
        try await clock.sleep(for: .milliseconds(2500))
      }
    }
    let lateness = try metrics.expectTimer("asynctools_timer_tick_lateness", [("timer", "late")]).values
    #expect(lateness == [0, 200_000_000, 200_000_000])
  }
}
