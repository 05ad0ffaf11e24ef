import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue #14, item 4: a stop signal that reaches the server while its workers are still starting
/// (before a worker process has trapped the stop signals) must still run every worker's tear-down.
/// Worker processes start with the stop signals blocked, so the signal waits, pending, for the
/// worker's handler instead of killing it with the default action.
///
/// Real programs and real signals: `AsyncToolsTestChild server` with 3 workers gets SIGTERM or
/// SIGINT the moment its main process prints `listening` — after it trapped the signals, before
/// (or while) it spawns the workers, so the main process forwards the stop to workers that are
/// still in their runtime's start-up. Every run must show all three `stopped by` lines and exit 0.
@Suite("Stop during start-up")
struct ServerStartupRaceTests {
  /// Runs per mode: 100 (each takes tens of milliseconds), 10 under a sanitizer (each takes more
  /// than a second there); `ASYNCTOOLS_STARTUP_RACE_RUNS` overrides it.
  static var runs: Int {
    getenv("ASYNCTOOLS_STARTUP_RACE_RUNS").flatMap { Int(String(cString: $0)) } ?? (isSanitized ? 10 : 100)
  }

  /// Whether this test process runs under ThreadSanitizer or AddressSanitizer (their runtimes are
  /// linked into it).
  static var isSanitized: Bool {
    let symbols: [String] = ["__tsan_init", "__asan_init"]
    return symbols.contains { symbol in dlsym(UnsafeMutableRawPointer(bitPattern: 0), symbol) != nil }
  }

  @Test(arguments: ["processes", "threads"])
  func aStopDuringStartUpRunsEveryWorkersTearDown(mode: String) async throws {
    let workers = 3
    var complete = 0
    for run in 0..<Self.runs {
      let signal = run % 2 == 0 ? SIGTERM : SIGINT
      let name = signal == SIGTERM ? "SIGTERM" : "SIGINT"
      let server = try LaunchedProcess(
        "AsyncToolsTestChild", ["server", "--workers", "\(workers)", "--port", "0"] + (mode == "threads" ? ["--threads"] : []))
      defer { server.killIfRunning() }
      let code = try await withWatchdog {
        await server.waitForLine { $0.hasPrefix("listening ") }
        server.signal(signal)
        return await server.exitCode()
      }
      let lines = server.stdoutLines
      let stopped = (0..<workers).filter { lines.contains("worker \($0) stopped by \(name)") }
      if code == 0 && stopped.count == workers {
        complete += 1
      } else {
        let output = lines.joined(separator: "\n")
        Issue.record(
          "run \(run) (\(mode), \(name)): exit \(code), tear-down ran in workers \(stopped) of 0..<\(workers)\n\(output)")
      }
    }
    #expect(complete == Self.runs, "\(complete) of \(Self.runs) runs ran every worker's tear-down")
  }
}
