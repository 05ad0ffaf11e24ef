import AsyncToolsProcess
import Foundation

// asynctools-bench: `list` prints the benchmark names; `run NAME [--quick]` runs one benchmark in
// this process and prints one JSON line. `Benchmarks/run` runs each in its own process, so peak
// memory is per benchmark.

// A re-executed copy of this program (the process benchmarks fork entry points) becomes the child here.
try registerBenchmarkEntryPoints()
await ChildProcess.bootstrap()

let all: [Benchmark] =
  virtualTimeBenchmarks
  + runtimeSleepBenchmarks
  + scopeBenchmarks
  + coordinationBenchmarks
  + cacheBenchmarks
  + timerBenchmarks
  + processBenchmarks

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "list":
  for benchmark in all { print(benchmark.name) }
case "run":
  guard arguments.count >= 2, let benchmark = all.first(where: { $0.name == arguments[1] }) else {
    FileHandle.standardError.write(Data("unknown benchmark; `list` shows the names\n".utf8))
    exit(2)
  }
  let quick = arguments.contains("--quick")
  let measurement = try await measure(benchmark, quick: quick)
  print(measurement.json)
default:
  FileHandle.standardError.write(Data("usage: AsyncToolsBenchmarks list | run NAME [--quick]\n".utf8))
  exit(2)
}
