import AsyncTools

/// The time source `withVirtualTime` installs for its body: every `DefaultClock` created inside
/// reads and sleeps on the scope's `VirtualClock`, and unstructured tasks AsyncTools starts there
/// prefer the driver as their executor.
struct VirtualTimeSource: ScopedTimeSource {
  let clock: VirtualClock
  let driver: VirtualTimeDriver

  var now: Duration { clock.now.offset }

  func sleep(until deadline: Duration, tolerance: Duration?) async throws {
    try await clock.sleep(until: deadline, advancing: false)
  }

  var taskExecutor: (any TaskExecutor)? { driver }
}
