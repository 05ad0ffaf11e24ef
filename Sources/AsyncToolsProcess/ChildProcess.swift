#if os(Linux)
import AsyncTools
import CAsyncToolsShims
import Glibc
import Synchronization

/// A child process of this program: signal it, and await its exit without blocking a thread.
///
/// Create one with ``spawn(executable:arguments:environment:workingDirectory:fileDescriptors:options:)``
/// (any program), ``fork(entry:arguments:environment:fileDescriptors:options:)`` (this program
/// re-executed into a registered entry point) or
/// ``spawn(executable:entry:arguments:environment:workingDirectory:fileDescriptors:options:)``
/// (another program that calls ``bootstrap()``).
///
/// ## Race-free waiting and signalling
/// On Linux 5.4 and later the child is held through a *pidfd*: ``send(signal:)`` uses
/// `pidfd_send_signal`, which can never reach a recycled process id, and the child is reaped with
/// `waitid(P_PIDFD)` by one monitor thread that `epoll`s every pidfd of the process. AsyncTools
/// reaps only its own children: it never calls `waitpid(-1)` or `waitid(P_ALL)`.
///
/// Where pidfds are missing (`ENOSYS`), or when ``Options/usePidfd`` is `false`, a dedicated thread
/// per child blocks in `waitid(P_PID, pid, WEXITED | WNOWAIT)` — which does not reap — and then reaps
/// under the same lock that ``send(signal:)`` holds while it calls `kill`, so a signal never reaches a
/// recycled pid there either.
///
/// Every child is reaped as soon as it exits, whether or not anyone awaits it, and the
/// `ChildProcess` stays alive until then: dropping the object never leaves a zombie behind.
///
/// ## Why not swift-subprocess
/// swift-subprocess 1.0.2 uses the same pidfd + epoll design, but on Linux it cannot pass extra
/// file descriptors to a child (which the multi-process server needs for its listening sockets) and
/// has no entry points or readiness handshake; a second reaping machinery in the same process would
/// gain nothing. So this module has its own small `posix_spawn` path.
public final class ChildProcess: Sendable, CustomStringConvertible {
  /// The child's process id. Use it for logs; prefer ``send(signal:)`` over `kill(pid, …)`.
  public let pid: Int32

  /// Whether this child is watched through a pidfd (`false` in the fallback mode).
  public let usesPidfd: Bool

  struct State {
    /// The pidfd, or -1 (fallback mode, or closed after reaping).
    var pidfd: Int32
    var outcome: Result<ExitStatus, ProcessError>?
    var waiters: [(id: UInt64, continuation: Waiter)] = []
  }

  enum Waiter {
    case cancellable(UnsafeContinuation<ExitStatus, any Error>)
    case uncancellable(UnsafeContinuation<Result<ExitStatus, ProcessError>, Never>)

    func resume(_ outcome: Result<ExitStatus, ProcessError>) {
      switch self {
      case .cancellable(let continuation): continuation.resume(with: outcome.mapError { $0 })
      case .uncancellable(let continuation): continuation.resume(returning: outcome)
      }
    }
  }

  let state: Locked<State>
  private static let waiterIDs = Atomic<UInt64>(0)

  init(pid: Int32, pidfd: Int32) {
    self.pid = pid
    self.usesPidfd = pidfd >= 0
    self.state = Locked(State(pidfd: pidfd))
  }

  /// `ChildProcess(pid: 1234)`.
  public var description: String { "ChildProcess(pid: \(pid))" }

  /// The exit status if the child has already been reaped, else `nil`. Never blocks.
  public var exitStatus: ExitStatus? {
    state.withLock { try? $0.outcome?.get() }
  }

  // MARK: Waiting

  /// Waits until the child exits and returns how it ended.
  ///
  /// Does not block a thread: the calling task is suspended and resumed by the monitor thread.
  /// Any number of tasks may wait at once, before or after the exit; they all get the same status.
  ///
  /// - Throws: `CancellationError` when the calling task is cancelled before the child exits. The
  ///   child is **not** signalled and keeps running; call ``send(signal:)`` to stop it, then wait again.
  ///   ``ProcessError/statusUnavailable(pid:)`` if another part of the program reaped the child.
  public func wait() async throws -> ExitStatus {
    if let outcome = state.withLock({ $0.outcome }) { return try outcome.get() }
    let id = Self.waiterIDs.add(1, ordering: .relaxed).newValue
    return try await withTaskCancellationHandler {
      try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<ExitStatus, any Error>) in
        let outcome = state.withLock { state -> Result<ExitStatus, ProcessError>? in
          if let outcome = state.outcome { return outcome }
          state.waiters.append((id, .cancellable(continuation)))
          return nil
        }
        if let outcome {
          continuation.resume(with: outcome.mapError { $0 })
        } else if Task.isCancelled {
          // The cancellation handler may have run before the waiter was registered.
          cancelWaiter(id)
        }
      }
    } onCancel: {
      cancelWaiter(id)
    }
  }

  /// Waits for the exit ignoring cancellation: for clean-up of a child we just killed, and for a
  /// supervisor that must reap and report every child whatever happens to its task.
  package func waitUncancellable() async -> Result<ExitStatus, ProcessError> {
    await withUnsafeContinuation { (continuation: UnsafeContinuation<Result<ExitStatus, ProcessError>, Never>) in
      let outcome = state.withLock { state -> Result<ExitStatus, ProcessError>? in
        if let outcome = state.outcome { return outcome }
        state.waiters.append((0, .uncancellable(continuation)))
        return nil
      }
      if let outcome { continuation.resume(returning: outcome) }
    }
  }

  private func cancelWaiter(_ id: UInt64) {
    let waiter = state.withLock { state -> Waiter? in
      guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
      return state.waiters.remove(at: index).continuation
    }
    if case .cancellable(let continuation) = waiter { continuation.resume(throwing: CancellationError()) }
  }

  // MARK: Signals

  /// Sends `signal` to the child.
  ///
  /// - Returns: `true` if the signal was sent, `false` if the child had already exited (then this is
  ///   a no-op, as in aiotools). A child that exited but is not yet reaped still accepts signals.
  /// - Throws: `AsyncToolsError` with code `.invalidArgument` for a signal number the kernel rejects;
  ///   ``ProcessError/systemCallFailed(_:errno:)`` for any other failure (for example `EPERM`).
  @discardableResult
  public func send(signal: Int32) throws -> Bool {
    // Checked here, not only by the kernel, so a bad number is an error even after the child exited.
    guard (0...64).contains(signal) else {
      throw AsyncToolsError.invalidArgument("signal must be a valid signal number (0...64), got \(signal)")
    }
    let failure = state.withLock { state -> Int32? in
      if state.outcome != nil { return nil }
      let result = state.pidfd >= 0 ? asynctools_pidfd_send_signal(state.pidfd, signal) : kill(pid, signal)
      return result == 0 ? 0 : errno
    }
    switch failure {
    case nil, ESRCH: return false
    case 0: return true
    case EINVAL: throw AsyncToolsError.invalidArgument("signal must be a valid signal number, got \(signal)")
    case let code?: throw ProcessError.systemCallFailed(usesPidfd ? "pidfd_send_signal" : "kill", errno: code)
    }
  }

  // MARK: Reaping (monitor and fallback threads)

  /// On the monitor thread, after the pidfd became readable: reaps the child if it has exited.
  /// Returns `nil` on a spurious wake-up.
  func reapIfExited() -> Result<ExitStatus, ProcessError>? {
    state.withLock { state in
      var siPid: pid_t = 0
      var siCode: Int32 = 0
      var siStatus: Int32 = 0
      while true {
        if asynctools_waitid_pidfd(state.pidfd, WEXITED | WNOHANG, &siPid, &siCode, &siStatus) == 0 {
          guard siPid != 0, let status = ExitStatus(siCode: siCode, siStatus: siStatus) else { return nil }
          return .success(status)
        }
        if errno == EINTR { continue }
        return .failure(.statusUnavailable(pid: pid))
      }
    }
  }

  /// Records the outcome, closes the pidfd and resumes every waiter.
  func finish(_ outcome: Result<ExitStatus, ProcessError>) {
    let waiters = state.withLock { state in
      state.outcome = outcome
      if state.pidfd >= 0 {
        close(state.pidfd)
        state.pidfd = -1
      }
      defer { state.waiters = [] }
      return state.waiters
    }
    for waiter in waiters { waiter.continuation.resume(outcome) }
  }

  /// The fallback: blocks this dedicated thread until the child exits, then reaps it under the lock
  /// that `send(signal:)` holds, so `kill` never targets a reaped (recyclable) pid.
  func waitOnDedicatedThread() {
    var siPid: pid_t = 0
    var siCode: Int32 = 0
    var siStatus: Int32 = 0
    while asynctools_waitid_pid(pid, WEXITED | WNOWAIT, &siPid, &siCode, &siStatus) != 0 {
      if errno != EINTR {
        finish(.failure(.statusUnavailable(pid: pid)))
        return
      }
    }
    let (outcome, waiters) = state.withLock { state in
      var outcome: Result<ExitStatus, ProcessError> = .failure(.statusUnavailable(pid: pid))
      while asynctools_waitid_pid(pid, WEXITED | WNOHANG, &siPid, &siCode, &siStatus) != 0 {
        if errno != EINTR { break }
      }
      if siPid == pid, let status = ExitStatus(siCode: siCode, siStatus: siStatus) { outcome = .success(status) }
      state.outcome = outcome
      if state.pidfd >= 0 {  // a pidfd the monitor could not watch
        close(state.pidfd)
        state.pidfd = -1
      }
      defer { state.waiters = [] }
      return (outcome, state.waiters)
    }
    for waiter in waiters { waiter.continuation.resume(outcome) }
  }
}
#endif
