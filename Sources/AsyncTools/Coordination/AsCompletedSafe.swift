import Synchronization

/// Runs the operations concurrently and hands `body` their outcomes in completion order
/// (aiotools' `as_completed_safe`). When `body` ends — normally, by `break`, by throwing, or
/// because the caller was cancelled — the operations still running are cancelled **and awaited**
/// before this function returns.
///
/// ```swift
/// let first = await withAsCompletedSafe(replicas.map { r in { try await r.query(q) } }) { results in
///   for await case .success(let answer) in results { return answer }
///   return nil
/// }
/// // Every other replica query has been cancelled and has finished here.
/// ```
///
/// Why a scope and not a plain `AsyncSequence`: an iterator cannot run asynchronous cleanup when
/// the loop is left with `break` or `throw` (there is no async `deinit`, and no more `next()`
/// call comes), so a bare sequence could only cancel the remaining operations, never wait for
/// them. aiotools has the same problem and asks callers to wrap its generator in `aclosing`; the
/// scope makes that wait impossible to forget.
///
/// - Elements are `Result`s, so a failing operation is one element and never ends the loop.
///   Operations that end at the same moment come out in an unspecified order.
/// - The sequence finishes after one element per operation. If the calling task is cancelled,
///   the operations are cancelled with it and their outcomes (usually `CancellationError`) keep
///   arriving; the iteration may also end early, as any `AsyncStream` does in a cancelled task.
/// - The sequence is only valid inside `body`; iterated after the scope ended, it is empty: outcomes `body` did not
///   read are dropped when the scope ends (also by a sequence or an iterator that escaped `body`).
/// - Returns or throws whatever `body` returns or throws, after the wait.
public func withAsCompletedSafe<T: Sendable, R, Failure: Error>(
  _ operations: [@Sendable () async throws -> T],
  isolation: isolated (any Actor)? = #isolation,
  body: (AsCompletedSafeResults<T>) async throws(Failure) -> R
) async throws(Failure) -> R {
  let (stream, continuation) = AsyncStream.makeStream(of: Result<T, any Error>.self)
  let scopeEnd = AsCompletedSafeScopeEnd()
  let outcome = await withTaskGroup(
    of: Void.self, returning: Result<R, Failure>.self, isolation: isolation
  ) { group in
    for operation in operations {
      group.addTask {
        let outcome: Result<T, any Error>
        do { outcome = .success(try await operation()) } catch { outcome = .failure(error) }
        continuation.yield(outcome)
      }
    }
    let outcome: Result<R, Failure>
    do throws(Failure) {
      outcome = .success(
        try await body(AsCompletedSafeResults(stream: stream, count: operations.count, scopeEnd: scopeEnd)))
    } catch {
      outcome = .failure(error)
    }
    // Leaving the group's body awaits every child: cancel first, so that wait is short.
    group.cancelAll()
    return outcome
  }
  // Every operation has ended, so every outcome is in the stream. End the scope for escaped iterators first, then
  // drop what `body` did not read: a finished stream hands out its buffer without suspending.
  scopeEnd.end()
  continuation.finish()
  var unread = stream.makeAsyncIterator()
  while await unread.next(isolation: isolation) != nil {}
  return try outcome.get()
}

/// Set once the scope of ``withAsCompletedSafe(_:isolation:body:)`` has ended: from then on its sequence is empty.
final class AsCompletedSafeScopeEnd: Sendable {
  private let ended = Atomic<Bool>(false)
  var hasEnded: Bool { ended.load(ordering: .acquiring) }
  func end() { ended.store(true, ordering: .releasing) }
}

/// The outcomes of the operations given to ``withAsCompletedSafe(_:isolation:body:)``, in
/// completion order: one `Result` per operation, then the end.
public struct AsCompletedSafeResults<T: Sendable>: AsyncSequence, Sendable {
  /// One operation's outcome.
  public typealias Element = Result<T, any Error>
  /// Iteration never throws: failures are elements.
  public typealias Failure = Never

  let stream: AsyncStream<Element>
  let count: Int
  let scopeEnd: AsCompletedSafeScopeEnd

  /// Creates an iterator; iterate the sequence once.
  public func makeAsyncIterator() -> AsyncIterator {
    AsyncIterator(base: stream.makeAsyncIterator(), remaining: count, scopeEnd: scopeEnd)
  }

  /// Iterates the outcomes; ends after one element per operation.
  public struct AsyncIterator: AsyncIteratorProtocol {
    /// Iteration never throws.
    public typealias Failure = Never

    var base: AsyncStream<Element>.Iterator
    var remaining: Int
    let scopeEnd: AsCompletedSafeScopeEnd

    /// The next outcome in completion order, or `nil` once every operation's outcome was
    /// delivered (or the scope ended, or the calling task was cancelled).
    public mutating func next() async -> Element? {
      guard remaining > 0, !scopeEnd.hasEnded else { return nil }
      guard let element = await base.next(), !scopeEnd.hasEnded else {
        remaining = 0
        return nil
      }
      remaining -= 1
      return element
    }

    /// The next outcome in completion order, staying on the caller's actor.
    public mutating func next(isolation actor: isolated (any Actor)?) async -> Element? {
      guard remaining > 0, !scopeEnd.hasEnded else { return nil }
      guard let element = await base.next(isolation: actor), !scopeEnd.hasEnded else {
        remaining = 0
        return nil
      }
      remaining -= 1
      return element
    }
  }
}
