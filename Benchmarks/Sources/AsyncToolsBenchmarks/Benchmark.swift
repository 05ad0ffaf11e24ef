import Foundation

/// One workload of the cross-language comparison: a named workload in a group, either the
/// AsyncTools side or a baseline. `Benchmarks/Comparisons` registers each with package-benchmark,
/// which runs it in its own process and measures wall time, CPU, mallocs and peak memory.
package struct Benchmark: Sendable {
  /// Benchmarks compared with each other share a group (e.g. "scope-1M").
  package var group: String
  /// "asynctools" for the measured side, or the baseline's name (e.g. "raw-discarding-group").
  package var variant: String
  /// Operations per run at full size and in quick mode (for per-operation figures).
  package var operations: Int
  package var quickOperations: Int
  /// Measured runs after the warm-up run (package-benchmark's `maxIterations`).
  package var runs: Int = 5
  /// The keys of the extra figures `body` returns (declared up front: package-benchmark records
  /// only metrics it knows before the run).
  package var extraKeys: [String] = []
  /// The workload. Receives the operation count; returns extra figures to report (may be empty).
  package var body: @Sendable (_ operations: Int) async throws -> [String: Double]

  /// "group/variant": the benchmark's name in package-benchmark and in `Benchmarks/run REGEX`.
  package var name: String { "\(group)/\(variant)" }

  /// Operations per run for this invocation: `BENCHMARK_QUICK=1` (set by `Benchmarks/run --quick`)
  /// selects the quick size.
  package var operationsThisRun: Int { Self.quick ? quickOperations : operations }

  /// Measured runs for this invocation (fewer in quick mode).
  package var runsThisRun: Int { Self.quick ? max(3, runs / 2) : runs }

  package static var quick: Bool { ProcessInfo.processInfo.environment["BENCHMARK_QUICK"] == "1" }
}

extension Duration {
  var nanoseconds: Int64 {
    let (seconds, attoseconds) = components
    return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
  }
}

/// Every Swift workload of the comparison, in report order.
package let allBenchmarks: [Benchmark] =
  virtualTimeBenchmarks
  + runtimeSleepBenchmarks
  + scopeBenchmarks
  + coordinationBenchmarks
  + cacheBenchmarks
  + timerBenchmarks
  + processBenchmarks
