import AsyncToolsBenchmarks

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

// Runs one workload of `AsyncToolsBenchmarks` in this process, with no harness around it, and
// prints the operations, CPU time (user + system, from getrusage) and wall time: the entry point
// for a profiler (`perf record -g .build/release/run-workload virtual-sleeps/task-sleep`).
//
// usage: run-workload GROUP/VARIANT [OPERATIONS] [REPEATS]

/// CPU time of this process so far.
func cpuTime() -> Duration {
  var usage = rusage()
  #if canImport(Glibc)
    getrusage(RUSAGE_SELF.rawValue, &usage)
  #else
    getrusage(RUSAGE_SELF, &usage)
  #endif
  let micros = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1_000_000
    + Int(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)
  return .microseconds(micros)
}

let arguments = CommandLine.arguments.dropFirst()
guard let name = arguments.first, let workload = allBenchmarks.first(where: { $0.name == name }) else {
  print("usage: run-workload GROUP/VARIANT [OPERATIONS] [REPEATS]; workloads:")
  for workload in allBenchmarks { print("  \(workload.name)") }
  exit(2)
}
let operations = arguments.dropFirst().first.map { Int($0) } ?? workload.operationsThisRun
let repeats = arguments.dropFirst(2).first.map { Int($0) } ?? 1
guard let operations, operations > 0, let repeats, repeats > 0 else {
  print("run-workload: OPERATIONS and REPEATS must be positive integers")
  exit(2)
}
for _ in 0..<repeats {
  let cpuStart = cpuTime()
  let wallStart = ContinuousClock.now
  let extra = try await workload.body(operations)
  let cpu = cpuTime() - cpuStart
  let wall = ContinuousClock.now - wallStart
  let figures = extra.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
  print("\(name) operations=\(operations) cpu=\(cpu) wall=\(wall)\(figures)")
}
