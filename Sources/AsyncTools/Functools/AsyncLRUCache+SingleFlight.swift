/// The miss path of ``AsyncLRUCache``: join or start the one computation for a key, wait for it, and handle
/// cancellation (see ``CacheState`` for the transitions).
extension AsyncLRUCache {
  /// Runs or joins the computation for `key`. `compute` gets the key so that ``Memoized`` can pass one stored
  /// function instead of building a closure per call.
  @usableFromInline
  func computeOrJoin(_ key: Key, _ compute: @escaping @Sendable (Key) async throws -> Value) async throws -> Value {
    // A caller cancelled before it even starts waiting starts no work (a hit, taken above, is still served).
    try Task.checkCancellation()
    let elapsed = self.elapsed
    let refreshAfter = refreshOnHit ? expireAfter : nil
    var plan: CacheState<Key, Value>.MissPlan
    let metrics = self.metrics
    var started = false
    while true {
      plan = withState { state in
        let now = elapsed?()
        return state.joinOrStart(key, now: now, refreshingTo: refreshAfter.flatMap { ttl in now.map { $0 + ttl } }) {
          flight in
          started = true
          // The computation's own task: cancelling a caller must not cancel the work others wait for. It captures
          // the cache strongly; every waiter holds the cache too, and the task ends when the work ends.
          return Task {
            let outcome: Result<Value, any Error>
            do {
              outcome = .success(try await compute(key))
            } catch {
              outcome = .failure(error)
              if let metrics, !(error is CancellationError) { metrics.loadFailures.increment() }
            }
            self.finish(flight: flight, with: outcome)
          }
        }
      }
      guard case .cancelThenRetry(let abandoned, let task) = plan else { break }
      // An abandoned computation for this key is still being cancelled by its last waiter; finish that (cancelling
      // twice is harmless) so that two uncancelled computations for one key never overlap.
      task.cancel()
      withState { $0.cancelIssued(for: abandoned) }
    }
    if let metrics {
      if started {
        metrics.misses.increment()
        metrics.loads.increment()
      } else {
        metrics.hits.increment()  // a stored value after all, or a computation in flight joined
      }
    }
    switch plan {
    case .hit(let value):
      return value
    case .cancelThenRetry:
      preconditionFailure("unreachable: the loop above only exits with another plan")
    case .wait(let flight, let waiter):
      return try await wait(flight: flight, waiter: waiter)
    }
  }

  private func wait(flight: UInt64, waiter: UInt64) async throws -> Value {
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { continuation in
        let immediate = withState { $0.install(continuation, flight: flight, waiter: waiter) }
        if let immediate { continuation.resume(with: immediate) }
      }
    } onCancel: {
      let actions = withState { $0.cancelWaiter(flight: flight, waiter: waiter) }
      actions.resume?.resume(throwing: CancellationError())
      if let task = actions.cancel {
        // The last waiter left: cancel the work, and only then let a new computation for the key start.
        task.cancel()
        withState { $0.cancelIssued(for: flight) }
      }
    }
  }

  private func finish(flight: UInt64, with outcome: Result<Value, any Error>) {
    let elapsed = self.elapsed
    let metrics = self.metrics
    let (resumptions, pending) = withState { state in
      let resumptions = state.finish(
        flight: flight, with: outcome, now: elapsed?(), expireAfter: expireAfter, maxSize: maxSize)
      return (resumptions, metrics?.pending(state.storage))
    }
    if let metrics, let pending { metrics.apply(pending) }
    for (continuation, outcome) in resumptions {
      continuation.resume(with: outcome)
    }
  }
}
