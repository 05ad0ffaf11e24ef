extension TaskScope {
  /// A Sendable reference to a running ``TaskScope``, for adding children and cancelling them from any task.
  ///
  /// Get it from ``TaskScope/handle`` in the scope's body and capture it in children. Children added through the
  /// handle follow the same rules as ``TaskScope/addTask(name:priority:operation:)``: their errors go to the scope's
  /// error handler at once, cancel nobody, and nothing is kept once they end; the scope waits for them too.
  ///
  /// The scope ends when its body has ended and every child has finished; after that the handle refuses new
  /// children with an ``AsyncToolsError`` whose code is ``AsyncToolsError/Code/closed``. While any child is still
  /// running, adding is allowed, also after the body has returned (aiotools allows the same).
  public struct Handle: Sendable {
    let core: TaskScopeCore

    /// Adds a child task to the scope and returns its handle.
    ///
    /// The child starts cancelled if the scope is cancelled. The returned ``ChildTaskHandle`` cancels this child
    /// alone or awaits its value; discard it if you do not need it.
    ///
    /// - Throws: ``AsyncToolsError`` with code ``AsyncToolsError/Code/closed`` when the scope has ended.
    @discardableResult
    public func addTask<Success: Sendable>(
      name: String? = nil, priority: TaskPriority? = nil, operation: @escaping @Sendable () async throws -> Success
    ) throws(AsyncToolsError) -> ChildTaskHandle<Success> {
      let record = ChildTaskRecord()
      try core.enqueue(
        ScopeOwnerLoop.Job(name: name, priority: priority) { try await record.runThrowing(operation) })
      return ChildTaskHandle(record)
    }

    /// Cancels every child of the scope, present and future, wherever they were added from (aiotools'
    /// `abort()`). The scope's body is not cancelled; the scope still waits for the children's cleanup.
    /// Does nothing once the scope has ended.
    public func cancelAll() {
      core.requestCancelAll()
    }

    /// Whether ``cancelAll()`` was called on the scope.
    public var isCancelled: Bool { core.isCancelRequested }

    /// The number of children of the scope added (from any path) and not finished yet.
    public var liveTaskCount: Int { core.liveTaskCount }
  }
}
