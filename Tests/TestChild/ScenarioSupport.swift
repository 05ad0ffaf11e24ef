// What the scenarios of this test child share: reading their flags, printing the lines the tests
// wait for, and the line server of the systemd and upgrade scenarios.
import AsyncToolsServer

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The argument after `name` in `arguments`, or nil when `name` is absent or last.
func optionValue(_ name: String, in arguments: [String]) -> String? {
  guard let position = arguments.firstIndex(of: name), position + 1 < arguments.count else { return nil }
  return arguments[position + 1]
}

/// Prints `line` and flushes at once: the test reads the pipe line by line, in order.
@Sendable func say(_ line: String) {
  print(line)
  fflush(nil)
}

/// Reads one line from `fd` (blocking, at most 5 s), answers `prefix` + the line, and closes it.
func answerOneLine(_ fd: CInt, prefix: String) {
  defer { close(fd) }
  _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
  var timeout = timeval(tv_sec: 5, tv_usec: 0)
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
  var line: [UInt8] = []
  var byte: UInt8 = 0
  while read(fd, &byte, 1) == 1, byte != 0x0A { line.append(byte) }
  let answer = Array((prefix + String(decoding: line, as: UTF8.self) + "\n").utf8)
  _ = write(fd, answer, answer.count)
}

/// Runs a line server with `configuration` and exits: each worker answers every connection with
/// one line, the `prefix` its set-up returns followed by the line received, then closes it. The
/// main process prints `listening <port>` (after `main`'s own lines), and at the end `server exit
/// <code> <description>`; a server error prints `server error <message>` and exits 1.
func runLineServer(
  configuration: ServerConfiguration, prefix: @escaping @Sendable (WorkerContext) async throws -> String,
  main: @escaping (ServerMain) -> Void
) async -> Never {
  let worker: @Sendable (WorkerContext) async throws -> Void = { context in
    let prefix = try await prefix(context)
    let connections = try context.acceptedConnections()
    let server = Task {
      for await fd in connections { answerOneLine(fd, prefix: prefix) }
    }
    _ = await context.stopSignal()
    connections.stopAccepting()
    await server.value
  }
  do {
    let result = try await startServer(configuration: configuration, worker: worker) { server in
      main(server)
      say("listening \(server.listeningPort ?? -1)")
      return try await server.runWorkers()
    }
    say("server exit \(result.exitCode) \(result)")
    exit(result.exitCode)
  } catch {
    say("server error \((error as? ServerError)?.message ?? "\(error)")")
    exit(1)
  }
}
