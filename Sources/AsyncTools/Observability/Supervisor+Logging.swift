import Logging

extension Supervisor {
  /// An error handler for ``withSupervisor(intensity:backoff:clock:random:isolation:errorHandler:onRestart:metrics:_:)``
  /// that logs each child failure to `logger` at `error` level, with the child's name under `child` and the error
  /// under `error`: the swift-log convention of a logger passed in, so the caller's metadata is kept.
  ///
  /// ``logChildFailure`` (the default) is this handler with `Logger(label: "AsyncTools.Supervisor")`.
  public static func logChildFailure(to logger: Logger) -> ErrorHandler {
    { error, child in
      logger.error(
        "a supervised child failed", metadata: ["child": "\(child)", "error": "\(String(describing: error))"])
    }
  }
}
