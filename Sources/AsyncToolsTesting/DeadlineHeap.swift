/// A binary min-heap of sleepers' keys, earliest deadline (then earliest registration) first.
///
/// swift-collections' `Heap` is a min-max heap: it can also pop the maximum, which a clock never
/// needs, and pays for it on every removal (a trickle-down that compares grandchildren). Removing
/// the minimum is a virtual sleep's largest cost inside AsyncTools, so the clock keeps its own
/// plain binary heap (half the comparisons per removal, measured: issue #13's million sleeps).
struct DeadlineHeap {
  private var keys: ContiguousArray<VirtualClock.Key> = []

  /// The earliest key, or nil if the heap is empty.
  var min: VirtualClock.Key? { keys.first }

  var isEmpty: Bool { keys.isEmpty }

  mutating func insert(_ key: VirtualClock.Key) {
    keys.append(key)
    keys.withUnsafeMutableBufferPointer { keys in
      var child = keys.count - 1
      while child > 0 {
        let parent = (child - 1) / 2
        guard key < keys[parent] else { break }
        keys[child] = keys[parent]
        child = parent
      }
      keys[child] = key
    }
  }

  /// Removes and returns the earliest key, or nil if the heap is empty.
  mutating func popMin() -> VirtualClock.Key? {
    guard let last = keys.popLast() else { return nil }
    guard !keys.isEmpty else { return last }
    let first = keys[0]
    keys.withUnsafeMutableBufferPointer { keys in
      // Sift the former last key down from the root.
      let count = keys.count
      var parent = 0
      while true {
        var child = 2 * parent + 1
        if child >= count { break }
        if child + 1 < count && keys[child + 1] < keys[child] { child += 1 }
        guard keys[child] < last else { break }
        keys[parent] = keys[child]
        parent = child
      }
      keys[parent] = last
    }
    return first
  }
}
