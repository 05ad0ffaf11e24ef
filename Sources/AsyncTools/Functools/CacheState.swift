/// Everything an ``AsyncLRUCache`` knows, behind its one `Mutex`: the stored entries, the computations in flight,
/// and the statistics. Every transition is a `mutating` method that only changes state and returns what the
/// caller must do *after* releasing the lock (resume a continuation, cancel a task): user code (a cancellation
/// handler run by `Task.cancel()`, a resumed caller) never runs while the lock is held.
///
/// A computation ("flight") is *attached* while new callers for its key can join it; it is detached when it
/// completes, when `invalidate`/`clear` removes its key, or when it is replaced after being abandoned. A flight is
/// *abandoned* when its last live waiter was cancelled before it completed: it is then cancelled, its outcome is
/// discarded, and only the abandoning waiter (which waits for the computation to end) still refers to it.
@usableFromInline
struct CacheState<Key: Hashable & Sendable, Value: Sendable> {
  @usableFromInline typealias Continuation = CheckedContinuation<Value, any Error>

  @usableFromInline
  enum WaiterSlot {
    /// Joined, continuation not installed yet (the caller is between the two lock sections of a miss).
    case reserved
    case waiting(Continuation)
    /// Cancelled before its continuation was installed.
    case cancelled
  }

  @usableFromInline
  struct Flight {
    var key: Key
    var task: Task<Void, Never>
    var waiters: [UInt64: WaiterSlot] = [:]
    /// Waiters that are reserved or waiting and not cancelled.
    var liveWaiters = 0
    var outcome: Result<Value, any Error>?
    var attached = true
    var abandoner: UInt64?
    /// Set once `task.cancel()` has returned for an abandoned flight, so a successor may start.
    var cancelIssued = false
  }

  @usableFromInline var storage: LRUStorage<Key, Value>
  @usableFromInline var hits = 0
  @usableFromInline var misses = 0
  /// Refresh-ahead computations started (`refreshAfter`); not misses.
  @usableFromInline var refreshes = 0
  var flights: [UInt64: Flight] = [:]
  var attachedFlights: [Key: UInt64] = [:]
  var nextID: UInt64 = 0

  @usableFromInline
  init(usesExpiry: Bool, recordsEvictions: Bool) {
    storage = LRUStorage(usesExpiry: usesExpiry, recordsEvictions: recordsEvictions)
  }

  /// The hit path: a stored, unexpired value, promoted and counted as a hit.
  @inlinable
  mutating func hit(_ key: Key, now: Duration?, refreshingTo newExpiry: Duration?) -> Value? {
    guard let value = storage.lookUp(key, now: now, refreshingTo: newExpiry) else { return nil }
    hits &+= 1
    return value
  }

  /// The hit path of a cache with `refreshAfter`: a stored, unexpired value, promoted and counted as a hit; if it is
  /// due for a refresh and no computation for its key is in flight, a refresh starts with `start` (under the lock,
  /// as in ``joinOrStart(_:now:refreshingTo:start:)``) as an attached flight without waiters, so that the callers
  /// keep getting the stale value meanwhile and a caller missing the key joins the refresh.
  @inlinable
  mutating func hitRefreshingAhead(
    _ key: Key, now: Duration, refreshingTo newExpiry: Duration?,
    start: @Sendable (_ flight: UInt64) -> Task<Void, Never>
  ) -> Value? {
    guard let (value, refreshDue) = storage.lookUpForRefresh(key, now: now, refreshingTo: newExpiry) else {
      return nil
    }
    hits &+= 1
    if refreshDue { startRefresh(key, start: start) }
    return value
  }

  @usableFromInline
  mutating func startRefresh(_ key: Key, start: @Sendable (_ flight: UInt64) -> Task<Void, Never>) {
    guard attachedFlights[key] == nil else { return }
    refreshes &+= 1
    nextID &+= 1
    let id = nextID
    flights[id] = Flight(key: key, task: start(id))
    attachedFlights[key] = id
  }

  // MARK: - Misses

  enum MissPlan {
    case hit(Value)
    /// Wait on flight `flight` in slot `waiter`.
    case wait(flight: UInt64, waiter: UInt64)
    /// An abandoned flight for this key is not yet cancelled: cancel its task outside the lock, then try again.
    case cancelThenRetry(flight: UInt64, task: Task<Void, Never>)
  }

  /// Joins the attached flight for `key`, or starts one with `start` (called under the lock, so that a flight always
  /// has its task: `Task.init` only enqueues, it runs no user code synchronously).
  mutating func joinOrStart(
    _ key: Key, now: Duration?, refreshingTo newExpiry: Duration?,
    start: @Sendable (_ flight: UInt64) -> Task<Void, Never>
  ) -> MissPlan {
    if let value = hit(key, now: now, refreshingTo: newExpiry) { return .hit(value) }
    // Read fields without binding the flight: a copy would share its waiters, and adding one would copy them all.
    if let id = attachedFlights[key], let abandoner = flights[id].map({ $0.abandoner }) {
      if abandoner == nil {
        // Joining a computation in flight is a hit: the caller starts no work (async-lru counts it the same way).
        hits &+= 1
        return .wait(flight: id, waiter: addWaiter(to: id))
      }
      guard flights[id]!.cancelIssued else { return .cancelThenRetry(flight: id, task: flights[id]!.task) }
      // Abandoned and cancelled: detach it so the new computation below replaces it.
      detach(id)
    }
    misses &+= 1
    nextID &+= 1
    let id = nextID
    flights[id] = Flight(key: key, task: start(id))
    attachedFlights[key] = id
    return .wait(flight: id, waiter: addWaiter(to: id))
  }

  private mutating func addWaiter(to id: UInt64) -> UInt64 {
    nextID &+= 1
    flights[id]!.waiters[nextID] = .reserved
    flights[id]!.liveWaiters += 1
    return nextID
  }

  /// Records that the abandoned flight's task has been cancelled, and detaches the flight: only from now on may a
  /// new computation for its key start, so at most one un-cancelled computation per key is ever in flight.
  mutating func cancelIssued(for id: UInt64) {
    guard flights[id] != nil else { return }
    flights[id]!.cancelIssued = true
    detach(id)
  }

  /// Installs the waiter's continuation; returns an outcome to resume it with at once, if there already is one.
  mutating func install(_ continuation: Continuation, flight id: UInt64, waiter: UInt64) -> Result<Value, any Error>? {
    // Taken out of the dictionary (not copied) so that mutating its waiters does not copy them: O(1), not O(n).
    guard var flight = flights.removeValue(forKey: id), let slot = flight.waiters[waiter] else {
      preconditionFailure("AsyncLRUCache: a waiter lost its flight before installing its continuation")
    }
    let immediate: Result<Value, any Error>?
    switch slot {
    case .reserved:
      if let outcome = flight.outcome {
        flight.waiters[waiter] = nil
        immediate = outcome
      } else {
        flight.waiters[waiter] = .waiting(continuation)
        immediate = nil
      }
    case .cancelled:
      if flight.abandoner == waiter && flight.outcome == nil {
        // The abandoning waiter waits for the computation it cancelled, so the work never outlives every caller.
        flight.waiters[waiter] = .waiting(continuation)
        immediate = nil
      } else {
        flight.waiters[waiter] = nil
        immediate = .failure(CancellationError())
      }
    case .waiting:
      preconditionFailure("AsyncLRUCache: a continuation was installed twice")
    }
    store(flight, id)
    return immediate
  }

  /// What a cancelled waiter must do once the lock is released.
  struct CancelActions {
    var resume: Continuation?
    var cancel: Task<Void, Never>?
  }

  /// A waiter's task was cancelled. A non-last waiter leaves at once; the last live one abandons the flight (its
  /// task is to be cancelled) and stays until the computation ends.
  mutating func cancelWaiter(flight id: UInt64, waiter: UInt64) -> CancelActions {
    guard var flight = flights.removeValue(forKey: id) else { return CancelActions() }
    defer { store(flight, id) }
    var actions = CancelActions()
    guard let slot = flight.waiters[waiter] else { return actions }
    switch slot {
    case .cancelled:
      return actions
    case .reserved:
      flight.waiters[waiter] = .cancelled
      flight.liveWaiters -= 1
    case .waiting(let continuation):
      flight.liveWaiters -= 1
      if flight.liveWaiters > 0 || flight.outcome != nil {
        flight.waiters[waiter] = nil
        actions.resume = continuation
      }
    }
    if flight.liveWaiters == 0 && flight.outcome == nil {
      flight.abandoner = waiter
      actions.cancel = flight.task
    }
    return actions
  }

  /// The flight's computation ended. Stores a success if the flight is still attached and not abandoned, and
  /// returns the continuations to resume (outside the lock) with their outcomes.
  mutating func finish(
    flight id: UInt64, with outcome: Result<Value, any Error>, now: Duration?, policy: StorePolicy
  ) -> [(Continuation, Result<Value, any Error>)] {
    guard var flight = flights.removeValue(forKey: id) else { return [] }
    flight.outcome = outcome
    if flight.attached {
      // The flight is out of `flights` here, so unlink its key directly rather than through `detach`.
      if attachedFlights[flight.key] == id { attachedFlights[flight.key] = nil }
      flight.attached = false
      if flight.abandoner == nil, case .success(let value) = outcome {
        storeCompleted(flight.key, value, now: now, policy: policy)
      }
    }
    var resumptions: [(Continuation, Result<Value, any Error>)] = []
    var remaining: [UInt64: WaiterSlot] = [:]
    for (waiter, slot) in flight.waiters {
      guard case .waiting(let continuation) = slot else {
        // Reserved and cancelled slots stay until their caller installs and picks up the outcome.
        remaining[waiter] = slot
        continue
      }
      resumptions.append((continuation, waiter == flight.abandoner ? .failure(CancellationError()) : outcome))
    }
    flight.waiters = remaining
    store(flight, id)
    return resumptions
  }

  /// How a cache stores a value: its size limit, time to live and refresh-ahead delay.
  struct StorePolicy {
    var maxSize: Int?
    var expireAfter: Duration?
    var refreshAfter: Duration?
  }

  private mutating func storeCompleted(_ key: Key, _ value: Value, now: Duration?, policy: StorePolicy) {
    var expiresAt = Duration.zero
    var refreshAt = Duration.zero
    if let now, let expireAfter = policy.expireAfter {
      storage.purgeExpired(now: now)
      expiresAt = now + expireAfter
    }
    if let now, let refreshAfter = policy.refreshAfter { refreshAt = now + refreshAfter }
    storage.insert(key, value, expiresAt: expiresAt, refreshAt: refreshAt)
    if let maxSize = policy.maxSize {
      while storage.count > maxSize { storage.evictLeastRecent() }
    }
  }

  /// Writes a flight back, dropping it once it has an outcome and nobody refers to it any more.
  private mutating func store(_ flight: Flight, _ id: UInt64) {
    if flight.outcome != nil && flight.waiters.isEmpty {
      flights[id] = nil
    } else {
      flights[id] = flight
    }
  }

  private mutating func detach(_ id: UInt64) {
    guard let flight = flights[id], flight.attached else { return }
    flights[id]!.attached = false
    if attachedFlights[flight.key] == id { attachedFlights[flight.key] = nil }
  }

  // MARK: - Controls

  /// Stores `value` for `key` as if a computation had just completed, replacing a stored value; detaches a
  /// computation in flight for `key` (its callers still get its outcome, but it does not overwrite this value).
  mutating func set(_ key: Key, _ value: Value, now: Duration?, policy: StorePolicy) {
    if let id = attachedFlights[key] { detach(id) }
    storeCompleted(key, value, now: now, policy: policy)
  }

  /// Removes the stored value for `key` and detaches its computation in flight (whose outcome still reaches the
  /// callers already waiting for it, but is not stored). Returns whether anything was removed.
  mutating func invalidate(_ key: Key) -> Bool {
    var removed = storage.removeValue(forKey: key)
    if let id = attachedFlights[key] {
      detach(id)
      removed = true
    }
    return removed
  }

  /// Removes every stored value, detaches every computation in flight, and resets the statistics.
  mutating func clear() {
    storage.removeAll()
    for id in attachedFlights.values { flights[id]?.attached = false }
    attachedFlights.removeAll()
    hits = 0
    misses = 0
    refreshes = 0
  }

  var inFlightCount: Int { attachedFlights.count }
}
