extension VirtualClock {
  /// Orders the sleepers in the heap: by deadline, then by registration (`id`). `slot` is where
  /// the sleeper's entry lives; a key whose slot no longer holds its `id` is a tombstone (the
  /// sleeper was cancelled).
  struct Key: Comparable {
    /// The deadline in attoseconds: an integer comparison, inlined (`Duration`'s comparison is an
    /// out-of-line call, and the heap compares at every step of every insertion and removal).
    var deadline: Int128
    var id: UInt64
    var slot: Int

    static func < (lhs: Key, rhs: Key) -> Bool {
      lhs.deadline < rhs.deadline || (lhs.deadline == rhs.deadline && lhs.id < rhs.id)
    }
  }

  /// A sleeper's life: reserved, then registered with its continuation, or cancelled first.
  enum Entry {
    case free
    case pending
    case registered(UnsafeContinuation<Void, any Error>)
    case cancelled
    /// A job the runtime scheduled on the driver for a deadline (`Task.sleep`, a sleep on
    /// `ContinuousClock`/`SuspendingClock`), as a bit pattern: it is enqueued when due.
    case job(UInt)
  }

  /// One reusable place for an entry; `id` tells its current sleeper from an earlier one.
  struct Slot {
    var id: UInt64 = 0
    var entry = Entry.free
  }

  /// A reserved sleeper: its slot and id.
  struct Ticket: Sendable {
    var slot: Int
    var id: UInt64
  }

  /// What wakes when a deadline is reached.
  enum Waker {
    case continuation(UnsafeContinuation<Void, any Error>)
    case job(UInt)
  }

  enum RegisterOutcome {
    case registered, alreadyDue, cancelled
  }

  /// The clock's time and its sleepers. Entries live in reusable slots rather than a dictionary:
  /// a sleep costs no hashing (a million virtual sleeps is the benchmark, issue #13).
  struct State {
    var now: Duration
    var nextID: UInt64 = 0
    var heap = DeadlineHeap()
    var slots: [Slot] = []
    var freeSlots: [Int] = []
    /// Number of `.registered` entries.
    var registeredCount = 0
    /// Number of `.job` entries (runtime sleeps scheduled on the driver).
    var jobCount = 0
    /// Sleepers that are `advance(to:)` calls under a manual driver, with their targets.
    var advancers: [UInt64: Duration] = [:]
    /// Tasks waiting in `runUntilIdle()` under a driver.
    var idleWaiters: [UnsafeContinuation<Void, Never>] = []
    /// Set while a `withVirtualTime` driver owns this clock.
    var driver: VirtualTimeDriver?
  }

  /// Work a driver found for an idle moment.
  enum IdleWork {
    case idle([UnsafeContinuation<Void, Never>])
    case sleepers([Waker])
  }
}

extension VirtualClock.State {
  /// Puts `entry` in a free slot under a new id.
  private mutating func allocate(_ entry: VirtualClock.Entry) -> VirtualClock.Ticket {
    nextID &+= 1
    let slot = VirtualClock.Slot(id: nextID, entry: entry)
    if let free = freeSlots.popLast() {
      slots[free] = slot
      return VirtualClock.Ticket(slot: free, id: nextID)
    }
    slots.append(slot)
    return VirtualClock.Ticket(slot: slots.count - 1, id: nextID)
  }

  private mutating func release(_ slot: Int) {
    slots[slot] = VirtualClock.Slot()
    freeSlots.append(slot)
  }

  /// The entry of `ticket`'s sleeper, or nil if it is gone.
  private func entry(_ ticket: VirtualClock.Ticket) -> VirtualClock.Entry? {
    slots[ticket.slot].id == ticket.id ? slots[ticket.slot].entry : nil
  }

  /// Reserves a sleeper for `deadline`, or returns nil if it is not in the future.
  mutating func reserve(until deadline: Duration) -> VirtualClock.Ticket? {
    deadline > now ? allocate(.pending) : nil
  }

  /// Registers the reserved sleeper's continuation, unless it was cancelled or is due already.
  mutating func register(
    _ ticket: VirtualClock.Ticket, _ continuation: UnsafeContinuation<Void, any Error>, until deadline: Duration,
    advancing: Bool
  ) -> (VirtualClock.RegisterOutcome, VirtualTimeDriver?) {
    guard case .pending = entry(ticket) else {
      if slots[ticket.slot].id == ticket.id { release(ticket.slot) }  // `.cancelled`
      return (.cancelled, nil)
    }
    if deadline <= now {
      release(ticket.slot)
      return (.alreadyDue, nil)
    }
    slots[ticket.slot].entry = .registered(continuation)
    registeredCount += 1
    heap.insert(VirtualClock.Key(deadline: deadline.attoseconds, id: ticket.id, slot: ticket.slot))
    if advancing { advancers[ticket.id] = deadline }
    // The driver to notify: only from another thread (the driver never waits while it runs a job).
    guard let driver, !driver.onDriverThread else { return (.registered, nil) }
    return (.registered, driver)
  }

  /// Cancels `ticket`'s sleeper: returns its continuation (to resume with `CancellationError`) if
  /// it was registered; marks it cancelled if it was only reserved (its registration then fails).
  mutating func cancel(_ ticket: VirtualClock.Ticket) -> UnsafeContinuation<Void, any Error>? {
    switch entry(ticket) {
    case .registered(let continuation):
      release(ticket.slot)
      registeredCount -= 1
      if !advancers.isEmpty { advancers[ticket.id] = nil }
      return continuation
    case .pending:
      slots[ticket.slot].entry = .cancelled
      return nil
    default:
      return nil  // already woken or already cancelled
    }
  }

  /// The earliest deadline of a live sleeper, dropping tombstones of cancelled ones on the way.
  mutating func firstLiveDeadline() -> Duration? {
    while let key = heap.min {
      if slots[key.slot].id == key.id { return Duration(attoseconds: key.deadline) }
      _ = heap.popMin()
    }
    return nil
  }

  /// Removes every live sleeper whose deadline is exactly `deadline`, in registration order, and
  /// returns what wakes them (to be resumed or enqueued outside the lock).
  mutating func popAllLive(at deadline: Duration) -> [VirtualClock.Waker] {
    let attoseconds = deadline.attoseconds
    var batch: [VirtualClock.Waker] = []
    while let key = heap.min, key.deadline == attoseconds {
      _ = heap.popMin()
      guard slots[key.slot].id == key.id else { continue }
      switch slots[key.slot].entry {
      case .registered(let continuation):
        registeredCount -= 1
        if !advancers.isEmpty { advancers[key.id] = nil }
        batch.append(.continuation(continuation))
      case .job(let job):
        jobCount -= 1
        batch.append(.job(job))
      default:
        break
      }
      release(key.slot)
    }
    return batch
  }

  /// Schedules a runtime job for `deadline` (at least now), after every sleeper already due then.
  mutating func schedule(job: UInt, at deadline: Duration) {
    let ticket = allocate(.job(job))
    jobCount += 1
    heap.insert(VirtualClock.Key(deadline: max(deadline, now).attoseconds, id: ticket.id, slot: ticket.slot))
  }

  /// What a driver does when nothing is runnable: wake idle waiters first, then jump to the
  /// earliest deadline if the mode allows it. `nil` when there is nothing to do.
  mutating func takeIdleWork(automatic: Bool) -> VirtualClock.IdleWork? {
    if !idleWaiters.isEmpty {
      defer { idleWaiters.removeAll() }
      return .idle(idleWaiters)
    }
    guard let deadline = firstLiveDeadline() else { return nil }
    if !automatic {
      guard let limit = advancers.values.max(), deadline <= limit else { return nil }
    }
    now = max(now, deadline)
    return .sleepers(popAllLive(at: deadline))
  }

  /// Detaches the clock from its driver and returns every sleeper still waiting.
  mutating func detach() -> [VirtualClock.Waker] {
    driver = nil
    var all: [VirtualClock.Waker] = []
    while let key = heap.popMin() {
      guard slots[key.slot].id == key.id else { continue }
      switch slots[key.slot].entry {
      case .registered(let continuation): all.append(.continuation(continuation))
      case .job(let job): all.append(.job(job))
      default: break
      }
      release(key.slot)
    }
    registeredCount = 0
    jobCount = 0
    advancers = [:]
    return all
  }
}
