extension Sequence where Element: Sendable {
  /// Transforms every element concurrently, with at most `maxConcurrency` transformations in flight, and returns the
  /// results in input order (`ordered: true`, the default) or in completion order (`ordered: false`).
  ///
  /// ```swift
  /// let pages = try await urls.concurrentMap(maxConcurrency: 4) { url in try await fetch(url) }
  /// ```
  ///
  /// This is what Python users reach for aiometer or aiojobs for; aiotools itself has no equivalent.
  ///
  /// - Elements are taken from the sequence lazily, one when a slot frees up, in sequence order; so at most
  ///   `maxConcurrency` child tasks exist at any moment, and an infinite sequence is never fully materialized
  ///   before work starts (the call still returns only when the sequence ends).
  /// - **Errors:** the first error a transformation throws (first to *complete* with an error) cancels the
  ///   transformations in flight, starts no new one, waits for the cancelled ones to end, and is rethrown. Errors
  ///   thrown after it are discarded.
  /// - **Cancellation:** cancelling the calling task cancels the transformations in flight (they are child tasks)
  ///   and starts no new one; the call throws `CancellationError` unless a transformation threw first.
  ///
  /// - Parameters:
  ///   - maxConcurrency: The maximum number of transformations running at once. Must be positive.
  ///   - ordered: `true` for results in input order, `false` for completion order.
  ///   - transform: The transformation, run in a child task per element.
  /// - Throws: ``AsyncToolsError/Code/invalidArgument`` for a zero or negative `maxConcurrency`, the first error of a
  ///   transformation, or `CancellationError`.
  public func concurrentMap<T: Sendable>(
    maxConcurrency: Int, ordered: Bool = true, _ transform: @escaping @Sendable (Element) async throws -> T
  ) async throws -> [T] {
    try requirePositiveConcurrency(maxConcurrency)
    return try await withThrowingTaskGroup(of: (Int, T).self) { group in
      var elements = makeIterator()
      var started = 0
      var slots: [T?] = []  // input order; filled as results arrive
      var completed: [T] = []  // completion order
      func startNext() throws -> Bool {
        guard let element = elements.next() else { return false }
        try Task.checkCancellation()
        let index = started
        group.addTask { (index, try await transform(element)) }
        started += 1
        if ordered { slots.append(nil) }
        return true
      }
      while started < maxConcurrency, try startNext() {}
      while let (index, value) = try await group.next() {
        if ordered { slots[index] = value } else { completed.append(value) }
        _ = try startNext()
      }
      return ordered ? slots.map { $0! } : completed
    }
  }

  /// Runs `body` for every element concurrently, with at most `maxConcurrency` calls in flight.
  ///
  /// The same rules as ``Swift/Sequence/concurrentMap(maxConcurrency:ordered:_:)``: elements are taken lazily in
  /// order; the first error cancels the calls in flight, starts no new one and is rethrown once they have ended;
  /// cancelling the calling task cancels the calls in flight and throws `CancellationError`.
  ///
  /// - Throws: ``AsyncToolsError/Code/invalidArgument`` for a zero or negative `maxConcurrency`, the first error of
  ///   `body`, or `CancellationError`.
  public func concurrentForEach(
    maxConcurrency: Int, _ body: @escaping @Sendable (Element) async throws -> Void
  ) async throws {
    try requirePositiveConcurrency(maxConcurrency)
    try await withThrowingTaskGroup(of: Void.self) { group in
      var elements = makeIterator()
      var running = 0
      while running < maxConcurrency, let element = elements.next() {
        try Task.checkCancellation()
        group.addTask { try await body(element) }
        running += 1
      }
      while try await group.next() != nil {
        guard let element = elements.next() else { continue }
        try Task.checkCancellation()
        group.addTask { try await body(element) }
      }
    }
  }
}

private func requirePositiveConcurrency(_ maxConcurrency: Int) throws(AsyncToolsError) {
  if maxConcurrency <= 0 {
    throw .invalidArgument("maxConcurrency must be positive, got \(maxConcurrency)")
  }
}
