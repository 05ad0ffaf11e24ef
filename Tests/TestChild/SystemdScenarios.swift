// systemd scenarios for AsyncToolsServerTests (socket activation and sd_notify).
//
//     AsyncToolsTestChild systemd [--socket NAME | --any-socket | --port P] [--workers N] [--threads]
//
// A line server: each connection gets one line back, `worker <index> LISTEN_FDS=<value or unset>
// NOTIFY_SOCKET=<value or unset>: <the line it sent>`, then is closed. The main process prints
// `listening <port>` and the same two variables as the workers see them (`main LISTEN_FDS=…`), and at
// the end `server exit <code> <description>`; a server error prints `server error <message>` and
// exits 1.
import AsyncToolsServer

#if canImport(Glibc)
import Glibc
#endif

func runSystemdScenarioIfRequested() async {
  let arguments = Array(CommandLine.arguments.dropFirst())
  guard arguments.first == "systemd" else { return }
  func value(_ name: String) -> String? { optionValue(name, in: arguments) }
  @Sendable func variables() -> String {
    ["LISTEN_FDS", "NOTIFY_SOCKET"].map { "\($0)=\(getenv($0).map { String(cString: $0) } ?? "unset")" }
      .joined(separator: " ")
  }

  var configuration = ServerConfiguration(
    mode: arguments.contains("--threads") ? .threads : .processes, numWorkers: value("--workers").flatMap { Int($0) } ?? 2)
  if let port = value("--port").flatMap({ Int($0) }) {
    configuration.listen = .init(port: port)
  } else {
    configuration.listen = .systemdSocket(named: value("--socket"))
  }
  await runLineServer(configuration: configuration) { context in
    "worker \(context.processIndex) \(variables()): "
  } main: { _ in
    say("main \(variables())")
  }
}
