#if os(Linux)
extension ChildProcess {
  /// How a child process ended: it exited with a code, or a signal killed it.
  ///
  /// The kernel keeps only the low 8 bits of an exit code, so an entry point that returns 300 is seen
  /// as `.exited(44)`. ``returnCode`` folds both cases into one integer with aiotools' conventions.
  ///
  /// Nested in ``ChildProcess`` because Swift Testing has a top-level `ExitStatus` of its own (for
  /// exit tests): a file importing both modules stays unambiguous.
  public enum ExitStatus: Sendable, Hashable, CustomStringConvertible {
    /// The process called `exit` (or returned from its entry point) with this code, `0...255`.
    case exited(Int32)
    /// The process was terminated by this signal; `coreDumped` is what the kernel reported
    /// (`CLD_DUMPED`), which depends on the signal and on `ulimit -c`.
    case signaled(Int32, coreDumped: Bool)

    /// aiotools' integer return code: the exit code (`0...255`) for a normal exit, or `-signal`
    /// (for example `-9`, `-15`, `-11`) when a signal killed the process, core dump or not.
    ///
    /// aiotools' other conventions, for comparison:
    /// - a child function's returned value `n` becomes the exit code `n & 0xFF` (same here: an entry
    ///   point returning 300 gives 44);
    /// - an uncaught exception in the child gives exit code 1 (same here: an entry point that throws
    ///   prints the error to standard error and exits with 1);
    /// - 255 means "status unknown or already reaped elsewhere". AsyncTools does not fold that case
    ///   into a number: ``ChildProcess/wait()`` throws ``ProcessError/statusUnavailable(pid:)``.
    public var returnCode: Int32 {
      switch self {
      case .exited(let code): code
      case .signaled(let signal, _): -signal
      }
    }

    /// `true` for `.exited(0)`.
    public var isSuccess: Bool { self == .exited(0) }

    /// `exited with code 3`, `killed by signal 9`, `killed by signal 11 (core dumped)`.
    public var description: String {
      switch self {
      case .exited(let code): "exited with code \(code)"
      case .signaled(let signal, let core): "killed by signal \(signal)\(core ? " (core dumped)" : "")"
      }
    }

    /// Builds a status from the `si_code`/`si_status` pair of a `waitid` `siginfo_t`
    /// (`CLD_EXITED` = 1, `CLD_KILLED` = 2, `CLD_DUMPED` = 3); `nil` for stop/continue codes.
    package init?(siCode: Int32, siStatus: Int32) {
      switch siCode {
      case 1: self = .exited(siStatus & 0xFF)
      case 2: self = .signaled(siStatus, coreDumped: false)
      case 3: self = .signaled(siStatus, coreDumped: true)
      default: return nil
      }
    }
  }
}
#endif
