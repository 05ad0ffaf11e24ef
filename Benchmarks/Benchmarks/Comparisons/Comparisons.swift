import AsyncToolsBenchmarks
import AsyncToolsProcess
import Benchmark

/// The cross-language comparison on package-benchmark: every workload of `AsyncToolsBenchmarks`
/// (the AsyncTools side and its Swift baselines), one process each, with wall time, CPU, mallocs,
/// peak memory, the operation count and the workload's extra figures as metrics.
/// `Benchmarks/run` turns the samples into the ratio table next to Python aiotools.
@main
enum Comparisons {
  static func main() async throws {
    // A re-executed copy of this program (the process benchmarks fork entry points) becomes the child here.
    try registerBenchmarkEntryPoints()
    await ChildProcess.bootstrap()
    await ComparisonRunner.main()
  }
}

/// Registers the workloads with package-benchmark.
enum ComparisonRunner: BenchmarkRunnerHooks {
  static func registerBenchmarks() {
    for workload in allBenchmarks {
      register(workload)
    }
  }

  /// Custom metrics are integers: extra figures are recorded in thousandths (`Benchmarks/report.py`
  /// divides them back).
  static func extraMetric(_ key: String) -> BenchmarkMetric {
    .custom("\(key)_x1000", polarity: .prefersSmaller, useScalingFactor: false)
  }

  static let operationsMetric = BenchmarkMetric.custom("operations", polarity: .prefersLarger, useScalingFactor: false)

  static func register(_ workload: AsyncToolsBenchmarks.Benchmark) {
    let operations = workload.operationsThisRun
    let countables = [.mallocCountTotal, .peakMemoryResident, operationsMetric] + workload.extraKeys.map(extraMetric)
    let configuration = Benchmark.Configuration(
      metrics: [.wallClock, .cpuTotal] + countables,
      timeUnits: .nanoseconds,
      // Raw counts, so the samples `Benchmarks/run` reads are exact.
      units: Dictionary(uniqueKeysWithValues: countables.map { ($0, BenchmarkUnits.count) }),
      warmupIterations: 1,
      maxDuration: .seconds(900),
      maxIterations: workload.runsThisRun
    )
    Benchmark(workload.name, configuration: configuration) { benchmark in
      let extra: [String: Double]
      do {
        extra = try await workload.body(operations)
      } catch {
        benchmark.error("\(workload.name) threw \(error)")
        return
      }
      benchmark.measurement(operationsMetric, operations)
      for (key, value) in extra {
        benchmark.measurement(extraMetric(key), Int((value * 1000).rounded()))
      }
    }
  }
}
