#if os(Linux)
import AsyncTools
import CAsyncToolsShims
import Glibc
import Synchronization

/// The one thread that watches every pidfd (and every readiness pipe) of this process with
/// `epoll_wait`, reaps exited children with `waitid(P_PIDFD)`, and runs `posix_spawn` jobs.
///
/// Why one long-lived thread:
/// - waiting must not block a thread of the cooperative pool, and one `epoll_wait` covers any
///   number of children (swift-subprocess's design);
/// - spawning here too makes this thread the *parent thread* of every child. `PR_SET_PDEATHSIG`
///   fires when the parent **thread** exits, and a cooperative-pool thread may retire when idle, which
///   would kill a child whose parent is alive and well. This thread never exits.
///
/// Registrations are identified by a token (the epoll user data), never by the descriptor number,
/// so a stale event for a closed and reused descriptor cannot wake the wrong waiter.
package final class ProcessMonitor: Sendable {
  enum Watch {
    /// The pidfd became readable: the child exited; reap it.
    case child(ChildProcess)
    /// A one-shot wait for readability, resumed once (by the event or by cancellation).
    case readable(UnsafeContinuation<Void, any Error>)
  }

  struct State {
    var watches: [UInt64: (fd: Int32, watch: Watch)] = [:]
    var jobs: [@Sendable () -> Void] = []
  }

  private static let instance = Locked<ProcessMonitor?>(nil)

  /// The process-wide monitor, started on first use.
  package static func shared() throws(ProcessError) -> ProcessMonitor {
    try instance.withLock { (instance) throws(ProcessError) -> ProcessMonitor in
      if let instance { return instance }
      let monitor = try ProcessMonitor()
      instance = monitor
      return monitor
    }
  }

  private let epollFD: Int32
  private let wakeFD: Int32
  private let state = Locked(State())
  private let nextToken = Atomic<UInt64>(1)

  private init() throws(ProcessError) {
    epollFD = asynctools_epoll_create()
    guard epollFD >= 0 else { throw .systemCallFailed("epoll_create1", errno: errno) }
    wakeFD = asynctools_eventfd()
    guard wakeFD >= 0 else {
      let code = errno
      close(epollFD)
      throw .systemCallFailed("eventfd", errno: code)
    }
    // Token 0 is the wake-up eventfd.
    guard asynctools_epoll_add(epollFD, wakeFD, 0) == 0 else {
      let code = errno
      close(epollFD)
      close(wakeFD)
      throw .systemCallFailed("epoll_ctl", errno: code)
    }
    // The monitor lives for the rest of the process (it is kept in `instance`), so the thread may
    // hold it unretained.
    let unmanaged = Unmanaged.passUnretained(self)
    let result = startDetachedThread(name: "asynctools-proc") { unmanaged.takeUnretainedValue().run() }
    guard result == 0 else {
      close(epollFD)
      close(wakeFD)
      throw .systemCallFailed("pthread_create", errno: result)
    }
  }

  // MARK: Jobs

  /// Runs `body` on the monitor thread and returns its result.
  func perform<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withUnsafeContinuation { (continuation: UnsafeContinuation<T, Never>) in
      state.withLock { $0.jobs.append { continuation.resume(returning: body()) } }
      var one: UInt64 = 1
      _ = write(wakeFD, &one, 8)
    }
  }

  // MARK: Children

  /// Watches `child`'s pidfd; when it becomes readable the child is reaped and its waiters resumed.
  func watch(_ child: ChildProcess, pidfd: Int32) throws(ProcessError) {
    let token = nextToken.add(1, ordering: .relaxed).oldValue
    try state.withLock { (state) throws(ProcessError) in
      guard asynctools_epoll_add(epollFD, pidfd, token) == 0 else {
        throw .systemCallFailed("epoll_ctl", errno: errno)
      }
      state.watches[token] = (pidfd, .child(child))
    }
  }

  // MARK: Readability

  /// Suspends until `fd` is readable (or has reached end of file / an error condition).
  ///
  /// Throws `CancellationError` when the calling task is cancelled first; the descriptor is then
  /// no longer watched. The caller must keep `fd` open until this returns.
  package func waitReadable(_ fd: Int32) async throws {
    let token = nextToken.add(1, ordering: .relaxed).oldValue
    try await withTaskCancellationHandler {
      try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
        let added = state.withLock { state -> Int32 in
          guard asynctools_epoll_add(epollFD, fd, token) == 0 else { return errno }
          state.watches[token] = (fd, .readable(continuation))
          return 0
        }
        if added != 0 {
          continuation.resume(throwing: ProcessError.systemCallFailed("epoll_ctl", errno: added))
        } else if Task.isCancelled {
          // The cancellation handler may have run before the registration existed.
          cancelReadable(token)
        }
      }
    } onCancel: {
      cancelReadable(token)
    }
  }

  /// What ended ``waitReadable(_:orExitOf:until:)``.
  package enum ReadableWaitEnd: Sendable {
    case readable, exited, timedOut
  }

  /// Suspends until `fd` is readable (or at end of file), `child` exits (`nil`: not watched), or
  /// `deadline` passes (`nil`: no limit), whichever comes first; the other waits are then cancelled.
  ///
  /// Throws `CancellationError` when the calling task is cancelled first. The caller must keep `fd`
  /// open until this returns.
  package func waitReadable(
    _ fd: Int32, orExitOf child: ChildProcess?, until deadline: ContinuousClock.Instant?
  ) async throws -> ReadableWaitEnd {
    try await withThrowingTaskGroup(of: ReadableWaitEnd.self) { group in
      group.addTask {
        try await self.waitReadable(fd)
        return .readable
      }
      if let child {
        group.addTask {
          _ = try await child.wait()
          return .exited
        }
      }
      if let deadline {
        group.addTask {
          try await Task.sleep(until: deadline, clock: .continuous)
          return .timedOut
        }
      }
      defer { group.cancelAll() }
      return try await group.next()!
    }
  }

  private func cancelReadable(_ token: UInt64) {
    let removed = state.withLock { $0.watches.removeValue(forKey: token) }
    guard let (fd, watch) = removed, case .readable(let continuation) = watch else { return }
    _ = asynctools_epoll_del(epollFD, fd)
    continuation.resume(throwing: CancellationError())
  }

  // MARK: The thread

  private func run() {
    var tokens = [UInt64](repeating: 0, count: 64)
    while true {
      let count = tokens.withUnsafeMutableBufferPointer {
        asynctools_epoll_wait(epollFD, $0.baseAddress!, Int32($0.count), -1)
      }
      if count < 0 {
        // EINTR is the only expected failure; anything else would spin, so back off a little.
        if errno != EINTR { usleep(1000) }
        continue
      }
      for index in 0..<Int(count) {
        handle(tokens[index])
      }
    }
  }

  private func handle(_ token: UInt64) {
    if token == 0 {
      var value: UInt64 = 0
      _ = read(wakeFD, &value, 8)
      let jobs = state.withLock { state in
        defer { state.jobs.removeAll(keepingCapacity: true) }
        return state.jobs
      }
      for job in jobs { job() }
      return
    }
    let entry = state.withLock { state -> (fd: Int32, watch: Watch)? in
      guard let entry = state.watches[token] else { return nil }  // stale: already cancelled
      if case .readable = entry.watch { state.watches[token] = nil }
      return entry
    }
    guard let (fd, watch) = entry else { return }
    switch watch {
    case .readable(let continuation):
      _ = asynctools_epoll_del(epollFD, fd)
      continuation.resume()
    case .child(let child):
      // A spurious wake-up (nothing to reap yet) leaves the registration in place.
      guard let result = child.reapIfExited() else { return }
      _ = state.withLock { $0.watches.removeValue(forKey: token) }
      _ = asynctools_epoll_del(epollFD, fd)
      child.finish(result)  // closes the pidfd, after it left the epoll set
    }
  }
}

/// Starts a detached thread running `body`; returns 0 or the `pthread_create` error.
func startDetachedThread(name: String, _ body: @escaping @Sendable () -> Void) -> Int32 {
  final class Box: Sendable {
    let name: String
    let body: @Sendable () -> Void
    init(name: String, body: @escaping @Sendable () -> Void) {
      self.name = name
      self.body = body
    }
  }
  let box = Unmanaged.passRetained(Box(name: name, body: body)).toOpaque()
  var attributes = pthread_attr_t()
  pthread_attr_init(&attributes)
  defer { pthread_attr_destroy(&attributes) }
  pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
  var thread = pthread_t()
  let result = pthread_create(
    &thread, &attributes,
    { raw in
      let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
      _ = asynctools_set_thread_name(box.name)
      box.body()
      return nil
    }, box)
  if result != 0 { Unmanaged<Box>.fromOpaque(box).release() }
  return result
}
#endif
