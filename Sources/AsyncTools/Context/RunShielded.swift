/// Runs `operation` to completion even when the calling task is, or becomes, cancelled.
///
/// Swift 6.3 has no cancellation shield (SE-0504 `withTaskCancellationShield` arrives in 6.4). An
/// unstructured `Task` does not inherit its creator's cancellation, and awaiting its `value` does
/// not end early when the awaiting task is cancelled, so the operation sees `Task.isCancelled ==
/// false` and runs every await to the end. Priority and task-locals are inherited as usual.
///
/// Internal on purpose: the cancellation capability owns the public shield and may replace this
/// helper; every cleanup of the Context folder goes through here so the swap is one edit.
func _runShielded<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
  try await Task { try await operation() }.value
}

/// The non-throwing form of `_runShielded`.
func _runShielded<T: Sendable>(_ operation: @escaping @Sendable () async -> T) async -> T {
  await Task { await operation() }.value
}
