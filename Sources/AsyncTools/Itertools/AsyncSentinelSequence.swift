/// An asynchronous sequence that calls a closure for each element and ends at the first element equal to a
/// sentinel (Python's two-argument `aiter(func, sentinel)`). Made by ``aiter(sentinel:_:)``.
///
/// - The closure is called once per `next()`, lazily, with no buffering or prefetching: nothing runs before the
///   consumer asks, so a loop that stops early calls it no more.
/// - The sentinel itself is not produced. After the sentinel (or an error) the sequence is finished: further
///   `next()` calls return `nil` without calling the closure.
/// - An error thrown by the closure ends the iteration and is rethrown from `next()`. `Failure` is the closure's
///   thrown type, so a non-throwing closure gives a non-throwing sequence (`for await`, no `try`).
/// - Cancellation is the closure's business: the sequence adds no check of its own, so a closure that returns values
///   while cancelled keeps the loop going, exactly as calling it in a `while` loop would.
/// - Each iterator calls the closure independently; iterating twice calls it twice as often.
public struct AsyncSentinelSequence<Element: Equatable, Failure: Error>: AsyncSequence {
  @usableFromInline let sentinel: Element
  @usableFromInline let produce: @Sendable () async throws(Failure) -> Element

  /// Creates the sequence; prefer ``aiter(sentinel:_:)``.
  @inlinable
  public init(sentinel: Element, _ produce: @escaping @Sendable () async throws(Failure) -> Element) {
    self.sentinel = sentinel
    self.produce = produce
  }

  /// The iterator: calls the closure on each `next()` until it returns the sentinel or throws.
  public struct AsyncIterator: AsyncIteratorProtocol {
    @usableFromInline let sentinel: Element
    @usableFromInline let produce: @Sendable () async throws(Failure) -> Element
    @usableFromInline var finished = false

    @inlinable
    init(sentinel: Element, produce: @escaping @Sendable () async throws(Failure) -> Element) {
      self.sentinel = sentinel
      self.produce = produce
    }

    /// Calls the closure and returns its value, or `nil` once it returned the sentinel.
    @inlinable
    public mutating func next(isolation actor: isolated (any Actor)?) async throws(Failure) -> Element? {
      guard !finished else { return nil }
      let element: Element
      do {
        element = try await produce()
      } catch {
        finished = true
        throw error
      }
      if element == sentinel {
        finished = true
        return nil
      }
      return element
    }

    /// Calls the closure and returns its value, or `nil` once it returned the sentinel.
    @inlinable
    public mutating func next() async throws(Failure) -> Element? {
      try await next(isolation: nil)
    }
  }

  /// Makes an iterator that starts calling the closure.
  @inlinable
  public func makeAsyncIterator() -> AsyncIterator {
    AsyncIterator(sentinel: sentinel, produce: produce)
  }
}

extension AsyncSentinelSequence: Sendable where Element: Sendable {}

/// Calls `produce` repeatedly as an `AsyncSequence`, ending when it returns `sentinel` (Python's
/// `aiter(async_func, sentinel)`; the comparison is `==`, so `nil` is a valid sentinel for an optional element).
///
/// ```swift
/// // Python: async for job in aiter(queue.get, STOP): ...
/// for await job in aiter(sentinel: Job.stop, { await queue.take() }) {
///   await run(job)
/// }
/// ```
///
/// A throwing closure makes a throwing sequence whose `Failure` is the closure's error type; a non-throwing closure
/// makes a non-throwing one. See ``AsyncSentinelSequence`` for the exact semantics.
@inlinable
public func aiter<Element: Equatable, Failure: Error>(
  sentinel: Element, _ produce: @escaping @Sendable () async throws(Failure) -> Element
) -> AsyncSentinelSequence<Element, Failure> {
  AsyncSentinelSequence(sentinel: sentinel, produce)
}
