#if os(Linux)
import AsyncTools
import CAsyncToolsShims
import Glibc

/// The child side of re-execution: this process, started by a parent with a
/// ``ReexecutionEnvironment``, claims what it was asked to become and reports readiness.
///
/// ``ChildProcess/bootstrap()`` claims entry points; AsyncToolsServer claims its worker role in
/// `startServer`. Whoever claims gets the same treatment:
/// 1. the handshake variables leave the environment (the child's own children must not inherit
///    them);
/// 2. the readiness descriptor becomes close-on-exec;
/// 3. the parent is checked once more: the parent-death signal was armed before `main` by the
///    shim's load-time constructor, and a parent that is gone by now means the signal is due.
package struct ReexecutedChild: Sendable {
  package let target: ReexecutionEnvironment.Target
  package let arguments: [String]
  private let readyFD: Int32

  /// Claims this process when it was re-executed as `role`, else returns `nil` and leaves the
  /// environment alone (it may name an entry point, which ``ChildProcess/bootstrap()`` claims).
  /// A malformed handshake environment is printed and ends the process with status 126.
  package static func claim(role: String) -> ReexecutedChild? {
    claim { $0 == .role(role) }
  }

  /// Claims this process when it was re-executed at an entry point.
  static func claimEntryPoint() -> ReexecutedChild? {
    claim { if case .entryPoint = $0 { true } else { false } }
  }

  private static func claim(_ matches: (ReexecutionEnvironment.Target) -> Bool) -> ReexecutedChild? {
    guard let decoded = ReexecutionEnvironment.current() else { return nil }
    let handshake: ReexecutionEnvironment
    switch decoded {
    case .failure(let malformed):
      ReexecutionEnvironment.clearCurrent()
      printError("\(malformed)")
      exit(ReexecutionEnvironment.malformedExitCode)
    case .success(let value):
      guard matches(value.target) else { return nil }
      handshake = value
    }
    ReexecutionEnvironment.clearCurrent()
    _ = fcntl(handshake.readyFD, F_SETFD, FD_CLOEXEC)
    if let death = handshake.parentDeath, getppid() != death.parent {
      asynctools_die_by_signal(death.signal, ReexecutionEnvironment.malformedExitCode)
    }
    return ReexecutedChild(target: handshake.target, arguments: handshake.arguments, readyFD: handshake.readyFD)
  }

  /// The signals that arrived between this program's load and now while they were blocked by the
  /// parent's spawn (``ChildProcess/Options/blockedSignals``); each is reported once. Only for a
  /// role: call it right after trapping those signals, and act on what it returns as on a trapped
  /// signal. (Blocking alone cannot keep such a signal: Swift's async `main` parks the main thread
  /// in libdispatch's `sigsuspend` with an empty mask, which takes a pending signal with its default
  /// action; so the copy records them from load time on — see `asynctools_take_held_signals`.)
  package static func takeHeldSignals() -> [Int32] {
    let held = asynctools_take_held_signals()
    return (1...64).filter { held & (1 << UInt64($0 - 1)) != 0 }
  }

  /// Tells the parent this child is ready, and closes the readiness pipe. Call it once.
  package func reportReady() {
    write(ReexecutionEnvironment.readyByte)
  }

  /// Tells the parent the requested entry point does not exist here.
  func reportUnknownEntry() {
    write(ReexecutionEnvironment.unknownEntryByte)
  }

  /// Writes `byte` to the parent. A parent that is gone (its end closed) must not kill this child
  /// with SIGPIPE — a new main process of a server upgrade outlives its parent — so SIGPIPE is
  /// blocked in this thread for the write, and one it raised is taken before unblocking.
  private func write(_ byte: UInt8) {
    var byte = byte
    var pipeSignal = sigset_t()
    sigemptyset(&pipeSignal)
    sigaddset(&pipeSignal, SIGPIPE)
    var previous = sigset_t()
    pthread_sigmask(SIG_BLOCK, &pipeSignal, &previous)
    var result: Int
    repeat { result = Glibc.write(readyFD, &byte, 1) } while result < 0 && errno == EINTR
    if result < 0 && errno == EPIPE && sigismember(&previous, SIGPIPE) == 0 {
      var zero = timespec()
      _ = sigtimedwait(&pipeSignal, nil, &zero)
    }
    pthread_sigmask(SIG_SETMASK, &previous, nil)
    close(readyFD)
  }

  /// Writes `program: message` to standard error, retrying on EINTR and short writes.
  package static func printError(_ message: String) {
    let program = CommandLine.arguments.first ?? "child"
    var bytes = Array("\(program): \(message)\n".utf8)[...]
    while !bytes.isEmpty {
      let written = bytes.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
      if written < 0 && errno == EINTR { continue }
      if written <= 0 { return }
      bytes = bytes.dropFirst(written)
    }
  }
}
#endif
