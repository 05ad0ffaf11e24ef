import AsyncTools

/// 1,000,000 no-op children through `withTaskScope` and `withSupervisor` against a raw
/// `withDiscardingTaskGroup` (issue target ≤ 1.25×; memory flat in the number of children).
let scopeBenchmarks: [Benchmark] = [
  Benchmark(group: "scope-1M", variant: "raw-discarding-group", operations: 1_000_000, quickOperations: 200_000) {
    operations in
    await withDiscardingTaskGroup { group in
      for _ in 0..<operations { group.addTask {} }
    }
    return [:]
  },
  Benchmark(group: "scope-1M", variant: "asynctools", operations: 1_000_000, quickOperations: 200_000) {
    operations in
    try await withTaskScope { scope in
      for _ in 0..<operations { scope.addTask {} }
    }
    return [:]
  },
  Benchmark(group: "supervisor-1M", variant: "raw-discarding-group", operations: 1_000_000, quickOperations: 200_000) {
    operations in
    await withDiscardingTaskGroup { group in
      for _ in 0..<operations { group.addTask {} }
    }
    return [:]
  },
  Benchmark(group: "supervisor-1M", variant: "asynctools", operations: 1_000_000, quickOperations: 200_000) {
    operations in
    try await withSupervisor { supervisor in
      for _ in 0..<operations { supervisor.addChild {} }
    }
    return [:]
  },
]
