// The echo server's command line: flags, their checks, and what `--help` tells an operator.
import ArgumentParser
import AsyncToolsServer
import AsyncToolsServerCommandLine

struct EchoServerCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "echo-server",
    abstract: "A TCP echo server with prefork (or threaded) workers.",
    discussion: """
      The main process binds one listening socket and shares it with every \
      worker; each worker accepts from it and echoes every byte back. Workers \
      are processes, shown in `ps` as "echo-server: worker N" (or tasks of one \
      process with --threads, or --mode threads). It listens on 127.0.0.1:8888 \
      unless --host and --port say otherwise.

      SIGNALS (to the main process):
        INT, TERM  stop: the workers stop accepting, finish their connections
                   (for at most --drain-timeout seconds) and end; one still
                   running after --wait-timeout is killed.
                   A second INT or TERM forces the stop at once.
        HUP        rolling restart: one worker at a time, a fresh worker
                   replaces an old one once it is ready; no connection is
                   refused. Workers run the executable the server was started
                   from, so a rebuilt binary is picked up.
        USR2       binary upgrade: a new main process starts from the
                   executable at the path the server was started from and
                   inherits the listening socket; once all its workers are
                   ready it takes over (under systemd: MAINPID=) and this one
                   stops its own workers and exits 0. If the new one fails or
                   is not ready within --upgrade-timeout, it is stopped and
                   this one logs why and serves on. A USR2 or HUP during an
                   upgrade is logged and ignored; INT or TERM stops both.

      WHEN A WORKER DIES OR FAILS (--on-worker-failure):
        stop       stop the whole server (default).
        ignore     log it and keep the others; the server ends when all have.
        restart    start a fresh worker in its place, at most --max-restarts
                   times within --restart-window seconds; one more failure
                   stops the server.

      EXIT STATUS:
        0   stopped by a signal, every worker completed, or handed over to
            a new main process (USR2)
        1   a worker failed and the server stopped, or the server could not
            start (the address is in use, for example)
        2   stopped, but a worker had to be killed (--wait-timeout or a
            second signal)
        64  a bad flag
      """)

  /// The standard server flags (AsyncToolsServerCommandLine): --host, --port, --workers, --mode
  /// (--threads), --wait-timeout, --drain-timeout, --on-worker-failure, --max-restarts,
  /// --restart-window, --systemd-socket, --socket-name; each bad value is an error naming its flag.
  @OptionGroup var server: ServerOptions

  /// The port without `--port`: aiotools' echo example's.
  static let defaultPort = 8888

  /// The server configuration these flags ask for.
  func serverConfiguration() throws -> ServerConfiguration {
    try server.configuration(defaultPort: Self.defaultPort)
  }
}
