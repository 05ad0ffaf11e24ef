#if os(Linux)
import AsyncTools
import CAsyncToolsShims
import Glibc

/// Everything `posix_spawn` needs, validated; `run()` executes on the monitor thread.
///
/// Descriptor passing without the classic dup2 shuffle bug (a source that is also another mapping's
/// target): each source is first duplicated in the parent, close-on-exec, above every target
/// (`F_DUPFD_CLOEXEC`), and the child's file actions `dup2` those copies onto the targets.
struct SpawnRequest: Sendable {
  var executable: String
  var arguments: [String]  // argv[0] included
  var environment: [String]?  // "NAME=value"; nil inherits this process's environment
  var workingDirectory: String?
  var fileDescriptors: [Int32: Int32]  // child fd ← parent fd
  var closeOtherDescriptors: Bool
  var processGroup: ChildProcess.ProcessGroup
  var blockedSignals: [Int32] = []

  static func validate(fileDescriptors: [Int32: Int32]) throws(AsyncToolsError) {
    for (target, source) in fileDescriptors.sorted(by: { $0.key < $1.key }) {
      guard target >= 0 else {
        throw .invalidArgument("fileDescriptors: child descriptor must be >= 0, got \(target)")
      }
      guard source >= 0 else {
        throw .invalidArgument("fileDescriptors: parent descriptor must be >= 0, got \(source)")
      }
      guard fcntl(source, F_GETFD) >= 0 else {
        throw .invalidArgument(
          "fileDescriptors: parent descriptor \(source) (for child descriptor \(target)) is not open")
      }
    }
  }

  /// Spawns the child; on success also opens its pidfd when `openPidfd` (-1 if that fails).
  func run(openPidfd: Bool) -> Result<(pid: Int32, pidfd: Int32), ProcessError> {
    let highestTarget = fileDescriptors.keys.max() ?? 2
    var copies: [(target: Int32, copy: Int32)] = []
    defer { for entry in copies { close(entry.copy) } }
    for (target, source) in fileDescriptors {
      let copy = fcntl(source, F_DUPFD_CLOEXEC, max(highestTarget + 1, 3))
      guard copy >= 0 else { return .failure(.systemCallFailed("fcntl(F_DUPFD_CLOEXEC)", errno: errno)) }
      copies.append((target, copy))
    }

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    for entry in copies {
      posix_spawn_file_actions_adddup2(&actions, entry.copy, entry.target)
    }
    if closeOtherDescriptors {
      // glibc ignores close actions on descriptors that are not open.
      if highestTarget >= 3 {
        for fd in 3...highestTarget where fileDescriptors[fd] == nil {
          posix_spawn_file_actions_addclose(&actions, fd)
        }
      }
      asynctools_spawn_file_actions_addclosefrom(&actions, max(highestTarget + 1, 3))
    }
    if let workingDirectory {
      asynctools_spawn_file_actions_addchdir(&actions, workingDirectory)
    }

    // A clean slate for signals: only the requested signals blocked, every disposition back to the
    // default (an ignored SIGPIPE or SIGINT in this process would otherwise survive exec).
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
    var signals = sigset_t()
    sigemptyset(&signals)
    for signal in blockedSignals { sigaddset(&signals, signal) }
    posix_spawnattr_setsigmask(&attributes, &signals)
    sigfillset(&signals)
    posix_spawnattr_setsigdefault(&attributes, &signals)
    if processGroup == .own {
      flags |= Int32(POSIX_SPAWN_SETPGROUP)
      posix_spawnattr_setpgroup(&attributes, 0)
    }
    posix_spawnattr_setflags(&attributes, Int16(flags))

    let argv = CStringArray(arguments)
    defer { argv.free() }
    let envp = environment.map(CStringArray.init)
    defer { envp?.free() }

    var pid: pid_t = 0
    let result: Int32
    if executable.contains("/") {
      result = posix_spawn(&pid, executable, &actions, &attributes, argv.pointers, envp?.pointers ?? environ)
    } else {
      result = posix_spawnp(&pid, executable, &actions, &attributes, argv.pointers, envp?.pointers ?? environ)
    }
    guard result == 0 else {
      // posix_spawn reports a failed chdir like a failed exec: tell the two apart for the message.
      if let workingDirectory, access(workingDirectory, X_OK) != 0 {
        return .failure(.workingDirectoryUnavailable(workingDirectory, errno: errno))
      }
      return .failure(.spawnFailed(executable: executable, errno: result))
    }
    // pidfd_open on an unreaped child always succeeds (it may already be a zombie): only this
    // process reaps it, and not before it is watched.
    let pidfd = openPidfd ? asynctools_pidfd_open(pid, 0) : -1
    return .success((pid, pidfd))
  }
}

/// A NULL-terminated array of C strings, freed explicitly.
struct CStringArray {
  let pointers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>

  init(_ strings: [String]) {
    pointers = .allocate(capacity: strings.count + 1)
    for (index, string) in strings.enumerated() {
      pointers[index] = strdup(string)
    }
    pointers[strings.count] = nil
  }

  func free() {
    var index = 0
    while let string = pointers[index] {
      Glibc.free(string)
      index += 1
    }
    pointers.deallocate()
  }
}
#endif
