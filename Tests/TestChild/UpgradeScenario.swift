// The binary-upgrade scenario for AsyncToolsServerTests (SIGUSR2: a new main process takes over).
//
//     AsyncToolsTestChild upgrade [--threads] [--workers N] [--port P | --socket NAME]
//         [--upgrade-timeout-ms N] [--trap PATH]
//
// A line server: each connection gets one line back, `<version> main <pid of the main process>:
// <the line it sent>`, then is closed. Every main process (the first one and each new one an upgrade
// starts) prints `main <pid> <version>` and `listening <port>`, and at the end `server exit <code>
// <description>`. `--trap PATH`: a main process that starts while the file PATH holds `fail` exits
// with status 1 at once (a broken new build); workers that start while it holds `hang` never get
// ready (they sleep in their set-up), while it holds `worker-fails` they throw in their set-up (so
// their main process stops on its own). `--socket NAME` takes the socket systemd passed (socket
// activation) instead of binding one.
import AsyncToolsServer

#if canImport(Glibc)
import Glibc
#endif

/// The version the upgrade test changes in a copy of this binary (same length, found by `sed`).
let testChildVersion = "asynctools-test-child-version-0001"

func runUpgradeScenarioIfRequested() async {
  let arguments = Array(CommandLine.arguments.dropFirst())
  guard arguments.first == "upgrade" else { return }
  func value(_ name: String) -> Int? { optionValue(name, in: arguments).flatMap { Int($0) } }
  let trap = optionValue("--trap", in: arguments).flatMap(readTrap)
  // The worker processes run this too: only a main process (the handshake names no worker) fails.
  let isWorker = getenv("ASYNCTOOLS_ROLE").map { String(cString: $0) } == "asynctools-server-worker"
  if trap == "fail" && !isWorker {
    say("main \(getpid()) refuses to start: the trap says fail")
    exit(1)
  }

  var configuration = ServerConfiguration(
    mode: arguments.contains("--threads") ? .threads : .processes, numWorkers: value("--workers") ?? 2,
    listen: .init(port: value("--port") ?? 0))
  if let name = optionValue("--socket", in: arguments) { configuration.listen = .systemdSocket(named: name) }
  if let milliseconds = value("--upgrade-timeout-ms") { configuration.upgradeTimeout = .milliseconds(milliseconds) }
  struct SetUpFailed: Error {}
  await runLineServer(configuration: configuration) { context in
    if trap == "hang" { try await Task.sleep(for: .seconds(3600)) }
    if trap == "worker-fails" { throw SetUpFailed() }
    return "\(testChildVersion) main \(context.mode == .threads ? getpid() : getppid()): "
  } main: { _ in
    say("main \(getpid()) \(testChildVersion)")
  }
}

/// The first word of the file at `path`, or nil when it cannot be read.
private func readTrap(_ path: String) -> String? {
  let fd = open(path, O_RDONLY | O_CLOEXEC)
  guard fd >= 0 else { return nil }
  defer { close(fd) }
  var buffer = [UInt8](repeating: 0, count: 64)
  let count = read(fd, &buffer, buffer.count)
  guard count > 0 else { return nil }
  return String(decoding: buffer[0..<count], as: UTF8.self).split(whereSeparator: { $0 == "\n" || $0 == " " }).first
    .map(String.init)
}
