import Synchronization

extension PersistentTaskGroup {
  /// A snapshot of one group's counters, for monitoring (aiotools #38 and its "task statistics
  /// for aiomonitor" TODO).
  public struct Statistics: Sendable, Hashable, CustomStringConvertible {
    /// The group's ``PersistentTaskGroup/name``.
    public var name: String
    /// Tasks admitted and not yet finished.
    public var runningCount: Int
    /// Tasks waiting for admission under ``PersistentTaskGroup/maxConcurrency``.
    public var queuedCount: Int
    /// Whether the group still accepts tasks (false once closing or shutting down).
    public var isAcceptingTasks: Bool

    /// Creates a snapshot (mostly useful to compare against in tests).
    public init(name: String, runningCount: Int, queuedCount: Int, isAcceptingTasks: Bool) {
      self.name = name
      self.runningCount = runningCount
      self.queuedCount = queuedCount
      self.isAcceptingTasks = isAcceptingTasks
    }

    /// `name: N running, M queued[, closing]`.
    public var description: String {
      "\(name): \(runningCount) running, \(queuedCount) queued\(isAcceptingTasks ? "" : ", closing")"
    }
  }

  /// This group's counters, read atomically together.
  public var statistics: Statistics {
    core.state.withLock { s in
      Statistics(name: name, runningCount: s.running, queuedCount: s.queued, isAcceptingTasks: s.phase == .open)
    }
  }

  /// Every live group in the process, in creation order (aiotools' `all_ptaskgroups()`).
  ///
  /// A group is live from its creation until it has been closed or shut down and all its tasks
  /// have ended, or until it is deinitialized. The registry holds groups weakly, so listing never
  /// keeps a group alive; the returned array does, for as long as the caller keeps it.
  public static var all: [PersistentTaskGroup] {
    let candidates = registry.withLock { entries in
      entries.sorted { $0.key < $1.key }.compactMap { $0.value.group }
    }
    return candidates.filter { !$0.isTerminated }
  }

  /// The ``statistics`` of every live group (see ``all``), in creation order.
  public static func liveGroups() -> [Statistics] {
    all.map(\.statistics)
  }

  struct WeakGroup: Sendable {
    weak var group: PersistentTaskGroup?
  }

  static let registry = Locked<[UInt64: WeakGroup]>([:])
  static let nextRegistryID = Atomic<UInt64>(0)

  static func register(_ group: PersistentTaskGroup) {
    registry.withLock { $0[group.registryID] = WeakGroup(group: group) }
  }

  static func unregister(_ id: UInt64) {
    registry.withLock { entries in
      entries.removeValue(forKey: id)
      // A dictionary never shrinks by itself; after many short-lived groups, give memory back.
      if entries.isEmpty && entries.capacity > 64 { entries = [:] }
    }
  }
}
