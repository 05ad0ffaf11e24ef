import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// One benchmark: a named workload in a group, either the AsyncTools side or a baseline.
struct Benchmark: Sendable {
  /// Benchmarks compared with each other share a group (e.g. "scope-1M").
  var group: String
  /// "asynctools" for the measured side, or the baseline's name (e.g. "raw-discarding-group").
  var variant: String
  /// Operations per run at full size and in quick mode (for per-operation figures).
  var operations: Int
  var quickOperations: Int
  /// Runs after the warm-up run (the median of them is reported).
  var runs: Int = 5
  /// The workload. Receives the operation count; returns extra figures to report (may be empty).
  var body: @Sendable (_ operations: Int) async throws -> [String: Double]

  var name: String { "\(group)/\(variant)" }
}

/// What one benchmark measured.
struct Measurement {
  var benchmark: Benchmark
  var operations: Int
  var wall: [Duration]
  var cpu: [Duration]
  var peakResidentKiB: Int
  var extra: [String: Double]

  func median(_ values: [Duration]) -> Duration {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
  }

  /// One JSON object on one line (read by `Benchmarks/report.py`).
  var json: String {
    let wallNs = median(wall).nanoseconds
    let cpuNs = median(cpu).nanoseconds
    var fields: [String] = [
      "\"group\": \"\(benchmark.group)\"",
      "\"variant\": \"\(benchmark.variant)\"",
      "\"language\": \"swift\"",
      "\"operations\": \(operations)",
      "\"runs\": \(wall.count)",
      "\"wall_ns_median\": \(wallNs)",
      "\"wall_ns_min\": \(wall.min()!.nanoseconds)",
      "\"cpu_ns_median\": \(cpuNs)",
      "\"peak_rss_kib\": \(peakResidentKiB)",
    ]
    for (key, value) in extra.sorted(by: { $0.key < $1.key }) {
      fields.append("\"\(key)\": \(value)")
    }
    return "{" + fields.joined(separator: ", ") + "}"
  }
}

extension Duration {
  var nanoseconds: Int64 {
    let (seconds, attoseconds) = components
    return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
  }
}

/// CPU time (user + system) this process and its reaped children have used so far (the Python
/// side counts the same).
func processCPUTime() -> Duration {
  func duration(_ time: timeval) -> Duration {
    .seconds(Int64(time.tv_sec)) + .microseconds(Int64(time.tv_usec))
  }
  var total = Duration.zero
  for who in [RUSAGE_SELF, RUSAGE_CHILDREN] {
    var usage = rusage()
    getrusage(who.rawValue, &usage)
    total += duration(usage.ru_utime) + duration(usage.ru_stime)
  }
  return total
}

/// The process's peak resident set size (VmHWM), in KiB.
func peakResidentKiB() -> Int {
  guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
  for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
    return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
  }
  return 0
}

/// Runs one benchmark: a warm-up run, then `runs` measured runs.
func measure(_ benchmark: Benchmark, quick: Bool) async throws -> Measurement {
  let operations = quick ? benchmark.quickOperations : benchmark.operations
  let runs = quick ? max(3, benchmark.runs / 2) : benchmark.runs
  _ = try await benchmark.body(operations)  // warm-up
  var wall: [Duration] = []
  var cpu: [Duration] = []
  var extras: [[String: Double]] = []
  let clock = ContinuousClock()
  for _ in 0..<runs {
    let cpuBefore = processCPUTime()
    let start = clock.now
    let extra = try await benchmark.body(operations)
    wall.append(clock.now - start)
    cpu.append(processCPUTime() - cpuBefore)
    extras.append(extra)
  }
  // Extra figures: the median of each over the runs.
  var extra: [String: Double] = [:]
  for key in Set(extras.flatMap(\.keys)) {
    let values = extras.compactMap { $0[key] }.sorted()
    extra[key] = values[values.count / 2]
  }
  return Measurement(
    benchmark: benchmark, operations: operations, wall: wall, cpu: cpu,
    peakResidentKiB: peakResidentKiB(), extra: extra)
}
