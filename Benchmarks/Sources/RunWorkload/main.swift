import AsyncToolsBenchmarks
import AsyncToolsProcess
import Foundation

/// Runs one workload of `AsyncToolsBenchmarks` once, outside package-benchmark, and prints its CPU time (getrusage,
/// this process and its reaped children), wall time and extra figures as one JSON line. For profiling a workload
/// (`valgrind --tool=callgrind run-workload timers-1000x10ms/asynctools 20`) and for quick repeated CPU readings.
///
/// usage: run-workload GROUP/VARIANT [OPERATIONS] [REPEATS]   (defaults: the workload's quick size, 1 repeat;
/// one JSON line per repeat, so `perf record -g run-workload virtual-sleeps/task-sleep 1000000 3` works too)
@main
enum RunWorkload {
  static func main() async throws {
    try registerBenchmarkEntryPoints()
    await ChildProcess.bootstrap()
    let arguments = CommandLine.arguments.dropFirst()
    guard let name = arguments.first else {
      FileHandle.standardError.write(Data("usage: run-workload GROUP/VARIANT [OPERATIONS] [REPEATS]\n".utf8))
      exit(64)
    }
    guard let workload = allBenchmarks.first(where: { $0.name == name }) else {
      let names = allBenchmarks.map(\.name).joined(separator: "\n  ")
      FileHandle.standardError.write(Data("run-workload: no workload named \(name); known:\n  \(names)\n".utf8))
      exit(64)
    }
    var operations = workload.quickOperations
    if arguments.count > 1 {
      guard let parsed = Int(arguments[arguments.startIndex + 1]), parsed > 0 else {
        FileHandle.standardError.write(Data("run-workload: OPERATIONS must be a positive integer\n".utf8))
        exit(64)
      }
      operations = parsed
    }
    var repeats = 1
    if arguments.count > 2 {
      guard let parsed = Int(arguments[arguments.startIndex + 2]), parsed > 0 else {
        FileHandle.standardError.write(Data("run-workload: REPEATS must be a positive integer\n".utf8))
        exit(64)
      }
      repeats = parsed
    }
    for _ in 0..<repeats {
      try await runOnce(workload, name: name, operations: operations)
    }
  }

  /// Runs the workload once and prints its figures as one JSON line.
  static func runOnce(_ workload: Benchmark, name: String, operations: Int) async throws {
    let cpuBefore = cpuNanoseconds()
    let wallBefore = ContinuousClock.now
    let extra = try await workload.body(operations)
    let wall = ContinuousClock.now - wallBefore
    let cpuAfter = cpuNanoseconds()
    let user = cpuAfter.user - cpuBefore.user
    let system = cpuAfter.system - cpuBefore.system
    var row: [String: Any] = [
      "name": name, "operations": operations, "cpu_ns": user + system, "user_ns": user, "system_ns": system,
      "wall_ns": wall.components.seconds * 1_000_000_000 + wall.components.attoseconds / 1_000_000_000,
    ]
    for (key, value) in extra { row[key] = value }
    let json = try JSONSerialization.data(withJSONObject: row, options: [.sortedKeys])
    print(String(decoding: json, as: UTF8.self))
  }

  /// User and system CPU of this process and its reaped children, in nanoseconds.
  static func cpuNanoseconds() -> (user: Int, system: Int) {
    var user = 0
    var system = 0
    for who in [RUSAGE_SELF.rawValue, RUSAGE_CHILDREN.rawValue] {
      var usage = rusage()
      getrusage(who, &usage)
      user += Int(usage.ru_utime.tv_sec) * 1_000_000_000 + Int(usage.ru_utime.tv_usec) * 1_000
      system += Int(usage.ru_stime.tv_sec) * 1_000_000_000 + Int(usage.ru_stime.tv_usec) * 1_000
    }
    return (user, system)
  }
}
