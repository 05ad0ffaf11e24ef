#if os(Linux)
import AsyncTools
import CAsyncToolsShims
import Glibc
import Synchronization

/// The parent side of the fork server: one helper process per executable that starts children at an
/// entry point by forking instead of re-executing, so a child skips the dynamic loader.
///
/// The helper is the executable re-executed once, at the first fork, with `ASYNCTOOLS_FORK_SERVER`
/// in its environment. Its pre-init hook (`fork_server.c`) stops it before any library initialiser
/// runs — it never starts the Swift runtime, libdispatch or a thread — and serves requests on a
/// `SOCK_SEQPACKET` socket: each request carries the child's environment, its descriptors
/// (`SCM_RIGHTS`: the readiness pipe, the mapped descriptors, standard input, output and error, the
/// working directory) and its signal mask and process group. The helper forks with
/// `clone3(CLONE_PARENT)`, so the child is **this** process's child: it is watched through its pidfd,
/// reaped and signalled exactly as a re-executed child, and its parent-death signal follows this
/// process. The child then runs the rest of the program's start-up (library initialisers, the
/// load-time constructor that arms the parent-death signal, `main`, `bootstrap()`).
///
/// Everything runs on the monitor thread, which serialises requests (the helper is single-threaded)
/// and makes it the parent thread of the helper — and so of every child, which matters for the
/// parent-death signal.
///
/// Failure modes:
/// - the helper died between requests: the send fails, a new helper starts, the request is sent again;
/// - it died (or stopped answering for 5 seconds, and is then killed) during a request: the child, if
///   one was made, announced its pid on its readiness pipe first thing (``pidByte``), so
///   ``recover(readEnd:usePidfd:)`` adopts it; if none was made, the fork starts over (after three
///   requests lost in a row, the executable is re-executed from then on: no crash loop);
/// - it cannot serve (the program links AsyncToolsProcess dynamically and has no pre-init hook,
///   `PR_GET_TID_ADDRESS` or `clone3` is missing, `CLONE_PARENT` is refused): forks of that
///   executable re-execute it from then on.
package enum ForkServer {
  /// The first byte a child of the server writes on its readiness pipe; its pid follows.
  static let pidByte = UInt8(ASYNCTOOLS_FORK_SERVER_PID_BYTE)

  /// How a request through the server ended.
  enum Outcome {
    /// The child was made and is watched.
    case forked(ChildProcess)
    /// No server for this request: re-execute instead.
    case unavailable
    /// The server died during the request; a child may exist (see ``recover(readEnd:usePidfd:)``).
    case lost
  }

  /// The parent's end of a server's socket. Closed under its lock, which a request holds while it
  /// sends and waits for the reply, so a request never reaches a descriptor closed and reused meanwhile.
  final class Connection: Sendable {
    private let fd: Locked<Int32>

    init(_ fd: Int32) { self.fd = Locked(fd) }

    deinit { close() }

    func close() {
      fd.withLock { fd in
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
      }
    }

    /// `body` with the open descriptor, or `nil` once closed.
    func withDescriptor<T: Sendable>(_ body: (Int32) throws(ProcessError) -> T) throws(ProcessError) -> T? {
      try fd.withLock { (fd) throws(ProcessError) -> T? in fd >= 0 ? try body(fd) : nil }
    }
  }

  /// A running server.
  struct Server: Sendable {
    let connection: Connection
    let process: ChildProcess
    /// This process's group and session when the server started: children inherit the server's.
    let processGroup: pid_t
    let session: pid_t
    /// The executable file the server runs: a program replaced on disk since (rebuilt and renamed into
    /// place) gets a new server, so a child runs what re-executing the path would run.
    let file: FileIdentity?
  }

  /// Which file a path names, and its version.
  struct FileIdentity: Sendable, Hashable {
    var device: UInt64
    var inode: UInt64
    var modified: Int
    var modifiedNanoseconds: Int

    init?(path: String) {
      var info = stat()
      guard stat(path, &info) == 0 else { return nil }
      (device, inode) = (UInt64(info.st_dev), UInt64(info.st_ino))
      (modified, modifiedNanoseconds) = (info.st_mtim.tv_sec, info.st_mtim.tv_nsec)
    }
  }

  enum Entry: Sendable {
    /// Being started by this task; `nil` when it turned out unable to serve.
    case starting(Task<Server?, Never>)
    case running(Server)
    case unavailable
  }

  /// The servers, by executable path.
  static let servers = Locked<[String: Entry]>([:])

  /// Requests lost in a row, by executable path: a server that dies during every request (a crash
  /// loop) would otherwise make each `fork` start servers forever. After ``maximumLosses`` the
  /// executable is re-executed from then on.
  static let losses = Locked<[String: Int]>([:])
  static let maximumLosses = 3

  /// Children made by a fork server in this process (for tests and diagnostics).
  package static let forkedCount = Atomic<Int>(0)

  /// The running fork server of `executable`, if one runs (for tests and diagnostics).
  package static func serverProcess(for executable: String) -> ChildProcess? {
    guard case .running(let server)? = servers.withLock({ $0[executable] }) else { return nil }
    return server.process
  }

  /// How long a server may take to start (a program that is not an AsyncToolsProcess program and
  /// does not exit is killed after that), and how long the monitor thread waits for each reply.
  static let greetingTimeout: Duration = .seconds(10)
  /// For tests, by executable: how many of the next requests ask their server to exit right after the
  /// fork, without replying.
  package static let exitAfterForkForTesting = Locked<[String: Int]>([:])

  /// Settable for tests; a request that times out is recovered (see ``recover(readEnd:usePidfd:)``).
  package static let replyTimeoutMilliseconds = Atomic<Int32>(5_000)

  /// Starts the child of `request` through its executable's fork server.
  static func fork(_ request: SpawnRequest, readyFD: Int32, usePidfd: Bool) async throws -> Outcome {
    // This program without the pre-init hook cannot serve itself (another program says so at start).
    if request.executable == ChildProcess.selfExecutable && asynctools_fork_server_available() == 0 {
      return .unavailable
    }
    let monitor = try ProcessMonitor.shared()
    guard let message = try Message(request, readyFD: readyFD) else { return .unavailable }
    defer { message.close() }
    for _ in 0..<2 {
      guard let server = await server(for: request) else { return .unavailable }
      let raw = try await monitor.perform { Result { () throws(ProcessError) in try send(message, to: server) } }.get()
      switch raw {
      case .forked(let pid):
        forkedCount.add(1, ordering: .relaxed)
        losses.withLock { $0[request.executable] = nil }
        return .forked(try adopt(pid, usePidfd: usePidfd, monitor: monitor))
      case .serverGone:
        discard(request.executable, server, kill: false)  // it died since the last request: start another
      case .refused:
        // clone3 or CLONE_PARENT refused here (or a request it does not understand): re-execute from now on.
        discard(request.executable, server, kill: false)
        servers.withLock { $0[request.executable] = .unavailable }
        return .unavailable
      case .tooLarge:
        return .unavailable
      case .lost:
        discard(request.executable, server, kill: true)
        let lost = losses.withLock { losses in
          losses[request.executable, default: 0] += 1
          return losses[request.executable, default: 0]
        }
        if lost >= maximumLosses { servers.withLock { $0[request.executable] = .unavailable } }
        return .lost
      }
    }
    return .unavailable
  }

  /// After ``Outcome/lost``: the child the lost request made, if any. The caller has closed its own
  /// copy of the pipe's write end, so end of file means that no child holds it: none was made.
  static func recover(readEnd: Int32, usePidfd: Bool) async throws -> ChildProcess? {
    let monitor = try ProcessMonitor.shared()
    guard try await waitReadable(readEnd, unlessExitOf: nil, timeout: .seconds(30)) else {
      throw ProcessError.readinessTimedOut(.seconds(30))
    }
    var message = [UInt8](repeating: 0, count: 5)
    guard read(readEnd, &message, 5) == 5, message[0] == pidByte else { return nil }
    let pid = message[1...].withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
    forkedCount.add(1, ordering: .relaxed)
    return try adopt(pid, usePidfd: usePidfd, monitor: monitor)
  }

  /// Whether `fd` became readable (or reached end of file) before `child` exited and before `timeout`.
  private static func waitReadable(_ fd: Int32, unlessExitOf child: ChildProcess?, timeout: Duration) async throws
    -> Bool
  {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    return try await ProcessMonitor.shared().waitReadable(fd, orExitOf: child, until: deadline) == .readable
  }

  private static func adopt(_ pid: Int32, usePidfd: Bool, monitor: ProcessMonitor) throws -> ChildProcess {
    // Our own unreaped child: its pid cannot be recycled, so pidfd_open cannot reach another process.
    let pidfd = usePidfd && ChildProcess.isPidfdAvailable ? asynctools_pidfd_open(pid, 0) : -1
    return try ChildProcess.adopt(pid: pid, pidfd: pidfd, monitor: monitor)
  }

  // MARK: On the monitor thread

  enum Reply: Sendable {
    case forked(Int32)
    case serverGone
    case refused
    case tooLarge
    case lost
  }

  /// Sends one request and waits for the reply (the server answers right after its `clone3`).
  private static func send(_ message: Message, to server: Server) throws(ProcessError) -> Reply {
    let reply = try server.connection.withDescriptor { (socket) throws(ProcessError) -> Reply in
      let sent = message.bytes.withUnsafeBytes { bytes in
        message.descriptors.withUnsafeBufferPointer { fds in
          asynctools_send_with_descriptors(socket, bytes.baseAddress!, bytes.count, fds.baseAddress, Int32(fds.count))
        }
      }
      if sent < 0 {
        let code = errno
        switch code {
        case EPIPE, ECONNRESET, ENOTCONN: return .serverGone
        case EMSGSIZE, ENOBUFS, ETOOMANYREFS: return .tooLarge
        default: throw .systemCallFailed("sendmsg", errno: code)
        }
      }
      var reply: Int32 = 0
      let timeout = replyTimeoutMilliseconds.load(ordering: .relaxed)
      guard asynctools_receive_int32(socket, timeout, &reply) == 0 else { return .lost }
      if reply > 0 { return .forked(reply) }
      let code = -reply
      if code == ENOSYS || code == EPERM || code == EINVAL { return .refused }
      throw .systemCallFailed("clone3", errno: code)
    }
    return reply ?? .serverGone  // discarded by a concurrent request meanwhile
  }

  // MARK: Starting

  /// The running server of the request's executable, started if needed; `nil` if it cannot serve.
  /// Concurrent callers share one start.
  private static func server(for request: SpawnRequest) async -> Server? {
    let key = request.executable
    let (group, session, file) = (getpgrp(), getsid(0), FileIdentity(path: key))
    enum Next {
      case ready(Server?)
      case wait(Task<Server?, Never>)
    }
    let next = servers.withLock { servers -> Next in
      switch servers[key] {
      case .unavailable?:
        return .ready(nil)
      case .running(let server)? where server.processGroup == group && server.session == session && server.file == file:
        return .ready(server)
      case .starting(let task)?:
        return .wait(task)
      case .running(let server)?:
        // This process changed its group or session (children must follow it), or the program file was
        // replaced: a new server.
        server.connection.close()
        fallthrough
      case nil:
        let task = Task<Server?, Never> {
          let server = (try? await start(request, processGroup: group, session: session, file: file)) ?? nil
          ForkServer.servers.withLock { $0[key] = server.map(Entry.running) ?? .unavailable }
          return server
        }
        servers[key] = .starting(task)
        return .wait(task)
      }
    }
    switch next {
    case .ready(let server): return server
    case .wait(let task): return await task.value
    }
  }

  /// Re-executes `request.executable` as a fork server and waits for its greeting (raced against its
  /// exit and a timeout). `nil` when it cannot serve: it is then killed and reaped like any child.
  private static func start(_ request: SpawnRequest, processGroup: pid_t, session: pid_t, file: FileIdentity?)
    async throws -> Server?
  {
    var fds: [Int32] = [-1, -1]
    guard asynctools_socketpair_seqpacket(&fds) == 0 else {
      throw ProcessError.systemCallFailed("socketpair", errno: errno)
    }
    let (ours, theirs) = (fds[0], fds[1])
    let serverFD: Int32 = 3
    var environment = ReexecutionEnvironment.removingHandshake(from: ChildProcess.currentEnvironment())
    environment.append("\(ASYNCTOOLS_ENV_FORK_SERVER)=\(serverFD):\(getpid())")
    let spawn = SpawnRequest(
      executable: request.executable, arguments: request.arguments, environment: environment,
      workingDirectory: nil, fileDescriptors: [serverFD: theirs], closeOtherDescriptors: true,
      processGroup: .inherit)
    let process: ChildProcess
    do {
      process = try await ChildProcess.launch(spawn, usePidfd: true)
      Glibc.close(theirs)  // now only the server holds it: its exit is end of file here
    } catch {
      Glibc.close(ours)
      Glibc.close(theirs)
      throw error
    }
    let greeted = try await waitReadable(ours, unlessExitOf: process, timeout: greetingTimeout)
    var greeting: Int32 = -1
    guard greeted, asynctools_receive_int32(ours, 0, &greeting) == 0, greeting == 0 else {
      _ = try? process.send(signal: SIGKILL)
      Glibc.close(ours)
      return nil
    }
    return Server(
      connection: Connection(ours), process: process, processGroup: processGroup, session: session, file: file)
  }

  /// Forgets `server`; closing the socket ends it (it reads end of file and exits), `kill` ends it now.
  /// Its exit is reaped by the monitor like any child's.
  private static func discard(_ key: String, _ server: Server, kill: Bool) {
    if kill { _ = try? server.process.send(signal: SIGKILL) }
    server.connection.close()
    servers.withLock { servers in
      if case .running(let current)? = servers[key], current.connection === server.connection { servers[key] = nil }
    }
  }

  /// One request: the header, the descriptor targets and the environment, with the descriptors to attach.
  struct Message {
    var bytes: [UInt8]
    var descriptors: [Int32]
    /// The working-directory descriptor this message opened (closed after the request).
    let workingDirectory: Int32

    /// `nil` when the request does not fit in one message (it is then re-executed instead).
    init?(_ request: SpawnRequest, readyFD: Int32) throws(ProcessError) {
      let cwd = asynctools_open_working_directory()
      guard cwd >= 0 else { throw .systemCallFailed("open(\".\")", errno: errno) }
      workingDirectory = cwd
      var targets: [Int32] = [-1]
      descriptors = [cwd]
      var closedStdio: UInt32 = 0
      for fd: Int32 in 0...2 where request.fileDescriptors[fd] == nil {
        if fcntl(fd, F_GETFD) >= 0 {
          descriptors.append(fd)
          targets.append(fd)
        } else {
          closedStdio |= 1 << UInt32(fd)
        }
      }
      var readyIndex: Int32 = -1
      for (target, source) in request.fileDescriptors.sorted(by: { $0.key < $1.key }) {
        if target == readyFD { readyIndex = Int32(descriptors.count) }
        descriptors.append(source)
        targets.append(target)
      }
      var environment: [UInt8] = []
      let variables = request.environment ?? ChildProcess.currentEnvironment()
      for variable in variables {
        environment.append(contentsOf: variable.utf8)
        environment.append(0)
      }
      var blocked: UInt64 = 0
      for signal in request.blockedSignals { blocked |= 1 << UInt64(signal - 1) }
      var header = asynctools_fork_request(
        magic: ASYNCTOOLS_FORK_SERVER_MAGIC,
        flags: (request.processGroup == .own ? ASYNCTOOLS_FORK_OWN_PROCESS_GROUP : 0)
          | (Message.takeExitAfterFork(request.executable) ? ASYNCTOOLS_FORK_EXIT_WITHOUT_REPLY : 0),
        blocked_signals: blocked, descriptor_count: UInt32(descriptors.count), ready_index: readyIndex,
        cwd_index: 0, closed_stdio: closedStdio, environment_count: UInt32(variables.count),
        environment_bytes: UInt32(environment.count))
      bytes = withUnsafeBytes(of: &header) { Array($0) }
      for target in targets { withUnsafeBytes(of: target) { bytes.append(contentsOf: $0) } }
      bytes.append(contentsOf: environment)
      guard descriptors.count <= Int(ASYNCTOOLS_FORK_SERVER_MAX_FDS),
        bytes.count <= Int(ASYNCTOOLS_FORK_SERVER_MAX_REQUEST)
      else {
        Glibc.close(cwd)
        return nil
      }
    }

    func close() { Glibc.close(workingDirectory) }

    private static func takeExitAfterFork(_ executable: String) -> Bool {
      exitAfterForkForTesting.withLock { counts in
        guard let count = counts[executable], count > 0 else { return false }
        counts[executable] = count - 1
        return true
      }
    }
  }
}
#endif
