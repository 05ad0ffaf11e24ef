// Server scenarios for AsyncToolsServerTests (separate from the process tests' entry points).
//
//     AsyncToolsTestChild server [--threads] [--workers N] [--port P] [--wait-timeout-ms N]
//         [--graceful-timeout-ms N] [--policy stop|ignore|restart] [--ignore-stop I]
//         [--fail-startup I] [--slow-startup I] [--exit-early] [--extra N] [--metrics]
//
// Each worker prints `worker <index> pid <pid>` when its body starts and `worker <index> stopped
// by <signal>` after its stop; the main process prints `listening <port>` and, at the end,
// `server exit <code> <description>`, then exits with that code. Readiness is in the server's log
// (standard error): `worker <index> is ready`. With `--metrics`, the main process records the
// server's metrics (dimension `server="child"`) and prints each counter and timer before its exit
// line: `metric <label> <extra dimension>=<value> <total>` (`metric <label> - <count>` for a timer).
import AsyncToolsServer
import MetricsTestKit

#if canImport(Glibc)
import Glibc
#endif

func runServerScenarioIfRequested() async {
  let arguments = Array(CommandLine.arguments.dropFirst())
  guard arguments.first == "server" else { return }
  func option(_ name: String) -> Int? { optionValue(name, in: arguments).flatMap { Int($0) } }

  var configuration = ServerConfiguration(
    mode: arguments.contains("--threads") ? .threads : .processes, numWorkers: option("--workers") ?? 2)
  if let port = option("--port") { configuration.listen = .init(port: port) }
  if let milliseconds = option("--wait-timeout-ms") { configuration.waitTimeout = .milliseconds(milliseconds) }
  if let milliseconds = option("--graceful-timeout-ms") {
    configuration.gracefulShutdownTimeout = .milliseconds(milliseconds)
  }
  if let position = arguments.firstIndex(of: "--policy"), position + 1 < arguments.count {
    switch arguments[position + 1] {
    case "ignore": configuration.onWorkerFailure = .ignore
    case "restart": configuration.onWorkerFailure = .restart(maxRestarts: 5, within: .seconds(60))
    default: configuration.onWorkerFailure = .stopServer
    }
  }
  let ignoreStop = option("--ignore-stop")
  let failStartup = option("--fail-startup")
  let slowStartup = option("--slow-startup")
  let exitEarly = arguments.contains("--exit-early")
  let metrics = TestMetrics()
  if arguments.contains("--metrics") { configuration.metrics = .init(name: "child", factory: metrics) }

  struct StartupFailed: Error {}
  do {
    let extra: @Sendable (WorkerContext) async throws -> Void = { context in
      say("extra \(context.processIndex) pid \(getpid())")
      say("extra \(context.processIndex) stopped by \(await context.stopSignal())")
    }
    let extras = Array(repeating: extra, count: option("--extra") ?? 0)
    let worker: @Sendable (WorkerContext) async throws -> Void = { context in
      let index = context.processIndex
      say("worker \(index) pid \(getpid())")
      if exitEarly { return }
      if index == failStartup { throw StartupFailed() }
      if index == slowStartup { try await Task.sleep(for: .seconds(3600)) }
      let signal = await context.stopSignal()
      say("worker \(index) stopped by \(signal)")
      if index == ignoreStop {
        // Ignores everything the server may still send, but SIGKILL.
        var all = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_BLOCK, &all, nil)
        while true { pause() }
      }
    }
    let result = try await startServer(configuration: configuration, worker: worker, extraProcesses: extras) { server in
      if let port = server.listeningPort { say("listening \(port)") }
      return try await server.runWorkers()
    }
    if configuration.metrics != nil { printMetrics(metrics) }
    say("server exit \(result.exitCode) \(result)")
    exit(result.exitCode)
  } catch {
    say("server error \(error)")
    exit(1)
  }
}

/// One line per counter (its total) and timer (how many values), the `server` dimension left out.
private func printMetrics(_ metrics: TestMetrics) {
  func extra(_ dimensions: [(String, String)]) -> String {
    dimensions.filter { $0.0 != "server" }.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
  }
  for counter in metrics.counters {
    let dimensions = extra(counter.dimensions)
    say("metric \(counter.label) \(dimensions.isEmpty ? "-" : dimensions) \(counter.totalValue)")
  }
  for timer in metrics.timers { say("metric \(timer.label) - \(timer.values.count)") }
}
