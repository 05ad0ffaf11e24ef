import AsyncToolsProcess
import Subprocess

#if canImport(System)
  import System
#else
  import SystemPackage
#endif

/// Entry points this benchmark program can be re-executed into (see `main.swift`).
package func registerBenchmarkEntryPoints() throws {
  try ChildProcess.register(entry: "noop") { _ in 0 }
}

/// Spawn + wait of a trivial child: AsyncTools' own posix_spawn + pidfd path against
/// swift-subprocess running the same executable; and `fork` of an entry point (with its readiness
/// handshake), through the fork server and by re-execution, for the comparison with aiotools' `afork`.
let processBenchmarks: [Benchmark] = [
  Benchmark(group: "process-spawn-wait", variant: "asynctools", operations: 500, quickOperations: 100) { operations in
    for _ in 0..<operations {
      let child = try await ChildProcess.spawn(executable: "/bin/true")
      let status = try await child.wait()
      precondition(status == .exited(0))
    }
    return [:]
  },
  Benchmark(group: "process-spawn-wait", variant: "swift-subprocess", operations: 500, quickOperations: 100) {
    operations in
    for _ in 0..<operations {
      let result = try await Subprocess.run(.path(FilePath("/bin/true")), output: .discarded)
      precondition(result.terminationStatus.isSuccess)
    }
    return [:]
  },
  Benchmark(group: "process-fork", variant: "asynctools", operations: 200, quickOperations: 50) { operations in
    for _ in 0..<operations {
      let child = try await ChildProcess.fork(entry: "noop")
      let status = try await child.wait()
      precondition(status == .exited(0))
    }
    return [:]
  },
  // The same without the fork server: the program re-executed for each child (what `fork` did before).
  Benchmark(group: "process-fork", variant: "asynctools-reexec", operations: 200, quickOperations: 50) {
    operations in
    for _ in 0..<operations {
      let child = try await ChildProcess.fork(entry: "noop", options: .init(useForkServer: false))
      let status = try await child.wait()
      precondition(status == .exited(0))
    }
    return [:]
  },
]
