import AsyncToolsTesting
import Clocks

/// 1,000 tasks × 1,000 virtual sleeps each (issue target: ≤ 1 µs per sleep, under 1 s in all),
/// against swift-clocks' `TestClock` (at the largest size it finishes) and the `Task.yield()` floor.
let virtualTimeBenchmarks: [Benchmark] = [
  Benchmark(group: "virtual-sleeps", variant: "asynctools", operations: 1_000_000, quickOperations: 100_000) {
    operations in
    let tasks = 1_000
    let sleeps = operations / tasks
    let end = try await withVirtualTime { clock in
      await withDiscardingTaskGroup { group in
        for task in 0..<tasks {
          group.addTask {
            for _ in 0..<sleeps { try? await clock.sleep(for: .milliseconds(task % 97 + 1)) }
          }
        }
      }
      return clock.now.offset
    }
    precondition(end == .milliseconds(97 * sleeps), "virtual time must be exact")
    return [:]
  },
  // A bare yield per "sleep": the floor any scheduler-driven virtual clock pays.
  Benchmark(group: "virtual-sleeps", variant: "task-yield-floor", operations: 1_000_000, quickOperations: 100_000) {
    operations in
    let tasks = 1_000
    let sleeps = operations / tasks
    await withDiscardingTaskGroup { group in
      for _ in 0..<tasks {
        group.addTask { for _ in 0..<sleeps { await Task.yield() } }
      }
    }
    return [:]
  },
  // swift-clocks' TestClock, driven by `run()`: far slower, so it runs a smaller size
  // (10 tasks × 100 sleeps); report per-sleep figures to compare.
  Benchmark(
    group: "virtual-sleeps", variant: "swift-clocks-TestClock", operations: 1_000, quickOperations: 200, runs: 3
  ) { operations in
    let tasks = 10
    let sleeps = operations / tasks
    let clock = TestClock()
    let work = Task {
      await withDiscardingTaskGroup { group in
        for task in 0..<tasks {
          group.addTask {
            for _ in 0..<sleeps { try? await clock.sleep(for: .milliseconds(task + 1)) }
          }
        }
      }
    }
    await clock.run(timeout: .seconds(600))
    await work.value
    return [:]
  },
]
