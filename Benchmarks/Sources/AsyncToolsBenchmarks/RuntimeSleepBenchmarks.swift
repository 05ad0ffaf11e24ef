import AsyncToolsTesting

/// Plain `Task.sleep` inside `withVirtualTime` (issue #13: 1,000,000 runtime sleeps under 1 s, like
/// `VirtualClock` sleeps), with the `Task.yield()` floor measured inside the same scope.
/// `inexact_tasks` counts tasks whose final virtual time was not exact: runtime sleeps are
/// converted from real deadlines (exact for round durations even when the driver thread is
/// preempted between a task's clock reading and its sleep; see the testing guide).
let runtimeSleepBenchmarks: [Benchmark] = [
  Benchmark(group: "virtual-sleeps", variant: "task-sleep", operations: 1_000_000, quickOperations: 100_000) {
    operations in
    let tasks = 1_000
    let sleeps = operations / tasks
    let inexact = try await withVirtualTime { clock in
      await withTaskGroup(of: Int.self) { group in
        for task in 0..<tasks {
          group.addTask {
            let step = Duration.seconds(task % 97 + 1)
            for _ in 0..<sleeps { try? await Task.sleep(for: step) }
            return clock.now.offset == step * sleeps ? 0 : 1
          }
        }
        return await group.reduce(0, +)
      }
    }
    return ["inexact_tasks": Double(inexact)]
  },
  Benchmark(
    group: "virtual-sleeps", variant: "task-yield-floor-in-scope", operations: 1_000_000, quickOperations: 100_000
  ) { operations in
    let tasks = 1_000
    let sleeps = operations / tasks
    try await withVirtualTime { _ in
      await withDiscardingTaskGroup { group in
        for _ in 0..<tasks {
          group.addTask { for _ in 0..<sleeps { await Task.yield() } }
        }
      }
    }
    return [:]
  },
]
