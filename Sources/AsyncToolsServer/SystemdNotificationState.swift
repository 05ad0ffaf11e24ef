#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the main process tells systemd (`sd_notify(3)`) at each ``ServerLifecycleEvent``: a pure
/// state machine (events in, datagrams out), so the protocol is unit-tested without a socket.
///
/// - The first time every live worker is ready: `READY=1`, `MAINPID=`, `STATUS=`. Before that,
///   each ready worker updates `STATUS=` (systemd shows it in `systemctl status`).
/// - A rolling restart: `RELOADING=1` with `MONOTONIC_USEC=` (what `Type=notify-reload` requires),
///   then `READY=1` when it ends, completed or aborted (the server is serving either way).
/// - A stop: `STOPPING=1` once; nothing after it.
/// - A binary upgrade: `STATUS=` when it begins and if it fails; when the new main process takes
///   over, `MAINPID=` with its pid (the new one sends its own `READY=1` and `MAINPID=` too: with
///   `NotifyAccess=main` systemd takes messages from the main process only, so it is this one that
///   moves the main pid), and nothing after it: the old main process's end is no stop.
package struct SystemdNotificationState: Sendable, Hashable {
  package enum Phase: Sendable, Hashable { case starting, ready, reloading, stopping, handedOver }

  package private(set) var phase = Phase.starting
  /// The main process's pid, sent as `MAINPID=` with the first `READY=1`.
  let mainPID: pid_t

  package init(mainPID: pid_t) { self.mainPID = mainPID }

  /// The datagrams to send for `event`, in order (each one may hold several `KEY=value` lines).
  /// `monotonicMicroseconds` is `CLOCK_MONOTONIC` now, in µs (only read for `RELOADING=1`).
  package mutating func datagrams(
    for event: ServerLifecycleEvent, monotonicMicroseconds: () -> UInt64
  ) -> [String] {
    switch (phase, event) {
    case (.stopping, _), (.handedOver, _):
      return []
    case (_, .handedOver(let newMainProcess)):
      phase = .handedOver
      return ["MAINPID=\(newMainProcess)\nSTATUS=handed over to the new main process \(newMainProcess)"]
    case (_, .upgradeBegan):
      return ["STATUS=binary upgrade: starting a new main process"]
    case (_, .upgradeFailed):
      return ["STATUS=binary upgrade failed: serving on"]
    case (_, .stopBegan(let signal)):
      phase = .stopping
      return ["STOPPING=1\nSTATUS=stopping" + (signal.map { " on \($0)" } ?? ": the server ends")]
    case (.starting, .workerReady(let ready, let live)) where ready >= live:
      phase = .ready
      return ["READY=1\nMAINPID=\(mainPID)\nSTATUS=serving with \(live) worker(s)"]
    case (.starting, .workerReady(let ready, let live)):
      return ["STATUS=starting: \(ready) of \(live) worker(s) ready"]
    case (_, .workerReady):
      return []
    case (_, .restartBegan(let workers)):
      phase = .reloading
      return [
        "RELOADING=1\nMONOTONIC_USEC=\(monotonicMicroseconds())\nSTATUS=rolling restart of \(workers) worker(s)"
      ]
    case (.reloading, .restartEnded(let completed)):
      phase = .ready
      let outcome = completed ? "done" : "aborted, serving with the workers left"
      return ["READY=1\nMAINPID=\(mainPID)\nSTATUS=rolling restart \(outcome)"]
    case (_, .restartEnded):
      return []
    }
  }

  /// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares `MONOTONIC_USEC=` with.
  package static func monotonicMicroseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
  }
}
