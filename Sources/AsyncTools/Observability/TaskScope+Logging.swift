import Logging

extension TaskScope {
  /// An error handler for ``withTaskScope(isolation:errorHandler:_:)`` that logs each child failure to `logger`
  /// at `error` level, with the error under the `error` key: the swift-log convention of a logger passed in, so
  /// the caller's metadata (a request id, say) is kept.
  /// (Supervisors have ``Supervisor/logChildFailure(to:)``, which also logs the child's name.)
  ///
  /// ```swift
  /// var logger = Logger(label: "api")
  /// logger[metadataKey: "request"] = "\(requestID)"
  /// try await withTaskScope(errorHandler: TaskScope.logChildFailure(to: logger)) { scope in … }
  /// ```
  ///
  /// ``logChildFailure`` (the default) is this handler with `Logger(label: "AsyncTools.TaskScope")`.
  public static func logChildFailure(to logger: Logger) -> @Sendable (any Error) -> Void {
    { error in
      logger.error("a child task of a task scope failed", metadata: ["error": "\(String(describing: error))"])
    }
  }
}
