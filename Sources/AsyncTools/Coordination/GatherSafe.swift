/// Runs the operations concurrently and returns every outcome, in input order (aiotools'
/// `gather_safe`). A failure never disturbs the other operations.
///
/// ```swift
/// let outcomes = await gatherSafe(urls.map { url in { try await fetch(url) } })
/// for case .failure(let error) in outcomes { log(error) }
/// ```
///
/// - Order: `result[i]` is the outcome of `operations[i]`, whatever order they finished in.
/// - Cancellation of the caller: every operation is cancelled (Swift's structured cancellation)
///   and awaited, and `gatherSafe` still returns the full array: operations that finished keep
///   their value or error, the cancelled ones hold whatever they ended with (usually
///   `CancellationError`), and operations that had not started yet are not started and hold
///   `CancellationError`. This is unlike aiotools, which gives no partial results. Check
///   `Task.isCancelled` after the call to tell that case apart.
/// - An empty list returns an empty array.
@inlinable
public func gatherSafe<T: Sendable>(
  _ operations: [@Sendable () async throws -> T]
) async -> [Result<T, any Error>] {
  // A struct rather than an `(Int, Result)` tuple: Swift 6.3.1 miscompiles a task group whose
  // child result is the tuple `(Int, Result<Int, any Error>)` in release builds (the index comes
  // back as garbage); seen while benchmarking the hand-written equivalent.
  await withTaskGroup(of: IndexedOutcome<T>.self) { group in
    for (index, operation) in operations.enumerated() {
      let added = group.addTaskUnlessCancelled {
        do {
          return IndexedOutcome(index: index, outcome: .success(try await operation()))
        } catch {
          return IndexedOutcome(index: index, outcome: .failure(error))
        }
      }
      if !added { break }
    }
    var results = [Result<T, any Error>?](repeating: nil, count: operations.count)
    while let next = await group.next() {
      results[next.index] = next.outcome
    }
    return results.map { $0 ?? .failure(CancellationError()) }
  }
}

/// Variadic form of ``gatherSafe(_:)``.
@inlinable
public func gatherSafe<T: Sendable>(
  _ operations: @Sendable () async throws -> T...
) async -> [Result<T, any Error>] {
  await gatherSafe(operations)
}

/// One operation's outcome and its input position. Inlinable code, so callers specialise it.
@usableFromInline
struct IndexedOutcome<T: Sendable>: Sendable {
  @usableFromInline var index: Int
  @usableFromInline var outcome: Result<T, any Error>

  @inlinable
  init(index: Int, outcome: Result<T, any Error>) {
    self.index = index
    self.outcome = outcome
  }
}
