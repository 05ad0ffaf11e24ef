import AsyncTools

/// One result of a hand-written gather (a struct, not a tuple: see `gatherSafe`'s comment on a
/// release-mode miscompile of tuple child results).
struct Indexed: Sendable {
  var index: Int
  var result: Result<Int, any Error>
}

private let contenders = 4

@Sendable private func contender(_ value: Int) async throws -> Int {
  await Task.yield()
  return value
}

/// `race` / `gatherSafe` against the task group a Swift user would write for the same thing
/// (issue target ≤ 1.2×), and 1,000,000 short tasks through a `PersistentTaskGroup` against a raw
/// `withDiscardingTaskGroup` (≤ 1.5×).
let coordinationBenchmarks: [Benchmark] = [
  Benchmark(group: "race", variant: "asynctools", operations: 50_000, quickOperations: 10_000) { operations in
    let operationsList = (1...contenders).map { value in { @Sendable in try await contender(value) } }
    for _ in 0..<operations { _ = try await race(operationsList) }
    return [:]
  },
  Benchmark(group: "race", variant: "hand-written-group", operations: 50_000, quickOperations: 10_000) {
    operations in
    for _ in 0..<operations {
      _ = try await withThrowingTaskGroup(of: Int.self) { group in
        for value in 1...contenders { group.addTask { try await contender(value) } }
        let first = try await group.next()!
        group.cancelAll()
        return first
      }
    }
    return [:]
  },
  Benchmark(group: "gather-safe", variant: "asynctools", operations: 50_000, quickOperations: 10_000) { operations in
    let operationsList = (1...contenders).map { value in { @Sendable in try await contender(value) } }
    for _ in 0..<operations { _ = await gatherSafe(operationsList) }
    return [:]
  },
  Benchmark(group: "gather-safe", variant: "hand-written-group", operations: 50_000, quickOperations: 10_000) {
    operations in
    for _ in 0..<operations {
      _ = await withTaskGroup(of: Indexed.self) { group in
        for value in 1...contenders {
          group.addTask {
            do { return Indexed(index: value - 1, result: .success(try await contender(value))) } catch {
              return Indexed(index: value - 1, result: .failure(error))
            }
          }
        }
        var results = [Result<Int, any Error>?](repeating: nil, count: contenders)
        for await outcome in group { results[outcome.index] = outcome.result }
        return results.map { $0! }
      }
    }
    return [:]
  },
  Benchmark(group: "persistent-1M", variant: "asynctools", operations: 1_000_000, quickOperations: 200_000) {
    operations in
    let group = PersistentTaskGroup(name: "bench")
    for _ in 0..<operations { try group.addTask {} }
    await group.close()
    return [:]
  },
  Benchmark(group: "persistent-1M", variant: "raw-discarding-group", operations: 1_000_000, quickOperations: 200_000) {
    operations in
    await withDiscardingTaskGroup { group in
      for _ in 0..<operations { group.addTask {} }
    }
    return [:]
  },
]
