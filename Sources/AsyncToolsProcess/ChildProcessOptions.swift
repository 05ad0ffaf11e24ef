#if os(Linux)
import AsyncTools

extension ChildProcess {
  /// Which process group a child joins.
  public enum ProcessGroup: Sendable, Hashable {
    /// The child stays in this process's group: a terminal's Ctrl-C (SIGINT to the foreground
    /// group) reaches it too.
    case inherit
    /// The child leads a new group whose id is its pid (`POSIX_SPAWN_SETPGROUP` with 0): signals sent
    /// to this process's group, such as a terminal's Ctrl-C, do not reach it.
    case own
  }

  /// How a child is started. The defaults suit most children; every field is documented with its
  /// default.
  public struct Options: Sendable, Hashable {
    /// The child's process group. Default: ``ProcessGroup/inherit``.
    public var processGroup: ProcessGroup
    /// Close every descriptor of this process in the child except 0, 1, 2 and those passed with
    /// `fileDescriptors`. Default: `true`, so a descriptor opened without `O_CLOEXEC` elsewhere in
    /// the program does not leak into children.
    public var closeOtherDescriptors: Bool
    /// The signal the child receives when this process dies, even by SIGKILL
    /// (`prctl(PR_SET_PDEATHSIG)`), so children never outlive a killed parent. Default: `nil` (none).
    ///
    /// Only for children started at an entry point
    /// (``ChildProcess/fork(entry:arguments:environment:fileDescriptors:options:)``): `posix_spawn`
    /// cannot run `prctl` between fork and exec, so the child sets it itself, as early as it can —
    /// in a load-time constructor of this library, before the Swift runtime and `main` start — and
    /// then checks that its parent is still this process (if the parent died before the `prctl`,
    /// the child raises the signal on itself at once). A child that hangs before it is ready is
    /// covered too. Spawning an external executable with a parent-death signal is rejected.
    public var parentDeathSignal: Int32?
    /// Watch the child through a pidfd when the kernel supports it (Linux 5.4). Default: `true`.
    /// `false` selects the fallback (one thread per child blocked in `waitid(P_PID)`, signals
    /// through `kill`), which is also used automatically on older kernels.
    public var usePidfd: Bool
    /// Signals the child starts with *blocked* (its signal mask); every other signal is unblocked.
    /// Default: none.
    ///
    /// A signal sent to the child before it is ready to handle it — a stop signal during a worker's
    /// start-up, say — then stays pending instead of killing it with the default action; the child
    /// unblocks it once its handler is installed (a Dispatch or `UnixSignals` source reads pending
    /// signals). Dispositions are reset to their defaults either way.
    public var blockedSignals: [Int32]
    /// How long ``ChildProcess/fork(entry:arguments:environment:fileDescriptors:options:)`` waits
    /// for the child to report that it is ready. A child that is not ready in time is killed with
    /// SIGKILL and reaped, and the call throws ``ProcessError/readinessTimedOut(_:)``. `nil` waits
    /// as long as it takes (a child that dies is still noticed at once). Must be positive and at most
    /// 1,000,000,000 seconds.
    /// Default: 30 seconds. Ignored for external executables, which have no handshake.
    public var readinessTimeout: Duration?

    /// The default of ``readinessTimeout``: generous for a program's start-up on a loaded machine,
    /// short enough that a hung child is reported.
    public static let defaultReadinessTimeout: Duration = .seconds(30)

    /// Start children at an entry point through the program's *fork server* when it can: a copy of
    /// the program, re-executed once, that stopped before any library initialiser ran and forks each
    /// child from there, so a child skips the dynamic loader (most of a Swift program's start-up).
    /// Default: `true`.
    ///
    /// The fork server is used by ``ChildProcess/fork(entry:arguments:environment:fileDescriptors:options:)``
    /// and by ``ChildProcess/spawn(executable:entry:arguments:environment:workingDirectory:fileDescriptors:options:)``
    /// without a `workingDirectory`, when ``closeOtherDescriptors`` is `true`. Otherwise, when this
    /// is `false`, or where the fork server is not available (see the Processes guide), the program
    /// is re-executed for each child. What the child inherits differs in one respect: with the fork
    /// server, process attributes other than the environment, the working directory, the descriptors,
    /// the signal mask and dispositions and the process group — such as the umask, resource limits
    /// and the scheduling priority — are the ones this process had when the fork server started (at
    /// the first fork), and the variables read by the dynamic loader and by library initialisers
    /// (`LD_*`, `GLIBC_TUNABLES`, `SWIFT_BACKTRACE`, `LIBDISPATCH_*`) come from this process's
    /// environment at that time. Set it to `false` if the child must see later changes of those.
    public var useForkServer: Bool

    /// Creates options; every parameter defaults to the documented default of its property.
    public init(
      processGroup: ProcessGroup = .inherit,
      closeOtherDescriptors: Bool = true,
      parentDeathSignal: Int32? = nil,
      usePidfd: Bool = true,
      blockedSignals: [Int32] = [],
      readinessTimeout: Duration? = Options.defaultReadinessTimeout,
      useForkServer: Bool = true
    ) {
      self.processGroup = processGroup
      self.closeOtherDescriptors = closeOtherDescriptors
      self.parentDeathSignal = parentDeathSignal
      self.usePidfd = usePidfd
      (self.blockedSignals, self.readinessTimeout) = (blockedSignals, readinessTimeout)
      self.useForkServer = useForkServer
    }

    func validate() throws(AsyncToolsError) {
      if let signal = parentDeathSignal, !(1...64).contains(signal) {
        throw .invalidArgument("parentDeathSignal must be a signal number in 1...64, got \(signal)")
      }
      if let signal = blockedSignals.first(where: { !(1...64).contains($0) }) {
        throw .invalidArgument("blockedSignals must hold signal numbers in 1...64, got \(signal)")
      }
      try readinessTimeout?.requireTimeout("readinessTimeout")
    }
  }
}
#endif
