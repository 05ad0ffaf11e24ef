import AsyncToolsTestSupport
import Testing

@testable import AsyncToolsTesting

/// The clock's sleeper queue: its own binary heap and the reusable slots behind it (issue #13's
/// speed work), checked against plain sorting.
@Suite struct VirtualClockQueueTests {
  @Test func heapPopsInDeadlineThenRegistrationOrder() {
    var generator = SeededRandomNumberGenerator(seed: 13)
    var heap = DeadlineHeap()
    var expected: [VirtualClock.Key] = []
    for id in 1...2_000 {
      // Few distinct deadlines, so that ties (broken by id) are common; some negative.
      let key = VirtualClock.Key(
        deadline: Int128(Int.random(in: -5...40, using: &generator)) * 1_000_000_000_000_000_000, id: UInt64(id),
        slot: id)
      heap.insert(key)
      expected.append(key)
      // Interleave removals with insertions.
      if id % 3 == 0, let popped = heap.popMin() {
        let smallest = expected.min()!
        #expect(popped == smallest)
        expected.removeAll { $0 == smallest }
      }
    }
    var rest: [VirtualClock.Key] = []
    while let key = heap.popMin() { rest.append(key) }
    #expect(rest == expected.sorted())
    #expect(heap.isEmpty && heap.min == nil)
  }

  @Test func cancelledSleepersFreeTheirSlotsAndNeverWake() async throws {
    // Three rounds of 1,000 sleepers, every other one cancelled before its deadline (the later
    // rounds reuse the slots the earlier ones freed): only the live ones wake, in deadline order.
    let log = TestLog<Int>()
    let ends = try await withVirtualTime { clock in
      for _ in 0..<3 {
        await withDiscardingTaskGroup { group in
          for i in 0..<1_000 {
            group.addTask {
              let sleeper = Task { try await clock.sleep(for: .seconds(i % 10 + 1)) }
              if i % 2 == 1 { sleeper.cancel() }
              if (try? await sleeper.value) != nil { log.append(i) }
            }
          }
        }
        #expect(clock.pendingSleepers == 0)
      }
      return clock.now.offset
    }
    let woken = log.all
    #expect(woken.count == 1_500)
    #expect(woken.allSatisfy { $0 % 2 == 0 })
    for round in 0..<3 {
      let deadlines = woken[round * 500..<(round + 1) * 500].map { $0 % 10 }
      #expect(deadlines == deadlines.sorted())
    }
    #expect(ends == .seconds(27))  // three rounds, each up to the last even sleeper at 9 s
  }
}
