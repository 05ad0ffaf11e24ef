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
    var started = false
    while true {
      (plan, started) = withStateReportingEvictions { state in
        let now = elapsed?()
        let misses = state.misses
        let plan = state.joinOrStart(
          key, now: now, refreshingTo: refreshAfter.flatMap { ttl in now.map { $0 + ttl } }
        ) { flight in startComputation(key, flight, compute) }
        // A miss is counted exactly when a computation starts.
        return (plan, state.misses != misses)
      }
      guard case .cancelThenRetry(let abandoned, let task) = plan else { break }
      // An abandoned computation for this key is still being cancelled by its last waiter; finish that (cancelling
      // twice is harmless) so that two uncancelled computations for one key never overlap.
      task.cancel()
      withState { $0.cancelIssued(for: abandoned) }
    }
    // A stored value after all, or a computation in flight joined, is a hit, reported from the state's tally.
    if let metrics, started {
      metrics.misses.increment(by: 1)
      metrics.loads.increment(by: 1)
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

  /// Starts the computation of flight `flight` (a miss or a refresh) in its own task: cancelling a caller must not
  /// cancel the work others wait for. It captures the cache strongly; every waiter holds the cache too, and the task
  /// ends when the work ends. Called under the lock: `Task.init` only enqueues, it runs no user code synchronously.
  @usableFromInline
  func startComputation(
    _ key: Key, _ flight: UInt64, _ compute: @escaping @Sendable (Key) async throws -> Value
  ) -> Task<Void, Never> {
    Task {
      let outcome: Result<Value, any Error>
      do {
        outcome = .success(try await compute(key))
      } catch {
        outcome = .failure(error)
        if let metrics, !(error is CancellationError) { metrics.loadFailures.increment(by: 1) }
      }
      self.finish(flight: flight, with: outcome)
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
    let policy = storePolicy
    let resumptions = withStateReportingEvictions { state in
      state.finish(flight: flight, with: outcome, now: elapsed?(), policy: policy)
    }
    for (continuation, outcome) in resumptions {
      continuation.resume(with: outcome)
    }
  }
}
